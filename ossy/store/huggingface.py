"""Pulling a gpt-oss safetensors checkpoint from the Hugging Face Hub (`ossy pull
hf.co/openai/gpt-oss-20b`): the repo's checkpoint files downloaded with huggingface_hub (resumable:
an interrupted pull continues its files), then stored as `ossy create` stores a checkpoint
directory, under the name pulled.

Owns: which hosts are the Hub (`HUB_ENDPOINTS`), telling a safetensors repo from a GGUF one (a GGUF
repo, or a name with a `:QUANT` tag, goes through the registry protocol in `ossy.store.registry`,
which the Hub also speaks), which files make the checkpoint (the top level only: not `original/`
or `metal/`), and progress events per file. Does not own: downloading itself (huggingface_hub),
storing (`ossy.store.create`), the events' shape (`ossy.store.pull_event`).

The download sits under `<store>/partial/hf/` until the model is stored, then is removed: the
store keeps one copy (the disk holds two while the files are copied into blobs).
"""

from __future__ import annotations

import shutil
import threading
from fnmatch import fnmatch
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from ossy.errors import NotFoundError, RegistryError
from ossy.store.pull_event import PullEvent

HUB_ENDPOINTS = {"hf.co": "https://huggingface.co", "huggingface.co": "https://huggingface.co"}
CHECKPOINT_FILES = ("config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json",
                    "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja")


def checkpoint_files(remote) -> list[tuple[str, int]] | None:
    """(file, size) of the checkpoint a Hub name points at, or None when the name is not a Hub
    safetensors repo (another host, a `:QUANT` tag, or a repo without top-level safetensors)."""
    endpoint = HUB_ENDPOINTS.get(remote.name.host)
    if endpoint is None or remote.name.tag != "latest":
        return None

    repo = f"{remote.name.namespace}/{remote.name.model}"
    try:
        info = HfApi(endpoint=endpoint).model_info(repo, files_metadata=True)
    except RepositoryNotFoundError:
        raise NotFoundError(f"pull model manifest: model '{remote.name}' not found on {remote.name.host}") from None
    except (HfHubHTTPError, OSError) as e:
        raise RegistryError(f"cannot read {repo} on {remote.name.host}: {str(e).splitlines()[0]}") from None
    files = [(s.rfilename, s.size or 0) for s in info.siblings or [] if _wanted(s.rfilename)]
    if not any(name.endswith(".safetensors") for name, _ in files):
        return None
    return files


def _wanted(name: str) -> bool:
    return "/" not in name and any(fnmatch(name, pattern) for pattern in CHECKPOINT_FILES)


def download(remote, files: list[tuple[str, int]], directory: Path, progress) -> Path:
    """Download `files` of the repo into `directory` (resuming what an earlier pull left)."""
    repo, endpoint = f"{remote.name.namespace}/{remote.name.model}", HUB_ENDPOINTS[remote.name.host]
    for name, size in files:
        status = f"pulling {name}"
        watcher = _Watcher(directory, lambda done, s=status, n=name, t=size: progress(PullEvent(s, n, t, min(done, t))))
        progress(PullEvent(status, name, size, 0))
        watcher.start()
        try:
            hf_hub_download(repo, name, local_dir=directory, endpoint=endpoint)
        except (HfHubHTTPError, OSError) as e:
            raise RegistryError(f"pull {name} from {remote.name.host}: {str(e).splitlines()[0]}") from None
        finally:
            watcher.stop()
        progress(PullEvent(status, name, size, size))
    return directory


class _Watcher:
    """Reports the bytes of the file being downloaded (huggingface_hub's `.incomplete` file) every
    0.2 s, on a thread of its own."""

    def __init__(self, directory: Path, report) -> None:
        self.directory, self.report = directory, report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            done = sum(p.stat().st_size for p in self.directory.glob(".cache/huggingface/download/**/*.incomplete")
                       if p.is_file())
            if done:
                self.report(done)


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
