"""The chat page (`ossy.server.page`) and its agent endpoint (`ossy.server.agent`).

Over HTTP: what `/` answers whom, the page's files and headers, who may run tools. In a real
browser (Debian's chromium driven by Playwright, launched with the system executable): nano
answers a question with a tool card, streamed reasoning and the answer; the model card; the
expert heatmap; conversations kept in the browser; a narrow window; an approval asked in the page
that decides whether a file is written. A failing browser test leaves a screenshot in
`tests/screenshots/` (ignored by git).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from stub_engine import RunningServer, StubEngine, tokenizer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent / "screenshots"


# ---- over HTTP -----------------------------------------------------------------------------------
def test_a_browser_gets_the_page_and_a_client_gets_ollamas_text(server):
    url, _ = server
    page = httpx.get(url + "/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>ossy</title>" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "default-src 'none'" in csp
    plain = httpx.get(url + "/")
    assert plain.text == "Ollama is running"
    assert httpx.head(url + "/").status_code == 200


@pytest.mark.parametrize("name", ["app.js", "style.css", "vendor/marked.umd.js", "vendor/purify.min.js"])
def test_the_pages_files_are_served_from_the_package(server, name):
    url, _ = server
    response = httpx.get(f"{url}/page/{name}")
    assert response.status_code == 200 and response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (Path(__file__).parents[1] / "ossy" / "server" / "page" / name).read_bytes()


@pytest.mark.parametrize("name", ["index.html.bak", "../agent.py", "vendor/purify.LICENSE", "%2e%2e/page.py"])
def test_nothing_else_is_served_under_page(server, name):
    url, _ = server
    response = httpx.get(f"{url}/page/{name}")
    assert response.status_code == 404 and "error" in response.json()


def test_another_local_page_cannot_run_tools(server):
    """Ollama's default origins allow every localhost port; tools need this server's own origin."""
    url, _ = server
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
    foreign = httpx.post(url + "/api/agent", json=body, headers={"Origin": "http://localhost:3000"})
    assert foreign.status_code == 403 and "may not run tools" in foreign.json()["error"]
    answer = httpx.post(url + "/api/agent/approvals/x", json={"answer": "yes"}, headers={"Origin": "http://localhost:3000"})
    assert answer.status_code == 403
    own = httpx.post(url + "/api/agent", json=body, headers={"Origin": url})
    assert own.status_code == 200
    events = [json.loads(line) for line in own.text.splitlines()]
    assert events[-1]["type"] == "done" and events[-1]["answer"] == "Hello! How can I help?"


def test_bad_agent_requests_are_clear_400s_and_404s(server):
    url, _ = server
    unknown = httpx.post(url + "/api/agent", json={"model": "tiny", "messages": [], "toolsets": ["nope"]})
    assert unknown.status_code == 400 and 'unknown toolset "nope"' in unknown.json()["error"]
    missing = httpx.post(url + "/api/agent", json={"model": "nope", "messages": []})
    assert missing.status_code == 404
    steps = httpx.post(url + "/api/agent", json={"model": "tiny", "messages": [], "max_steps": 0})
    assert steps.status_code == 400 and "max_steps" in steps.json()["error"]
    nobody = httpx.post(url + "/api/agent/approvals/nobody", json={"answer": "yes"})
    assert nobody.status_code == 404 and "no approval" in nobody.json()["error"]
    word = httpx.post(url + "/api/agent/approvals/nobody", json={"answer": "sure"})
    assert word.status_code == 400 and "answer must be one of" in word.json()["error"]


def test_toolsets_are_listed(server):
    url, _ = server
    listed = {t["name"]: t["tools"] for t in httpx.get(url + "/api/agent/toolsets").json()["toolsets"]}
    assert list(listed) == ["fs", "shell", "system", "python", "browser"]
    assert "write_file" in listed["fs"] and "df" in listed["system"]


# ---- in a browser --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield opened
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        SCREENSHOTS.mkdir(exist_ok=True)
        opened.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert errors == [], f"the page logged errors: {errors}"


def test_nano_answers_with_a_tool_card_reasoning_and_the_heatmap(page, nano_url):
    from playwright.sync_api import expect

    page.goto(nano_url + "/")
    expect(page.locator("#model")).to_have_value("nano:latest")
    page.check("#toolset-system")
    page.fill("#prompt", "How much disk space is left?")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("Done", timeout=60_000)

    card = page.locator(".card.tool").first
    expect(card.locator(".title")).to_have_text("Tool call: df")
    expect(card.locator(".output")).to_contain_text("Filesystem")  # the real df ran
    reasoning = page.locator("details.reasoning").first
    expect(reasoning).not_to_have_attribute("open", "")
    reasoning.locator("summary").click()
    expect(reasoning.locator("div")).not_to_be_empty()
    answer = page.locator(".message.assistant .content").last
    expect(answer).to_contain_text("The root file system has")

    page.click("#show-info")
    expect(page.locator("#panel")).to_contain_text("capabilities")
    expect(page.locator("#panel")).to_contain_text("completion, tools, thinking")
    shown = httpx.post(nano_url + "/api/show", json={"model": "nano", "verbose": True}).json()["memory"]
    expect(page.locator("#panel")).to_contain_text(f"({shown['slots']} slots of {shown['num_ctx']} tokens)")
    page.click("#show-experts")
    expect(page.locator("#panel-title")).to_contain_text("Expert routing: nano:latest")
    cells = page.locator("table.heatmap td")
    expect(cells).to_have_count(4 * 8)
    counts = [int(c) for c in cells.evaluate_all("cells => cells.map(c => c.dataset.count)")]
    experts = httpx.get(nano_url + "/api/experts", params={"model": "nano"}).json()
    assert counts == [n for row in experts["counts"] for n in row] and sum(counts) > 0
    page.click(".experts-button")
    expect(page.locator("#panel-title")).to_have_text("Experts that fired for this answer")

    page.reload()  # the conversation is kept in the browser
    page.locator("#conversations button.open").first.click()
    expect(page.locator(".message.user .body")).to_have_text("How much disk space is left?")
    expect(page.locator(".card.tool .title")).to_have_text("Tool call: df")
    expect(page.locator(".message.assistant .content").last).to_contain_text("The root file system has")


def test_a_narrow_window_hides_the_conversations_behind_a_button(page, nano_url):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 380, "height": 700})
    page.goto(nano_url + "/")
    expect(page.locator("#sidebar")).to_be_hidden()
    page.click("#toggle-sidebar")
    expect(page.locator("#sidebar")).to_be_visible()
    expect(page.locator("#toggle-sidebar")).to_have_attribute("aria-expanded", "true")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 380  # nothing forces sideways scrolling


def writer(prompt_text: str, request) -> str:
    """A scripted model that writes a file, then reports what the tool said."""
    last = prompt_text.rsplit("<|start|>", 2)[-2] if prompt_text.count("<|start|>") >= 2 else prompt_text
    if last.startswith("functions.write_file"):
        said = "denied" if "did not approve" in last else "written"
        return f"<|channel|>final<|message|>The file was {said}.<|return|>"
    return ("<|channel|>analysis<|message|>I will write the file.<|end|>"
            "<|start|>assistant<|channel|>commentary to=functions.write_file <|constrain|>json"
            '<|message|>{"path": "hello.txt", "content": "hi from the page"}<|call|>')


@pytest.fixture
def writer_url(tmp_path):
    """A live server whose "tiny" (a context long enough for the fs tools' schemas) is `writer`."""
    from store_util import make_checkpoint

    from ossy.chat.models import StoreResolver
    from ossy.modelfile import parse
    from ossy.server import create_app
    from ossy.store import Library, Store, create

    library = Library(Store(tmp_path / "models"))
    create(library, "tiny", parse(f"FROM {make_checkpoint(tmp_path / 'ckpt', context=16384)}\n"), base_dir=tmp_path)
    resolver = StoreResolver(library, load_tokenizer=lambda directory: tokenizer())
    app = create_app(StubEngine(tokenizer(), writer), resolver, library)
    app.state.ossy.workspace = tmp_path / "work"
    app.state.ossy.workspace.mkdir()
    with RunningServer(app) as url:
        yield url, app.state.ossy.workspace


@pytest.mark.parametrize("button, written", [("allow", True), ("deny", False)])
def test_an_approval_in_the_page_decides_whether_the_file_is_written(page, writer_url, button, written):
    from playwright.sync_api import expect

    url, workspace = writer_url
    page.goto(url + "/")
    expect(page.locator("#model")).to_have_value("tiny:latest")
    page.check("#toolset-fs")
    page.fill("#prompt", "Write hello.txt please")
    page.click("#send")
    approval = page.locator(".card.approval")
    expect(approval).to_contain_text("write_file (fs) wants to run")
    expect(approval.locator(".preview")).to_contain_text("hello.txt")
    assert not (workspace / "hello.txt").exists()  # nothing happens before the answer
    approval.locator(f"button.{button}").click()
    expect(page.locator("#status")).to_contain_text("Done", timeout=30_000)
    expect(page.locator(".message.assistant .content").last).to_have_text(
        f"The file was {'written' if written else 'denied'}.")
    assert (workspace / "hello.txt").exists() is written
    if written:
        assert (workspace / "hello.txt").read_text() == "hi from the page"
    expect(page.locator(".card.tool .result")).to_contain_text("ok" if written else "denied")


def test_stop_ends_a_waiting_approval_and_the_page_stays_usable(page, writer_url):
    from playwright.sync_api import expect

    url, workspace = writer_url
    page.goto(url + "/")
    expect(page.locator("#model")).to_have_value("tiny:latest")
    page.check("#toolset-fs")
    page.fill("#prompt", "Write hello.txt please")
    page.keyboard.press("Enter")
    expect(page.locator(".card.approval")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#status")).to_have_text("Stopped.")
    expect(page.locator("#send")).to_be_visible()
    assert not (workspace / "hello.txt").exists()
