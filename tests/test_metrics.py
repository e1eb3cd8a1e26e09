"""`GET /metrics` on a live server: Prometheus' text format, parsed with prometheus-client's own
parser, and its figures move as requests run: requests by route and status, tokens in and out,
time to first token and inter-token latency (from the engine's stats), queue and slots, and tool
calls read from the audit log."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from stub_engine import RunningServer, StubEngine, tiny_library, tokenizer

from ossy.config import settings
from ossy.server import create_app
from ossy.tools.audit import AuditLog


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    r = httpx.get(url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def server(tmp_path):
    library, resolver = tiny_library(tmp_path / "store", tokenizer())
    home = tmp_path / "home"
    engine = StubEngine(tokenizer())
    with RunningServer(create_app(engine, resolver, library, settings({"OSSY_HOME": str(home)}))) as url:
        yield url, home


def test_metrics_parse_and_move_as_requests_run(server):
    url, home = server
    before = scrape(url)
    assert value(before, "ossy_engine_up") == 1 and value(before, "ossy_queue_depth") == 0
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "stream": False}
    answer = httpx.post(url + "/api/chat", json=chat).json()
    httpx.post(url + "/v1/chat/completions", json={**chat, "stream": True}).raise_for_status()
    assert httpx.post(url + "/api/chat", json={**chat, "model": "nope"}).status_code == 404
    httpx.get(url + "/no/such/path")
    after = scrape(url)

    assert value(after, "ossy_requests_total", endpoint="/api/chat", method="POST", status="200") == 1
    assert value(after, "ossy_requests_total", endpoint="/api/chat", method="POST", status="404") == 1
    assert value(after, "ossy_requests_total", endpoint="/v1/chat/completions", method="POST", status="200") == 1
    assert value(after, "ossy_requests_total", endpoint="unmatched", method="GET", status="404") == 1
    assert value(after, "ossy_requests_total", endpoint="/metrics", method="GET", status="200") == 1  # the first scrape
    generated = value(after, "ossy_generated_tokens_total", model="tiny:latest")
    assert generated >= 2 * answer["eval_count"] > 0
    assert value(after, "ossy_prompt_tokens_total", model="tiny:latest") >= 2 * answer["prompt_eval_count"]
    assert value(after, "ossy_time_to_first_token_seconds_count", model="tiny:latest") == 2
    assert value(after, "ossy_inter_token_latency_seconds_count", model="tiny:latest") == generated
    assert value(after, "ossy_model_load_seconds_count", model="tiny:latest") == 1  # the stub loads once
    assert value(after, "ossy_slots") == 1 and value(after, "ossy_busy_slots") == 0

    AuditLog.default(home).record(conversation="c", tool="read_file", arguments="{}", decision="allowed",
                                  decided_by="policy", status="ok")
    AuditLog.default(home).record(conversation="c", tool="bash", arguments="{}", decision="denied",
                                  decided_by="user", status="denied")
    calls = scrape(url)
    assert value(calls, "ossy_tool_calls_total", tool="read_file", decision="allowed") == 1
    assert value(calls, "ossy_tool_calls_total", tool="bash", decision="denied") == 1
