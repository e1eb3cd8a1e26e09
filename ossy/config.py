"""Runtime settings: the only module that reads environment variables.

Owns: the names, forms and defaults of every OSSY_* variable, and the Ollama variables read in
their place when the OSSY_ one is unset (OLLAMA_HOST, OLLAMA_KEEP_ALIVE, OLLAMA_NUM_PARALLEL,
OLLAMA_MAX_QUEUE, OLLAMA_ORIGINS, OLLAMA_CONTEXT_LENGTH; OLLAMA_MODELS finds an existing Ollama
store). A value that cannot be read is a `SettingsError` naming the variable (the CLI prints it
as one line). Does not own: model configuration (`ossy.model.config`) or per-request options.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ossy.duration import parse_duration
from ossy.errors import OssyError
from ossy.model.backends import KERNEL_CHOICES

DEFAULT_MAX_BODY = 16 << 20  # bytes of a request body (a 131k-token conversation is ~1 MB of JSON)


class SettingsError(OssyError):
    """An environment variable ossy cannot use."""


@dataclass(frozen=True)
class Settings:
    home: Path  # OSSY_HOME, default ~/.ossy
    models: Path  # OSSY_MODELS, default <home>/models
    ollama_models: Path  # OLLAMA_MODELS, default ~/.ollama/models, else the Linux service's (read-only source)
    host: str  # OSSY_HOST | OLLAMA_HOST, default 127.0.0.1:11434
    num_parallel: int  # OSSY_NUM_PARALLEL | OLLAMA_NUM_PARALLEL, decode slots
    max_queue: int  # OSSY_MAX_QUEUE | OLLAMA_MAX_QUEUE, waiting requests before 503
    keep_alive: float = 300.0  # OSSY_KEEP_ALIVE | OLLAMA_KEEP_ALIVE, seconds an idle model stays loaded; < 0 forever
    search_url: str = ""  # OSSY_SEARCH_URL, a SearXNG-style JSON search endpoint for browser.search
    origins: tuple[str, ...] = ()  # OSSY_ORIGINS | OLLAMA_ORIGINS, browser origins allowed besides the defaults
    context_length: int | None = None  # OSSY_CONTEXT_LENGTH | OLLAMA_CONTEXT_LENGTH, default num_ctx
    max_body: int = DEFAULT_MAX_BODY  # OSSY_MAX_BODY, bytes of a request body (blob uploads excepted)
    create_root: Path | None = None  # OSSY_CREATE_ROOT, where /api/create may read `from` directories
    kernels: str = "auto"  # OSSY_KERNELS: auto | avx512 | avx2 | torch (the PyTorch path)
    num_threads: int | None = None  # OSSY_NUM_THREADS, threads of the native kernels; None: the physical cores
    backend: str = "local"  # OSSY_BACKEND: local (ossy's engine) | vllm (vLLM in process) | vllm:URL (a vLLM server)
    vllm_args: dict = field(default_factory=dict)  # OSSY_VLLM_ARGS: a JSON object of vLLM engine arguments


def settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings from `environ` (default: the process environment) at call time."""
    env = _Env(os.environ if environ is None else environ)
    home = Path(env.text("OSSY_HOME") or Path.home() / ".ossy").expanduser()
    return Settings(
        home=home,
        models=Path(env.text("OSSY_MODELS") or home / "models").expanduser(),
        ollama_models=Path(env.text("OLLAMA_MODELS") or _ollama_default()).expanduser(),
        host=env.text("OSSY_HOST", "OLLAMA_HOST") or "127.0.0.1:11434",
        num_parallel=env.number("OSSY_NUM_PARALLEL", "OLLAMA_NUM_PARALLEL", default=4, zero=4),
        max_queue=env.number("OSSY_MAX_QUEUE", "OLLAMA_MAX_QUEUE", default=512, low=0),
        keep_alive=env.duration("OSSY_KEEP_ALIVE", "OLLAMA_KEEP_ALIVE", default=300.0),
        search_url=env.text("OSSY_SEARCH_URL") or "",
        origins=tuple(o.strip() for o in (env.text("OSSY_ORIGINS", "OLLAMA_ORIGINS") or "").split(",") if o.strip()),
        context_length=env.number("OSSY_CONTEXT_LENGTH", "OLLAMA_CONTEXT_LENGTH", default=None, zero=None),
        max_body=env.size("OSSY_MAX_BODY", default=DEFAULT_MAX_BODY),
        create_root=Path(root).expanduser() if (root := env.text("OSSY_CREATE_ROOT")) else None,
        kernels=env.choice("OSSY_KERNELS", KERNEL_CHOICES, default="auto"),
        num_threads=env.number("OSSY_NUM_THREADS", default=None, zero=None),
        backend=parse_backend(env.text("OSSY_BACKEND") or "local", "OSSY_BACKEND"),
        vllm_args=env.json_object("OSSY_VLLM_ARGS"),
    )


def parse_backend(value: str, source: str = "--backend") -> str:
    """"local", "vllm" or "vllm:http(s)://host:port" (a vLLM server); else a SettingsError."""
    if value in ("local", "vllm") or (value.startswith("vllm:") and value[5:].startswith(("http://", "https://"))):
        return value
    raise SettingsError(f"{source}={value!r}: expected local, vllm, or vllm:URL such as vllm:http://127.0.0.1:8000")


DEFAULT_PORT = 11434  # Ollama's


def parse_host(host: str) -> tuple[str, str, int]:
    """`OSSY_HOST` ("127.0.0.1:11434", "0.0.0.0", ":8080", "myhost", "http://[::1]:11434/") ->
    (scheme, address, port): scheme "http" unless given, address "" when left out (IPv6 without
    its brackets), port `DEFAULT_PORT` unless given. A port that is not a number is an error."""
    text = (host or "").strip().rstrip("/")
    scheme, _, rest = text.rpartition("://")
    if rest.startswith("["):
        address, _, port = rest[1:].partition("]")
        port = port.removeprefix(":")
    elif rest.count(":") == 1:
        address, port = rest.split(":")
    else:
        address, port = rest, ""
    if port and not port.isdigit():
        raise SettingsError(f"invalid host {host!r}: expected HOST:PORT such as 127.0.0.1:{DEFAULT_PORT}")
    return scheme or "http", address, int(port) if port else DEFAULT_PORT


_SIZE = re.compile(r"(\d+)\s*([kmg]i?b?)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class _Env:
    """Typed reads of the environment; the first set variable of a list wins (OSSY_ before OLLAMA_)."""

    def __init__(self, environ) -> None:
        self.environ = environ

    def _first(self, *names: str) -> tuple[str, str] | None:
        for name in names:
            value = self.environ.get(name)
            if value is not None and value.strip():
                return name, value.strip()
        return None

    def text(self, *names: str) -> str | None:
        found = self._first(*names)
        return found[1] if found else None

    def number(self, *names: str, default, low: int = 1, zero=0):
        """A whole number >= `low`; 0 gives `zero` (Ollama: 0 = automatic)."""
        found = self._first(*names)
        if found is None:
            return default
        name, value = found
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r}: expected a whole number") from None
        if number == 0 and zero != 0:
            return zero
        if number < low:
            raise SettingsError(f"{name}={value!r}: expected a whole number of at least {low}")
        return number

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name)
        if value is None:
            return default
        if value not in choices:
            raise SettingsError(f"{name}={value!r}: expected one of {', '.join(choices)}")
        return value

    def json_object(self, name: str) -> dict:
        value = self.text(name)
        if value is None:
            return {}
        try:
            parsed = json.loads(value)
        except ValueError as e:
            raise SettingsError(f"{name}: not JSON ({e})") from None
        if not isinstance(parsed, dict):
            raise SettingsError(f"{name}: expected a JSON object such as {{\"tensor_parallel_size\": 2}}")
        return parsed

    def duration(self, *names: str, default: float) -> float:
        found = self._first(*names)
        if found is None:
            return default
        name, value = found
        try:
            return parse_duration(value)
        except ValueError as e:
            raise SettingsError(f"{name}={value!r}: {e}") from None

    def size(self, name: str, default: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        match = _SIZE.fullmatch(value)
        if not match or int(match[1]) == 0:
            raise SettingsError(f"{name}={value!r}: expected a size in bytes such as 16777216 or 16MiB")
        return int(match[1]) * _SIZE_UNITS[(match[2] or "")[:1].lower()]


OLLAMA_SERVICE_MODELS = Path("/usr/share/ollama/.ollama/models")  # Ollama's Linux service (its own user)


def _ollama_default() -> Path:
    """~/.ollama/models, or the Linux service's store when only that one exists."""
    home = Path.home() / ".ollama" / "models"
    return OLLAMA_SERVICE_MODELS if not home.is_dir() and OLLAMA_SERVICE_MODELS.is_dir() else home
