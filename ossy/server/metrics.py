"""Prometheus metrics of one server: `GET /metrics` in prometheus-client's text format.

Owns: `Metrics`, with a registry of its own (two apps in one process count apart), and what it
exports:
  ossy_requests_total{endpoint, method, status}   every HTTP request, by route template (an
                                                  unknown path counts as "unmatched")
  ossy_prompt_tokens_total{model}, ossy_generated_tokens_total{model}, ossy_cached_prompt_tokens_total{model}
  ossy_time_to_first_token_seconds{model}         per turn: queue wait + load + prefill, as the
                                                  engine measured them
  ossy_inter_token_latency_seconds{model}         per generated token; each token is observed at
                                                  its turn's mean (decode time / tokens), so the
                                                  sum is decode time and the count is tokens
  ossy_model_load_seconds{model}                  each load a turn waited for
  ossy_queue_depth, ossy_busy_slots, ossy_slots   read from the engine (`Engine.occupancy`) at
                                                  each scrape
  ossy_engine_up                                  1 unless the engine's worker is down
  ossy_tool_calls_total{tool, decision}           read from the audit log at each scrape: every
                                                  call any ossy process on this OSSY_HOME ran
                                                  or refused (the agent loop runs tools, not the
                                                  server)
Turn figures come from `observe_turn`, which `State.start` hands to every `Turn` as its
`on_finish`; request counts from `CountRequests`, an ASGI middleware. Does not own: measuring
(the engine's `Stats`), the audit log (`ossy.tools.audit`), or any other endpoint.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ossy.engine.protocol import Engine
from ossy.tools.audit import AuditLog

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
NS = 1e9


class Metrics:
    def __init__(self, engine: Engine, home: Path | None) -> None:
        """`home`: the ossy home whose audit log the tool-call counts come from (None: none)."""
        self.engine = engine
        self.audit = AuditLog.default(home) if home is not None else None  # one connection, kept
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("ossy_requests", "HTTP requests by route, method and status",
                                ("endpoint", "method", "status"), registry=registry)
        self.prompt_tokens = Counter("ossy_prompt_tokens", "Prompt tokens read (cached ones included)",
                                     ("model",), registry=registry)
        self.cached_tokens = Counter("ossy_cached_prompt_tokens", "Prompt tokens reused from a slot's cache",
                                     ("model",), registry=registry)
        self.generated_tokens = Counter("ossy_generated_tokens", "Tokens generated", ("model",), registry=registry)
        self.ttft = Histogram("ossy_time_to_first_token_seconds", "Queue wait + model load + prefill of a turn",
                              ("model",), buckets=LATENCY_BUCKETS, registry=registry)
        self.itl = Histogram("ossy_inter_token_latency_seconds",
                             "Time between generated tokens (each token observed at its turn's mean)",
                             ("model",), buckets=LATENCY_BUCKETS, registry=registry)
        self.load = Histogram("ossy_model_load_seconds", "Model loads a turn waited for", ("model",),
                              buckets=LATENCY_BUCKETS, registry=registry)
        registry.register(_Scraped(self))

    def observe_turn(self, model: str, stats) -> None:
        """A finished turn's engine `Stats` (ns timings, token counts)."""
        self.prompt_tokens.labels(model).inc(stats.prompt_eval_count)
        self.cached_tokens.labels(model).inc(stats.cached_tokens)
        self.generated_tokens.labels(model).inc(stats.eval_count)
        self.ttft.labels(model).observe((stats.queue_duration + stats.load_duration + stats.prompt_eval_duration) / NS)
        if stats.load_duration:
            self.load.labels(model).observe(stats.load_duration / NS)
        if stats.eval_count:
            mean = stats.eval_duration / NS / stats.eval_count
            itl = self.itl.labels(model)
            for _ in range(stats.eval_count):
                itl.observe(mean)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _Scraped:
    """What is read at each scrape: the engine's occupancy and health, the audit log's counts."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self):
        engine = self.metrics.engine
        occupancy = engine.occupancy()
        for name, key, doc in (("ossy_queue_depth", "waiting", "Requests admitted, waiting for a slot"),
                               ("ossy_busy_slots", "running", "Slots generating now"),
                               ("ossy_slots", "slots", "Slots of the loaded models")):
            yield GaugeMetricFamily(name, doc, value=occupancy[key])
        yield GaugeMetricFamily("ossy_engine_up", "1 unless the engine's worker is down",
                                value=0 if engine.health()["status"] == "down" else 1)
        calls = CounterMetricFamily("ossy_tool_calls", "Tool calls in the audit log, by tool and decision",
                                    labels=("tool", "decision"))
        for (tool, decision), count in (self.metrics.audit.counts() if self.metrics.audit else {}).items():
            calls.add_metric((tool, decision), count)
        yield calls


class CountRequests:
    """ASGI middleware: `ossy_requests_total` for each HTTP request when its response starts (or
    fails), by the route's path template."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        counted = False

        async def send_counted(message):
            nonlocal counted
            if message["type"] == "http.response.start" and not counted:
                counted = True
                self._count(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            if not counted:
                self._count(scope, 500)

    def _count(self, scope, status: int) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
