"""The model store: content-addressed blobs plus manifests, in Ollama's on-disk layout.

Owns: one models directory (`Store`: `blobs/sha256-<hex>`, `manifests/<host>/<namespace>/
<model>/<tag>`, and ossy's `checkpoints/`), the stored models read from it (`Model`), and the
pair of sources ossy reads (`Library`: the ossy store, writable, and an existing Ollama store,
read-only, found through `ossy.config.settings`). Copying, removing, garbage collection, and
`checkpoint_dir`, which gives a stored checkpoint the directory form the loader opens.
Does not own: turning a Modelfile into layers (`ossy.store.create`) or any output.

Safety: blobs are written under a temp name and renamed once complete and fsynced; a manifest
is written the same way and only after all its blobs, so an interrupted write leaves the store
as it was (plus a temp file that `gc`, `sweep` or the next write removes once its writer is
dead). A full disk is a `NoSpaceError` (507) naming what was being written, how much it needed
and how much is free; the transaction then leaves nothing behind. Writers hold the store
lock shared; `gc` runs only when it can take the lock alone, so it never deletes a blob that a
create in progress has written but not yet named in a manifest.

Runnable directories: `checkpoint_dir(model)` materialises `checkpoints/<key>/` holding one
relative symlink per checkpoint file into `blobs/` (key = hash of the (name, digest) list, so
models sharing weights share the directory). It is built in a temp directory and renamed into
place, and `gc` removes the ones no manifest needs.

Integrity: every blob ossy writes is hashed as it is written (a copy, an upload) or before it is
named (a hard link from the Ollama store), and its size and mtime are then recorded in
`verified/sha256-<hex>`. `check_blobs` (run before a model's checkpoint is handed to the loader)
re-hashes any blob whose size or mtime differs from its record, or that has none, and refuses a
blob whose content no longer matches its digest; `verify` re-hashes all of a model's blobs.
Small blobs (config, template, params...) are checked on every read. Listings skip a corrupt
manifest (or one whose config blob is unreadable), log it and report it (`Listing.problems`);
`Library.remove` still removes it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath

from ossy.config import Settings
from ossy.errors import NoSpaceError, NotFoundError, OssyError
from ossy.format import human_bytes
from ossy.store import manifest as mt
from ossy.store.files import StoreLock, TempFile, atomic_write, publish, remove_stale_temps, temp_name
from ossy.store.manifest import Layer, Manifest
from ossy.store.names import ModelName, name_from_path, parse_name

CHUNK = 1 << 22
SMALL_BLOB = 1 << 20  # blobs up to this size are re-hashed on every read
log = logging.getLogger("ossy.store")


class ReadOnlyError(OssyError):
    """A write to the Ollama store, which ossy only reads."""


class CorruptError(OssyError):
    """A blob whose content no longer matches its digest: the store is damaged, not the request."""

    http_status = 500


@contextlib.contextmanager
def disk_space(store: "Store", what: str, needed: int):
    """Turn a full disk while writing `what` (about `needed` bytes) into one `NoSpaceError`."""
    try:
        yield
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        try:
            free = shutil.disk_usage(store.root).free
        except OSError:
            free = 0
        raise NoSpaceError(f"no space left on device writing {what} (needs {human_bytes(needed)}, "
                           f"{human_bytes(free)} free)") from None


_HASHING: dict[Path, threading.Lock] = {}
_HASHING_LOCK = threading.Lock()


def _hashing(path: Path) -> threading.Lock:
    """The lock a thread holds while it hashes `path` (one hash of a blob at a time)."""
    with _HASHING_LOCK:
        return _HASHING.setdefault(path, threading.Lock())


def hash_file(path: Path) -> tuple[str, int]:
    """("sha256:<hex>", size) of a file's content."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


class Progress:
    """What a long store operation reports; the CLI prints it, a server could stream it."""

    def status(self, text: str) -> None:
        """A step begins (`writing manifest`)."""

    def transfer(self, text: str, done: int, total: int) -> None:
        """`done` of `total` bytes of a copy (`copying model files`)."""


class Counter:
    """Bytes copied so far in one step, reported to a `Progress`."""

    def __init__(self, progress: Progress, text: str, total: int) -> None:
        self.progress, self.text, self.total, self.done = progress, text, total, 0
        progress.transfer(text, 0, total)

    def advance(self, n: int) -> None:
        self.done += n
        self.progress.transfer(self.text, self.done, self.total)


@dataclass(frozen=True)
class Model:
    """A stored model: its name, manifest, and the store holding its blobs."""

    name: ModelName
    store: "Store"
    manifest: Manifest
    raw: bytes  # the manifest file as stored
    modified: float  # manifest mtime

    @property
    def digest(self) -> str:
        """sha256 hex of the manifest file; `ollama list`'s ID is its first 12 characters."""
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def size(self) -> int:
        return self.manifest.size

    @cached_property
    def config(self) -> dict:
        data = self.store.read_blob(self.manifest.config)
        try:
            return json.loads(data)
        except ValueError:
            raise OssyError(f"model '{self.name}': config blob is not JSON") from None

    def texts(self, media_type: str) -> list[str]:
        return [self.store.read_blob(layer).decode() for layer in self.manifest.of_type(media_type)]

    def text(self, media_type: str) -> str | None:
        texts = self.texts(media_type)
        return texts[-1] if texts else None

    def json(self, media_type: str, default):
        text = self.text(media_type)
        return default if text is None else json.loads(text)

    @property
    def template(self) -> str | None:
        return self.text(mt.TEMPLATE)

    @property
    def system(self) -> str | None:
        return self.text(mt.SYSTEM)

    @property
    def parameters(self) -> dict:
        return self.json(mt.PARAMS, {})

    @property
    def licenses(self) -> list[str]:
        return self.texts(mt.LICENSE)

    @property
    def messages(self) -> list[dict]:
        return self.json(mt.MESSAGES, [])

    @property
    def tools(self) -> list | None:
        return self.json(mt.TOOLS, None)

    @property
    def is_checkpoint(self) -> bool:
        return bool(self.manifest.of_type(mt.CHECKPOINT_FILE))

    @property
    def is_gguf(self) -> bool:
        return bool(self.manifest.of_type(mt.GGUF))


class Store:
    """One models directory in Ollama's layout; `read_only` for an Ollama store."""

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.root = Path(root)
        self.read_only = read_only
        self.blobs = self.root / "blobs"
        self.manifests = self.root / "manifests"
        self.checkpoints = self.root / "checkpoints"
        self._verified: dict[str, tuple[int, int]] = {}  # digest -> (size, mtime_ns) found sound

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r}{', read_only=True' if self.read_only else ''})"

    # -- reading -------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.blobs / f"{algorithm}-{hexdigest}"

    def has_blob(self, layer: Layer) -> bool:
        path = self.blob_path(layer.digest)
        return path.is_file() and path.stat().st_size == layer.size

    def read_blob(self, layer: Layer) -> bytes:
        """A small blob's bytes, checked against its digest."""
        try:
            data = self.blob_path(layer.digest).read_bytes()
        except FileNotFoundError:
            raise OssyError(f"{self.root}: blob {layer.digest} is missing (the store is damaged)") from None
        if len(data) <= SMALL_BLOB and mt.digest_of(data) != layer.digest:
            raise CorruptError(f"{self.root}: blob {layer.digest} is corrupt (its content does not match "
                               f"its digest)")
        return data

    # -- integrity -----------------------------------------------------------------------------
    def _record_path(self, digest: str) -> Path:
        return self.root / "verified" / self.blob_path(digest).name

    def record_verified(self, digest: str) -> None:
        """Note the blob's size and mtime now that its content is known to match `digest` (in
        `verified/`, and in memory, which serves when the record cannot be written)."""
        try:
            st = self.blob_path(digest).stat()
        except OSError:
            return
        self._verified[digest] = (st.st_size, st.st_mtime_ns)
        if self.read_only:
            return
        try:
            with StoreLock(self.root).shared():  # its temp file must not be swept meanwhile
                atomic_write(self._record_path(digest), f"{st.st_size} {st.st_mtime_ns}\n".encode())
        except OSError as e:  # only a cache of work done: this process remembers it anyway
            log.warning("could not record that blob %s was verified: %s", digest, e)

    def sound(self, digest: str) -> bool:
        """Whether the blob is there, with the size and mtime it had when its content was last
        found to match `digest` (a blob with no record is not known to be sound)."""
        try:
            st = self.blob_path(digest).stat()
        except OSError:
            return False
        recorded = self._verified.get(digest)
        if recorded is None:
            try:
                size, mtime = self._record_path(digest).read_text().split()
                recorded = (int(size), int(mtime))
            except (OSError, ValueError):
                return False
        return (st.st_size, st.st_mtime_ns) == recorded

    def blob_problem(self, layer: Layer) -> str | None:
        """Re-hash the blob of `layer`: None if it matches, else what is wrong."""
        path = self.blob_path(layer.digest)
        try:
            digest, size = hash_file(path)
        except FileNotFoundError:
            return "is missing"
        if (digest, size) != (layer.digest, layer.size):
            return "is corrupt (its content does not match its digest)"
        self.record_verified(layer.digest)
        return None

    def check_blobs(self, model: "Model", layers) -> None:
        """Refuse `model` if one of `layers` changed (size or mtime) since it was verified and
        no longer matches its digest. Concurrent checks of one blob hash it once."""
        for layer in layers:
            if self.sound(layer.digest):
                continue
            with _hashing(self.blob_path(layer.digest)):
                problem = None if self.sound(layer.digest) else self.blob_problem(layer)
            if problem is not None:
                raise CorruptError(f"blob {layer.digest} of {model.name} {problem}; re-create or re-pull it")

    def verify(self, model: "Model") -> list[str]:
        """Re-hash every blob of `model`; what is wrong with each bad one ("sha256:… is corrupt")."""
        layers = {layer.digest: layer for layer in (model.manifest.config, *model.manifest.layers)}
        return [f"blob {digest} {problem}" for digest, layer in layers.items()
                if (problem := self.blob_problem(layer)) is not None]

    def get(self, name: ModelName) -> Model | None:
        path = self.manifests / name.path
        try:
            data = path.read_bytes()
            modified = path.stat().st_mtime
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except PermissionError:
            raise OssyError(f"{path}: permission denied") from None
        return Model(name, self, Manifest.from_json(data, str(path)), data, modified)

    def names(self) -> list[ModelName]:
        if not self.manifests.is_dir():
            return []
        found = (name_from_path(p.relative_to(self.manifests).parts) for p in self.manifests.glob("*/*/*/*"))
        return sorted(n for n in found if n is not None and (self.manifests / n.path).is_file())

    def models(self) -> list[Model]:
        return self.scan().models

    def scan(self) -> "Listing":
        """The stored models; a manifest that cannot be read (or whose config cannot) is left
        out, logged and named in `problems`."""
        listing = Listing()
        for name in self.names():
            try:
                model = self.get(name)
                if model is not None:
                    model.config  # noqa: B018 - read now: a listing shows details from it
                    listing.models.append(model)
            except OssyError as e:
                problem = f"skipped {name}: {e}; remove it with 'ossy rm {name}'" if not self.read_only else \
                    f"skipped {name} (Ollama store): {e}"
                log.warning("%s", problem)
                listing.problems.append(problem)
        return listing

    # -- writing -------------------------------------------------------------------------------
    def _writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{self.root} is an Ollama store, which ossy only reads")

    def transaction(self) -> "Transaction":
        self._writable()
        return Transaction(self)

    def has_manifest(self, name: ModelName) -> bool:
        return (self.manifests / name.path).is_file()

    def delete_manifest(self, name: ModelName) -> None:
        self._writable()
        path = self.manifests / name.path
        path.unlink()
        for parent in list(path.parents)[:3]:  # tag's model, namespace and host directories
            try:
                parent.rmdir()
            except OSError:
                break

    # -- checkpoint directories ----------------------------------------------------------------
    def checkpoint_dir(self, model: Model) -> Path:
        """A directory the loader can open for `model`: relative symlinks into `blobs/`."""
        files = model.manifest.of_type(mt.CHECKPOINT_FILE)
        if not files:
            raise OssyError(f"model '{model.name}' has no checkpoint files")
        self._writable()
        self.check_blobs(model, files)
        final = self.checkpoints / checkpoint_key(files)
        if final.is_dir():
            return final
        with StoreLock(self.root).shared():
            tmp = temp_name(self.checkpoints)
            tmp.mkdir()
            try:
                for layer in files:
                    self._link(tmp, layer, model)
                try:
                    tmp.rename(final)
                except OSError:  # built meanwhile by another process
                    if not final.is_dir():
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def gguf_file(self, model: Model, check: bool = True) -> Path:
        """The GGUF blob the loader opens for `model`, in place (an Ollama store's too: read,
        never copied), once its content is known to match its digest (`check`; the header alone
        is read without)."""
        layers = model.manifest.of_type(mt.GGUF)
        if len(layers) != 1:
            raise OssyError(f"model '{model.name}' has {len(layers)} GGUF layers; ossy runs models with one")
        if check:
            self.check_blobs(model, layers)
        return self.blob_path(layers[0].digest)

    def _link(self, directory: Path, layer: Layer, model: Model) -> None:
        rel = safe_relative(layer.name or "")
        if rel is None:
            raise OssyError(f"model '{model.name}': bad checkpoint file name {layer.name!r} in its manifest")
        if not self.has_blob(layer):
            raise OssyError(f"model '{model.name}': blob {layer.digest} ({rel}) is missing (the store is damaged)")
        link = directory / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(self.blob_path(layer.digest), link.parent))

    # -- garbage collection --------------------------------------------------------------------
    def _remove_temps(self) -> None:
        """With the lock held alone: no writer runs, so every temp file is a dead one's."""
        for directory in (self.blobs, self.manifests, self.checkpoints, self.root / "verified"):
            remove_stale_temps(directory, all_stale=True)

    def _recent_uploads(self) -> set[str]:
        """Digests uploaded less than UPLOAD_GRACE ago; older upload markers are removed."""
        recent, now = set(), time.time()
        uploads = self.root / "uploads"
        for marker in uploads.glob("sha256-*") if uploads.is_dir() else ():
            try:
                fresh = now - marker.stat().st_mtime < UPLOAD_GRACE
            except OSError:
                continue
            if fresh:
                recent.add(marker.name.replace("-", ":", 1))
            else:
                marker.unlink(missing_ok=True)
        return recent

    def upload(self, digest: str, expected: int = 0) -> Upload:
        """Receive the blob `digest` in pieces (`Upload`)."""
        return Upload(self, digest, expected)

    def sweep(self) -> None:
        """Remove what killed writers left behind (`ossy serve` does this when it starts);
        skipped while a writer runs."""
        if self.read_only:
            return
        lock = StoreLock(self.root)
        if lock.try_exclusive():
            with lock:
                self._remove_temps()

    def gc(self) -> None:
        """Remove blobs and checkpoint directories that no manifest uses, and dead writers'
        temp files. Skipped (until next time) while any writer holds the lock."""
        if self.read_only:
            return
        lock = StoreLock(self.root)
        if not lock.try_exclusive():
            return
        with lock:
            self._remove_temps()
            listing = self.scan()
            if listing.problems:
                return  # a corrupt manifest: we cannot tell what it uses, so delete nothing
            manifests = [m.manifest for m in listing.models]
            used = {layer.digest for m in manifests for layer in (m.config, *m.layers)} | self._recent_uploads()
            for blob in self.blobs.glob("sha256-*") if self.blobs.is_dir() else ():
                if blob.name.replace("-", ":", 1) not in used:
                    blob.unlink(missing_ok=True)
            records = self.root / "verified"
            for record in records.glob("sha256-*") if records.is_dir() else ():
                if not (self.blobs / record.name).exists():
                    record.unlink(missing_ok=True)
            keys = {checkpoint_key(m.of_type(mt.CHECKPOINT_FILE)) for m in manifests}
            for directory in self.checkpoints.iterdir() if self.checkpoints.is_dir() else ():
                if directory.name not in keys and not directory.name.startswith("."):
                    shutil.rmtree(directory, ignore_errors=True)


class Upload:
    """A blob arriving in pieces (POST /api/blobs/DIGEST): hashed as it is written under a temp
    name, and named only when `finish` finds it matches `digest`. A context manager holding the
    store lock shared; leaving it unfinished discards the bytes. Uploaded blobs no manifest uses
    yet are kept by `gc` for `UPLOAD_GRACE` seconds, for the create that names them."""

    def __init__(self, store: "Store", digest: str, expected: int = 0) -> None:
        store._writable()
        self.store, self.digest, self.expected = store, digest, expected
        self.size = 0
        self._hash = hashlib.sha256()
        self._lock = StoreLock(store.root).shared()
        try:
            self._tmp: TempFile | None = TempFile(store.blobs)
        except BaseException:
            self._lock.release()
            raise

    def __enter__(self) -> "Upload":
        return self

    def __exit__(self, *exc) -> None:
        if self._tmp is not None:
            self._tmp.discard()
        self._lock.release()

    def _space(self):
        return disk_space(self.store, f"blob {self.digest}", max(self.expected, self.size))

    def write(self, data: bytes) -> None:
        with self._space():
            self._tmp.write(data)
        self._hash.update(data)
        self.size += len(data)

    def finish(self) -> None:
        """Name the blob, or raise: the bytes do not hash to `digest` (a 400), the disk is full."""
        got = "sha256:" + self._hash.hexdigest()
        if got != self.digest:
            raise OssyError(f"digest mismatch: the uploaded bytes hash to {got}, not {self.digest}")
        with self._space():
            self._tmp.finish()
        path, self._tmp = self._tmp.path, None
        publish(path, self.store.blob_path(self.digest), replace=not self.store.sound(self.digest))
        self.store.record_verified(self.digest)
        marker = self.store.root / "uploads" / self.store.blob_path(self.digest).name
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()


UPLOAD_GRACE = 24 * 3600.0  # seconds an uploaded blob waits for the create that names it


@dataclass
class Listing:
    models: list[Model] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # manifests left out, and why


class Transaction:
    """One write to a store: blobs are staged under temp names and named only by `commit`,
    right before the manifest, so an interrupted write leaves no new blob and no manifest.

    A context manager holding the store lock shared; leaving it discards what was not committed.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = StoreLock(store.root).shared()
        self._staged: dict[str, Path] = {}  # digest -> finished temp file
        self._replaced = False  # a commit overwrote a manifest: its old blobs may be unused now
        remove_stale_temps(store.blobs)

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, *exc) -> None:
        for temp in self._staged.values():
            temp.unlink(missing_ok=True)
        self._staged.clear()
        self._lock.release()
        if self._replaced:
            self.store.gc()

    def has(self, digest: str) -> bool:
        return digest in self._staged or self.store.blob_path(digest).is_file()

    def needs(self, digest: str) -> bool:
        """Whether the blob must be written: neither staged nor sound in the store (a corrupt
        one is written again, so re-creating a model repairs it)."""
        return digest not in self._staged and not self.store.sound(digest)

    def read(self, layer: Layer) -> bytes:
        staged = self._staged.get(layer.digest)
        return staged.read_bytes() if staged else self.store.read_blob(layer)

    def put(self, media_type: str, data: bytes, name: str | None = None) -> tuple[Layer, bool]:
        """Stage `data` as a blob; (its layer, whether the blob is new to the store)."""
        layer = Layer.of(media_type, data, name)
        new = self.needs(layer.digest)
        if new:
            self.put_stream(io.BytesIO(data))
        return layer, new

    def put_stream(self, stream, counter: Counter | None = None) -> tuple[str, int]:
        """Stage the bytes of `stream` as a blob while hashing them; (digest, size)."""
        h = hashlib.sha256()
        size = 0
        tmp = TempFile(self.store.blobs)
        try:
            while chunk := stream.read(CHUNK):
                h.update(chunk)
                tmp.write(chunk)
                size += len(chunk)
                if counter:
                    counter.advance(len(chunk))
            tmp.finish()
        except BaseException:
            tmp.discard()
            raise
        digest = "sha256:" + h.hexdigest()
        if not self.needs(digest):
            tmp.path.unlink()
        else:
            self._staged[digest] = tmp.path
        return digest, size

    def stage_verified(self, path: Path, digest: str) -> None:
        """Stage the finished file at `path` (in this store's file system), already hashed to
        `digest` (a completed download): moved, not copied."""
        staged = temp_name(self.store.blobs)
        self.store.blobs.mkdir(parents=True, exist_ok=True)
        os.replace(path, staged)
        self._staged[digest] = staged

    def adopt(self, source: Store, layer: Layer, counter: Counter) -> None:
        """Stage `source`'s blob for `layer`: a hard link when both stores share a file system
        (no copy, and it outlives Ollama pruning its own), else a copy checked against the digest."""
        if not self.needs(layer.digest):
            counter.advance(layer.size)
            return
        src = source.blob_path(layer.digest)
        if not src.is_file():
            raise OssyError(f"{source.root}: blob {layer.digest} is missing (the store is damaged)")
        link = temp_name(self.store.blobs)
        try:
            os.link(src, link)
        except OSError:  # another file system, or no hard links: copy
            with open(src, "rb") as f:
                digest, _ = self.put_stream(f, counter)
            if digest != layer.digest:
                self._staged.pop(digest).unlink()
                raise CorruptError(f"{src}: content does not match its digest {layer.digest}") from None
            return
        self._staged[layer.digest] = link
        if hash_file(link)[0] != layer.digest:  # a link names the bytes as they are: check them first
            raise CorruptError(f"{src}: content does not match its digest {layer.digest}")
        counter.advance(layer.size)

    def commit(self, name: ModelName, data: bytes) -> Model:
        """Name the blobs the manifest `data` uses, then the manifest itself."""
        manifest = Manifest.from_json(data, f"manifest for '{name}'")
        layers = (manifest.config, *manifest.layers)
        for layer in layers:
            if not self.has(layer.digest):
                raise OssyError(f"cannot write '{name}': blob {layer.digest} is missing")
        for layer in layers:
            if layer.digest in self._staged:
                publish(self._staged.pop(layer.digest), self.store.blob_path(layer.digest),
                        replace=not self.store.sound(layer.digest))
                self.store.record_verified(layer.digest)
        self._replaced = self._replaced or self.store.get(name) is not None
        atomic_write(self.store.manifests / name.path, data)
        model = self.store.get(name)
        assert model is not None
        return model


def checkpoint_key(files: list[Layer]) -> str:
    listing = json.dumps([[layer.name, layer.digest] for layer in files]).encode()
    return hashlib.sha256(listing).hexdigest()[:32]


def safe_relative(name: str) -> PurePosixPath | None:
    """`name` as a relative path that stays inside its directory, else None."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(part in ("", ".", "..") for part in path.parts):
        return None
    return path


class Library:
    """The models ossy sees: its own store first, then the Ollama store (read-only). Looking up
    and listing only read: the bundled models (`ossy.store.bundled`) are stored by an explicit step."""

    def __init__(self, store: Store, ollama: Store | None = None) -> None:
        self.store = store
        self.ollama = ollama

    @classmethod
    def from_settings(cls, s: Settings) -> "Library":
        """ossy's store (OSSY_MODELS) and the Ollama store (OLLAMA_MODELS) of `s`."""
        same = s.ollama_models.resolve() == s.models.resolve()
        return cls(Store(s.models), None if same else Store(s.ollama_models, read_only=True))

    @property
    def stores(self) -> list[Store]:
        return [self.store] + ([self.ollama] if self.ollama else [])

    def find(self, name: str | ModelName) -> Model | None:
        name = parse_name(name) if isinstance(name, str) else name
        for store in self.stores:
            model = store.get(name)
            if model is not None:
                return model
        return None

    def get(self, name: str | ModelName) -> Model:
        model = self.find(name)
        if model is None:
            raise NotFoundError(f"model '{name}' not found")
        return model

    def models(self) -> list[Model]:
        return self.listing().models

    def listing(self) -> Listing:
        """Every readable model of both stores, and the manifests left out (`Store.scan`)."""
        listing = Listing()
        for store in self.stores:
            found = store.scan()
            listing.models += found.models
            listing.problems += found.problems
        return listing

    def bring(self, model: Model, tx: Transaction, progress: Progress) -> None:
        """Stage in `tx` every blob of `model` that the ossy store lacks (adopting Ollama's)."""
        if model.store is self.store:
            return
        layers = (model.manifest.config, *model.manifest.layers)
        counter = Counter(progress, "copying model files", sum(layer.size for layer in layers))
        for layer in layers:
            tx.adopt(model.store, layer, counter)

    def copy(self, src: str, dst: str, progress: Progress | None = None) -> Model:
        """`ollama cp`: the same manifest under a second name (so the same ID)."""
        model = self.get(src)
        target = parse_name(dst)
        with self.store.transaction() as tx:
            self.bring(model, tx, progress or Progress())
            return tx.commit(target, model.raw)

    def remove(self, name: str) -> None:
        """Remove a model of the ossy store, also one whose manifest is corrupt."""
        parsed = parse_name(name)
        if not self.store.has_manifest(parsed):
            if self.ollama and self.ollama.has_manifest(parsed):
                raise ReadOnlyError(f"model '{name}' is in the Ollama store ({self.ollama.root}), which ossy "
                                    f"only reads; remove it with 'ollama rm {name}'")
            raise NotFoundError(f"model '{name}' not found")
        self.store.delete_manifest(parsed)
        self.store.gc()
