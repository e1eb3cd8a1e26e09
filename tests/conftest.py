"""Shared test fixtures: where the read-only reference data in ../shared lives."""

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


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def vocab_dir(shared_dir) -> Path:
    return shared_dir / "vocab"


@pytest.fixture
def audit(tmp_path):
    """An empty tool audit log in the test's own directory."""
    from ossy.tools.audit import AuditLog

    return AuditLog(tmp_path / "audit.sqlite")
