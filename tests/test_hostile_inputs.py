"""Hostile input against a real server over loopback: the real `LocalEngine`, a tiny random
gpt-oss checkpoint with the gpt-oss vocabulary, a real model store.

Every case sends one request and checks its status, that an error is the JSON shape of its API
family ({"error": "..."} on /api, {"error": {message, type, param, code}} on /v1), that no
traceback leaks and that nothing answers 500; then a real generation must still complete, so an
input that kills or stalls the engine fails the case that sent it. The engine-death inputs
(`keep_alive` of "100000000h", 1e10, "inf") are among them.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from store_util import greedy_tiny_library
from stub_engine import RunningServer, tokenizer

from ossy.chat.models import StoreResolver
from ossy.config import settings
from ossy.server import create_app

HI = [{"role": "user", "content": "Hi"}]
MAX_BODY = 1 << 20
BAD_DIGEST = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from ossy.engine.scheduler import LocalEngine

    root = tmp_path_factory.mktemp("hostile")
    library = greedy_tiny_library(root)
    s = settings({"OSSY_HOME": str(root / "home"), "OSSY_MAX_BODY": str(MAX_BODY)})
    engine = LocalEngine(dtype="float32", num_parallel=2, max_queue=8)
    app = create_app(engine, StoreResolver(library, lambda directory: tokenizer()), library, settings=s)
    with RunningServer(app) as url:
        yield url, library, engine


def chat(**fields) -> dict:
    return {"model": "tiny", "messages": HI, "stream": False, "options": {"num_predict": 2}, **fields}


def gen(**fields) -> dict:
    return {"model": "tiny", "prompt": "Hi", "stream": False, "options": {"num_predict": 2}, **fields}


def v1(**fields) -> dict:
    return {"model": "tiny", "messages": HI, "max_tokens": 2, **fields}


def tool(parameters) -> list[dict]:
    return [{"type": "function", "function": {"name": "get_weather", "parameters": parameters}}]


def nested(depth: int) -> bytes:
    return b'{"model": "tiny", "messages": [], "options": ' + b"[" * depth + b"]" * depth + b"}"


# (name, method, path, body: dict (JSON) | bytes (raw), expected status)
CASES = [
    # -- durations that used to end the engine thread, and their neighbours
    ("keep_alive 100000000h is forever", "POST", "/api/chat", chat(keep_alive="100000000h"), 200),
    ("keep_alive 1e10 is forever", "POST", "/api/chat", chat(keep_alive=1e10), 200),
    ("keep_alive inf", "POST", "/api/chat", chat(keep_alive="inf"), 400),
    ("keep_alive -inf", "POST", "/api/chat", chat(keep_alive="-inf"), 400),
    ("keep_alive nan", "POST", "/api/chat", chat(keep_alive="nan"), 400),
    ("keep_alive 1e400", "POST", "/api/chat", b'{"model": "tiny", "messages": [], "keep_alive": 1e400}', 400),
    ("keep_alive true", "POST", "/api/chat", chat(keep_alive=True), 400),
    ("keep_alive list", "POST", "/api/chat", chat(keep_alive=[5]), 400),
    ("keep_alive 5x", "POST", "/api/chat", chat(keep_alive="5x"), 400),
    ("keep_alive -1 is forever", "POST", "/api/chat", chat(keep_alive=-1), 200),
    ("keep_alive 1h30m", "POST", "/api/chat", chat(keep_alive="1h30m"), 200),
    ("keep_alive 1e10 on a load", "POST", "/api/generate", {"model": "tiny", "keep_alive": 1e10}, 200),
    ("keep_alive inf on a load", "POST", "/api/generate", {"model": "tiny", "keep_alive": "inf"}, 400),
    ("keep_alive huge on /api/chat load", "POST", "/api/chat", {"model": "tiny", "keep_alive": "9999999999h"}, 200),
    # -- types Go would refuse
    ("stream yes", "POST", "/api/chat", chat(stream="yes"), 400),
    ("stream 1", "POST", "/api/chat", chat(stream=1), 400),
    ("truncate no", "POST", "/api/chat", chat(truncate="no"), 400),
    ("logprobs yes", "POST", "/api/chat", chat(logprobs="yes"), 400),
    ("top_logprobs 100", "POST", "/api/chat", chat(logprobs=True, top_logprobs=100), 400),
    ("top_logprobs -1", "POST", "/api/chat", chat(logprobs=True, top_logprobs=-1), 400),
    ("think ultra", "POST", "/api/chat", chat(think="ultra"), 400),
    ("think 3", "POST", "/api/chat", chat(think=3), 400),
    ("model 5", "POST", "/api/chat", chat(model=5), 400),
    ("model missing", "POST", "/api/chat", {"messages": HI}, 400),
    ("model empty", "POST", "/api/chat", chat(model=""), 400),
    ("model unknown", "POST", "/api/chat", chat(model="nope"), 404),
    ("model path", "POST", "/api/chat", chat(model="../../etc/passwd"), 400),
    ("messages not a list", "POST", "/api/chat", chat(messages="hi"), 400),
    ("message without role", "POST", "/api/chat", chat(messages=[{"content": "hi"}]), 400),
    ("message role 5", "POST", "/api/chat", chat(messages=[{"role": 5, "content": "hi"}]), 400),
    ("message content list", "POST", "/api/chat", chat(messages=[{"role": "user", "content": ["hi"]}]), 400),
    ("message images", "POST", "/api/chat", chat(messages=[{"role": "user", "content": "hi", "images": ["AA=="]}]), 400),
    ("tool call arguments 5", "POST", "/api/chat",
     chat(messages=[{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": 5}}]},
                    {"role": "user", "content": "hi"}]), 400),
    # -- options
    ("seed 2**70", "POST", "/api/chat", chat(options={"seed": 2**70}), 400),
    ("seed -2**70", "POST", "/api/chat", chat(options={"seed": -2**70}), 400),
    ("seed 1.5", "POST", "/api/chat", chat(options={"seed": 1.5}), 400),
    ("temperature hot", "POST", "/api/chat", chat(options={"temperature": "hot"}), 400),
    ("temperature -1", "POST", "/api/chat", chat(options={"temperature": -1}), 400),
    ("top_p 2", "POST", "/api/chat", chat(options={"top_p": 2}), 400),
    ("num_ctx 0", "POST", "/api/chat", chat(options={"num_ctx": 0}), 400),
    ("num_ctx 2**70", "POST", "/api/chat", chat(options={"num_ctx": 2**70}), 400),
    ("num_predict -5", "POST", "/api/chat", chat(options={"num_predict": -5}), 400),
    ("stop 5", "POST", "/api/chat", chat(options={"stop": 5}), 400),
    ("stop empty string", "POST", "/api/chat", chat(options={"stop": [""]}), 400),
    ("options a list", "POST", "/api/chat", chat(options=[1]), 400),
    ("unknown option", "POST", "/api/chat", chat(options={"tfs_zz": 1}), 200),  # Ollama ignores it (a warning)
    # -- tools and formats
    ("tool parameters not a schema", "POST", "/api/chat", chat(tools=tool({"type": "nope"})), 400),
    ("tool parameters a string", "POST", "/api/chat", chat(tools=tool("object")), 400),
    ("tool properties wrong", "POST", "/api/chat", chat(tools=tool({"type": "object", "properties": 3})), 400),
    ("tool without name", "POST", "/api/chat", chat(tools=[{"type": "function", "function": {}}]), 400),
    ("tool name 5", "POST", "/api/chat", chat(tools=[{"type": "function", "function": {"name": 5}}]), 400),
    ("tool of another type", "POST", "/api/chat", chat(tools=[{"type": "retrieval"}]), 400),
    ("tools not a list", "POST", "/api/chat", chat(tools={"type": "function"}), 400),
    ("format bad ref", "POST", "/api/chat", chat(format={"$ref": "#/definitions/nope"}), 400),
    ("format remote ref", "POST", "/api/chat",
     chat(format={"type": "object", "properties": {"a": {"$ref": "http://example.com/s.json"}}}), 400),
    ("format unsatisfiable lengths", "POST", "/api/chat",
     chat(format={"type": "string", "minLength": 5, "maxLength": 2}), 400),
    ("format unsatisfiable allOf", "POST", "/api/chat",
     chat(format={"allOf": [{"type": "string"}, {"type": "number"}]}), 400),
    ("format unsatisfiable range", "POST", "/api/chat",
     chat(format={"type": "integer", "minimum": 5, "maximum": 2}), 400),
    ("format type 12", "POST", "/api/chat", chat(format={"type": 12}), 400),
    ("format 12", "POST", "/api/chat", chat(format=12), 400),
    ("format xml", "POST", "/api/chat", chat(format="xml"), 400),
    # -- bodies
    ("JSON nested 10000 deep", "POST", "/api/chat", nested(10_000), 400),
    ("JSON nested 150 deep", "POST", "/api/chat", nested(150), 400),
    ("JSON nested 10000 deep on /v1", "POST", "/v1/chat/completions", nested(10_000), 400),
    ("invalid JSON", "POST", "/api/chat", b'{"model": "tiny",', 400),
    ("a JSON array", "POST", "/api/chat", b"[1, 2]", 400),
    ("not UTF-8", "POST", "/api/chat", b'{"model": "\xff\xfe"}', 400),
    ("body over the limit", "POST", "/api/chat", b'{"model": "tiny", "x": "' + b"a" * (MAX_BODY + 10) + b'"}', 413),
    ("prompt longer than num_ctx", "POST", "/api/chat",
     chat(messages=[{"role": "user", "content": "word " * 400}], options={"num_ctx": 64}, truncate=False), 400),
    ("one message longer than num_ctx", "POST", "/api/chat",
     chat(messages=[{"role": "user", "content": "word " * 400}], options={"num_ctx": 64}), 400),
    ("a message far beyond num_ctx", "POST", "/api/chat",
     chat(messages=[{"role": "user", "content": "x" * 900_000}], options={"num_ctx": 128}), 400),
    # -- /api/generate
    ("context id -1", "POST", "/api/generate", gen(context=[1, -1]), 400),
    ("context id past the vocabulary", "POST", "/api/generate", gen(context=[10**9]), 400),
    ("context a string", "POST", "/api/generate", gen(context="abc"), 400),
    ("raw with template", "POST", "/api/generate", gen(raw=True, template="{{ .Prompt }}"), 400),
    ("suffix", "POST", "/api/generate", gen(suffix="end"), 400),
    ("generate images", "POST", "/api/generate", gen(images=["AA=="]), 400),
    ("prompt 123", "POST", "/api/generate", gen(prompt=123), 400),
    ("system 5", "POST", "/api/generate", gen(system=5), 400),
    ("raw yes", "POST", "/api/generate", gen(raw="yes"), 400),
    ("template printing a megabyte in ranges nested eight deep", "POST", "/api/generate",
     gen(system="s", template="{{range $.Messages}}" * 8 + '{{printf "%999999d" 1}}' + "{{end}}" * 8), 400),
    ("template working a gigabyte of printf", "POST", "/api/generate",
     gen(system="s", template="{{range $.Messages}}" * 10 + '{{$x := printf "%999999d" 1}}' + "{{end}}" * 10), 400),
    ("template looping a billion times", "POST", "/api/generate", gen(template="{{range 1000000000}}{{end}}"), 400),
    # -- store endpoints
    ("create from a server path", "POST", "/api/create", {"model": "x", "from": "/etc", "stream": False}, 404),
    ("create from a missing path", "POST", "/api/create", {"model": "x", "from": "/no/such/dir", "stream": False}, 404),
    ("create from ..", "POST", "/api/create", {"model": "x", "from": "../..", "stream": False}, 404),
    ("create with a broken TEMPLATE", "POST", "/api/create",
     {"model": "x", "from": "tiny", "template": "{{ .Prompt ", "stream": False}, 400),
    ("create with a GGUF file", "POST", "/api/create",
     {"model": "x", "files": {"model.gguf": BAD_DIGEST}, "stream": False}, 400),
    ("create with a blob not uploaded", "POST", "/api/create",
     {"model": "x", "files": {"config.json": BAD_DIGEST}, "stream": False}, 400),
    ("create with a file name ../x", "POST", "/api/create",
     {"model": "x", "files": {"../config.json": BAD_DIGEST}, "stream": False}, 400),
    ("create from and files", "POST", "/api/create",
     {"model": "x", "from": "tiny", "files": {"config.json": BAD_DIGEST}, "stream": False}, 400),
    ("create without from", "POST", "/api/create", {"model": "x", "stream": False}, 400),
    ("create a bad name", "POST", "/api/create", {"model": "a b", "from": "tiny", "stream": False}, 400),
    ("create seed 2**70", "POST", "/api/create",
     {"model": "x", "from": "tiny", "parameters": {"seed": 2**70}, "stream": False}, 400),
    ("create quantize", "POST", "/api/create", {"model": "x", "from": "tiny", "quantize": "q4_K_M"}, 400),
    ("create stream yes", "POST", "/api/create", {"model": "x", "from": "tiny", "stream": "yes"}, 400),
    ("blob with the wrong digest", "POST", f"/api/blobs/{BAD_DIGEST}", b"not zeros", 400),
    ("blob with no digest", "POST", "/api/blobs/notadigest", b"x", 400),
    ("blob HEAD unknown", "HEAD", f"/api/blobs/{BAD_DIGEST}", None, 404),
    ("copy from nothing", "POST", "/api/copy", {"source": "nope", "destination": "y"}, 404),
    ("copy to a bad name", "POST", "/api/copy", {"source": "tiny", "destination": "a b"}, 400),
    ("copy without source", "POST", "/api/copy", {"destination": "y"}, 400),
    ("delete without a name", "DELETE", "/api/delete", {}, 400),
    ("delete unknown", "DELETE", "/api/delete", {"model": "nope"}, 404),
    ("show without a name", "POST", "/api/show", {}, 400),
    ("show unknown", "POST", "/api/show", {"model": "nope"}, 404),
    ("GET /api/chat", "GET", "/api/chat", None, 405),
    ("unknown route", "POST", "/api/nothing", {}, 404),
    # -- /v1/chat/completions
    ("v1 messages empty", "POST", "/v1/chat/completions", v1(messages=[]), 400),
    ("v1 messages missing", "POST", "/v1/chat/completions", {"model": "tiny"}, 400),
    ("v1 reasoning_effort max", "POST", "/v1/chat/completions", v1(reasoning_effort="max"), 400),
    ("v1 reasoning_effort xhigh", "POST", "/v1/chat/completions", v1(reasoning_effort="xhigh"), 400),
    ("v1 reasoning.effort max", "POST", "/v1/chat/completions", v1(reasoning={"effort": "max"}), 400),
    ("v1 n 0", "POST", "/v1/chat/completions", v1(n=0), 400),
    ("v1 n 100", "POST", "/v1/chat/completions", v1(n=100), 400),
    ("v1 max_tokens 0", "POST", "/v1/chat/completions", v1(max_tokens=0), 400),
    ("v1 max_tokens 2.5", "POST", "/v1/chat/completions", v1(max_tokens=2.5), 400),
    ("v1 seed 2**70", "POST", "/v1/chat/completions", v1(seed=2**70), 400),
    ("v1 temperature a string", "POST", "/v1/chat/completions", v1(temperature="1"), 400),
    ("v1 stream yes", "POST", "/v1/chat/completions", v1(stream="yes"), 400),
    ("v1 tool parameters not a schema", "POST", "/v1/chat/completions", v1(tools=tool({"type": "nope"})), 400),
    ("v1 response_format bad ref", "POST", "/v1/chat/completions",
     v1(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {"$ref": "#/x"}}}), 400),
    ("v1 response_format unsatisfiable", "POST", "/v1/chat/completions",
     v1(response_format={"type": "json_schema",
                         "json_schema": {"name": "a", "schema": {"type": "string", "minLength": 3, "maxLength": 1}}}),
     400),
    ("v1 response_format xml", "POST", "/v1/chat/completions", v1(response_format={"type": "xml"}), 400),
    ("v1 tool_choice unknown function", "POST", "/v1/chat/completions",
     v1(tools=tool({"type": "object"}), tool_choice={"type": "function", "function": {"name": "nope"}}), 400),
    ("v1 tool_choice required without tools", "POST", "/v1/chat/completions", v1(tool_choice="required"), 400),
    ("v1 image content", "POST", "/v1/chat/completions",
     v1(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]), 400),
    ("v1 role robot", "POST", "/v1/chat/completions", v1(messages=[{"role": "robot", "content": "hi"}]), 400),
    ("v1 top_logprobs 21", "POST", "/v1/chat/completions", v1(logprobs=True, top_logprobs=21), 400),
    ("v1 unknown model", "POST", "/v1/chat/completions", v1(model="nope"), 404),
    ("v1 over the limit", "POST", "/v1/chat/completions", b'{"x": "' + b"a" * (MAX_BODY + 10) + b'"}', 413),
    # -- /v1/completions, /v1/responses, /v1/models
    ("v1 completions logprobs 100", "POST", "/v1/completions", {"model": "tiny", "prompt": "Hi", "logprobs": 100}, 400),
    ("v1 completions logprobs 6", "POST", "/v1/completions", {"model": "tiny", "prompt": "Hi", "logprobs": 6}, 400),
    ("v1 completions logprobs 5", "POST", "/v1/completions",
     {"model": "tiny", "prompt": "Hi", "logprobs": 5, "max_tokens": 2}, 200),
    ("v1 completions two prompts", "POST", "/v1/completions", {"model": "tiny", "prompt": ["a", "b"]}, 400),
    ("v1 completions suffix", "POST", "/v1/completions", {"model": "tiny", "prompt": "a", "suffix": "b"}, 400),
    ("v1 responses tool not a schema", "POST", "/v1/responses",
     {"model": "tiny", "input": "hi", "tools": [{"type": "function", "name": "f", "parameters": {"type": "nope"}}]},
     400),
    ("v1 responses bad item", "POST", "/v1/responses", {"model": "tiny", "input": [{"type": "nonsense"}]}, 400),
    ("v1 responses unknown previous", "POST", "/v1/responses",
     {"model": "tiny", "input": "hi", "previous_response_id": "resp_nope"}, 404),
    ("v1 model unknown", "GET", "/v1/models/nope", None, 404),
]


def send(url: str, method: str, path: str, body) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.request(method, url + path, content=body, headers={"Content-Type": "application/json"},
                             timeout=60)
    return httpx.request(method, url + path, json=body, timeout=60) if body is not None else \
        httpx.request(method, url + path, timeout=60)


def test_there_are_at_least_80_cases():
    assert len(CASES) >= 80 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,method,path,body,status", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_answered_and_the_engine_still_generates(server, name, method, path, body, status):
    url, *_ = server
    r = send(url, method, path, body)
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text and "internal server error" not in r.text
    if status >= 400 and method != "HEAD":
        error = r.json()["error"]
        if path.startswith("/v1/"):
            assert set(error) == {"message", "type", "param", "code"} and error["message"]
        else:
            assert isinstance(error, str) and error and "\n" not in error
    after = httpx.post(url + "/api/generate", json=gen(), timeout=60)
    assert after.status_code == 200 and after.json()["done"] is True, after.text


def test_unknown_options_are_ignored_with_a_warning_as_ollama_ignores_them(server):
    url, *_ = server
    r = send(url, "POST", "/api/chat", chat(options={"num_predict": 2, "tfs_z": 1, "numa": True}))
    assert r.status_code == 200 and r.json()["done"] is True
    ignored = [w["detail"] for w in r.json()["warnings"] if w["code"] == "unknown_option"]
    assert ignored == ["options.tfs_z is not an option; it was ignored", "options.numa is not an option; it was ignored"]
    r = send(url, "POST", "/api/chat", chat(options={"num_predict": 2, "temperature": "hot"}))
    assert r.status_code == 400 and "options.temperature" in r.json()["error"]  # known keys are still checked


def test_errors_name_the_field(server):
    url, *_ = server
    assert "keep_alive" in send(url, "POST", "/api/chat", chat(keep_alive="inf")).json()["error"]
    assert "stream" in send(url, "POST", "/api/chat", chat(stream="yes")).json()["error"]
    assert "options.seed" in send(url, "POST", "/api/chat", chat(options={"seed": 2**70})).json()["error"]
    assert "tools.0.function.parameters" in send(url, "POST", "/api/chat", chat(tools=tool({"type": "nope"}))).json()[
        "error"]
    assert send(url, "POST", "/v1/completions",
                {"model": "tiny", "prompt": "Hi", "logprobs": 100}).json()["error"]["param"] == "logprobs"
    assert send(url, "POST", "/v1/chat/completions", v1(reasoning_effort="max")).json()["error"]["param"] == \
        "reasoning_effort"


def test_a_path_outside_is_not_revealed(server):
    url, *_ = server
    exists = send(url, "POST", "/api/create", {"model": "x", "from": "/etc", "stream": False}).json()["error"]
    missing = send(url, "POST", "/api/create", {"model": "x", "from": "/no/such", "stream": False}).json()["error"]
    assert exists.replace("/etc", "P") == missing.replace("/no/such", "P")


def test_a_chunked_body_over_the_limit_is_413(server):
    url, *_ = server

    def chunks():
        yield b'{"model": "tiny", "x": "'
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"a" * 65536
        yield b'"}'

    r = httpx.post(url + "/api/chat", content=chunks(), headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 413 and "OSSY_MAX_BODY" in r.json()["error"]


def test_num_predict_0_generates_nothing(server):
    url, *_ = server
    r = httpx.post(url + "/api/generate", json=gen(options={"num_predict": 0}), timeout=60).json()
    assert r["eval_count"] == 0 and r["response"] == "" and r["done_reason"] == "length"


def test_a_refused_template_leaves_no_model(server):
    url, library, _ = server
    r = send(url, "POST", "/api/create", {"model": "broken", "from": "tiny", "template": "{{ if }}", "stream": False})
    assert r.status_code == 400 and "TEMPLATE" in r.json()["error"]
    assert library.find("broken") is None


def test_the_server_keeps_answering_after_all_of_it(server):
    url, *_ = server
    body = json.loads(httpx.get(url + "/health", timeout=10).text)
    assert body["status"] == "ok" and body["engine"]["restarts"] == 0


def test_a_dead_worker_is_reported_and_replaced(server, monkeypatch):
    from ossy.engine import scheduler

    url, _, engine = server
    monkeypatch.setattr(scheduler, "RESTART_DELAY", 1.0)
    original = engine._step

    def broken():
        engine._step = original
        raise RuntimeError("a bug in the worker")

    engine._step = broken
    failed = httpx.post(url + "/api/generate", json=gen(), timeout=60)
    assert failed.status_code == 503 and "a bug in the worker" in failed.json()["error"]
    health, ps = httpx.get(url + "/health", timeout=10), httpx.get(url + "/api/ps", timeout=10).json()
    refused = httpx.post(url + "/v1/chat/completions", json=v1(), timeout=60)
    assert health.status_code == 503 and health.json()["engine"]["status"] == "down"
    assert ps["engine"]["status"] == "down" and ps["engine"]["restarts"] == 1
    assert refused.status_code == 503 and "restarting" in refused.json()["error"]["message"]
    deadline = time.monotonic() + 20
    while httpx.get(url + "/health", timeout=10).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    after = httpx.post(url + "/api/generate", json=gen(), timeout=60)
    assert after.status_code == 200 and after.json()["done"] is True
    assert httpx.get(url + "/api/ps", timeout=10).json()["engine"] == {
        "status": "ok", "restarts": 1, "last_error": "RuntimeError: a bug in the worker"}
