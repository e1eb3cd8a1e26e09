"""Shared test fixtures: where the read-only reference data in ../shared lives, the tool audit
log, and `server`: a live server over the stub engine's scripted model (`stub_engine.stub_server`),
one per test module (a module that defines its own `server` uses that one).

`require(ok, what)`: a test that needs something outside the repository (the reference data in
../shared, Go, bubblewrap, a CPU path of the kernels) fails in CI when it is missing (`CI` set,
as `.ci/run` runs), so a reference check can never vanish there; on a developer machine it is
skipped with the same message."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
VOCAB = SHARED / "vocab"

# openai-harmony reads its vocab from here (offline, hash-checked); must be set before first use.
os.environ.setdefault("TIKTOKEN_ENCODINGS_BASE", str(VOCAB))
# What a server writes to its home (stored responses...) never lands in the real ~/.ossy.
os.environ.setdefault("OSSY_HOME", tempfile.mkdtemp(prefix="ossy-test-home-"))


def require(ok: object, what: str) -> None:
    """Go on when `ok`; else fail in CI and skip elsewhere, saying `what` is missing."""
    if not ok:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{what} (required in CI)")


@pytest.fixture(scope="session")
def bwrap() -> None:
    """bubblewrap usable here (`make sandbox` installs it)."""
    from ossy import sandbox

    backend = sandbox.backend()
    require(backend.name == "bwrap", f"bubblewrap unusable here: {backend.problem}")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    require(SHARED.is_dir(), "../shared is not beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def vocab_dir(shared_dir) -> Path:
    return shared_dir / "vocab"


@pytest.fixture
def audit(tmp_path):
    """An empty tool audit log in the test's own directory."""
    from ossy.tools.audit import AuditLog

    return AuditLog(tmp_path / "audit.sqlite")


@pytest.fixture(scope="module")
def nano_url(tmp_path_factory):
    """The base url of a live server running the bundled nano (LocalEngine, 2 slots) from a
    scratch store."""
    from stub_engine import RunningServer

    from ossy.chat.models import StoreResolver
    from ossy.engine.scheduler import LocalEngine
    from ossy.server import create_app
    from ossy.store import Library, Store
    from ossy.store.bundled import install_missing

    library = Library(Store(tmp_path_factory.mktemp("home") / "models"))
    assert install_missing(library) == []
    with RunningServer(create_app(LocalEngine(num_parallel=2, keep_alive=60), StoreResolver(library), library)) as url:
        yield url


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base url, StubEngine) of a live server over the scripted stub model and a tiny store."""
    from stub_engine import stub_server

    with stub_server(tmp_path_factory.mktemp("store")) as running:
        yield running


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test item (`item.rep_call`), for fixtures that act on failure
    (the browser tests' screenshots)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
