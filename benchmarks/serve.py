"""Aggregate decode throughput and time-to-first-token with 1, 2, 4 and 8 concurrent streams,
through the HTTP server (`ossy serve`'s app, /api/generate streamed) and against the same
in-process engine (`LocalEngine`, continuous batching) driven directly, side by side.

The model is the random full-width gpt-oss of `benchmarks/engine.py` (few layers, reduced
vocabulary; MXFP4 experts kept packed), bf16, built in memory, with the real o200k tokenizer
(prompts are plain English whose token ids fall inside the reduced vocabulary). For each
concurrency N a fresh engine with N slots gets N greedy requests at once (distinct prompts of
about `--prompt` ids, exactly `--decode` new ids each: the model cannot produce a stop id);
tokens/s is all generated ids over the wall time from the first request to the last end; TTFT is
the median over streams of request -> first token (it includes waiting behind the other
streams' prefills, which run one at a time). HTTP: uvicorn serves the app in a thread of this
process, and N `httpx.AsyncClient` streams post raw prompts to /api/generate (NDJSON); its TTFT is
to the first NDJSON line. The clients share this process (and its GIL) with the server, so the
HTTP figures are a conservative bound. One untimed warm-up run of each first.

Reproduce (about two minutes on 2 cores):
    .venv/bin/python benchmarks/serve.py
    .venv/bin/python benchmarks/serve.py --layers 2 --vocab 8192 --prompt 64 --decode 32 --streams 1,2,4,8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
import torch
from engine import full_width_config, random_tensors  # benchmarks/engine.py, beside this script

from ossy.engine.protocol import GenerateRequest, ModelRef, ResolvedModel, SamplingOptions, Token
from ossy.engine.scheduler import LocalEngine
from ossy.model.gptoss import GptOss

ROOT = Path(__file__).resolve().parents[1]
VOCAB = ROOT.parent / "shared" / "vocab" / "o200k_base.tiktoken"
WORDS = ("the time year people way day man thing woman life child world school state family student group "
         "country problem hand part place case week company system program question work government number "
         "night point home water room mother area money story fact month lot right study book eye job word").split()

REF = ModelRef(name="random:bench", digest="sha256:bench", checkpoint=Path("."))  # the loader ignores it


class Resolver:
    def __init__(self, tokenizer) -> None:
        self.model = ResolvedModel(REF, tokenizer, parameters={"temperature": 0.0})

    def resolve(self, name: str) -> ResolvedModel:
        return self.model


def prompts(tokenizer, vocab: int, streams: int, length: int) -> list[str]:
    """`streams` distinct English prompts of about `length` tokens, all ids below `vocab`."""
    words = [w for w in WORDS if max(tokenizer.encode(" " + w) + tokenizer.encode(w)) < vocab]
    out = []
    for s in range(streams):
        text = " ".join(words[(s * 7 + j * (s + 3)) % len(words)] for j in range(length))
        assert max(tokenizer.encode(text)) < vocab
        out.append(text)
    return out


async def one_http(client: httpx.AsyncClient, prompt: str, decode: int) -> tuple[int, float]:
    start = time.perf_counter()
    first, count = 0.0, 0
    body = {"model": REF.name, "prompt": prompt, "raw": True, "stream": True,
            "options": {"num_predict": decode, "temperature": 0}}
    async with client.stream("POST", "/api/generate", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            first = first or time.perf_counter() - start
            data = json.loads(line)
            if data.get("done"):
                count = data["eval_count"]
    return count, first


async def measure_http(model: GptOss, tokenizer, texts: list[str], decode: int) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from stub_engine import RunningServer  # uvicorn on a free loopback port, in a thread

    from ossy.server import create_app

    engine = LocalEngine(num_parallel=len(texts), max_queue=len(texts), keep_alive=-1,
                         loader=lambda ref, dtype: model)
    with RunningServer(create_app(engine, Resolver(tokenizer))) as url:
        async with httpx.AsyncClient(base_url=url, timeout=600) as client:
            start = time.perf_counter()
            results = await asyncio.gather(*(one_http(client, t, decode) for t in texts))
            wall = time.perf_counter() - start
        counters = engine.counters()
    return dict(streams=len(texts), tokens_per_s=sum(n for n, _ in results) / wall,
                ttft_s=statistics.median(t for _, t in results), max_batch=counters["max_batch"])


async def one(engine: LocalEngine, prompt: tuple[int, ...], decode: int) -> tuple[int, float]:
    """(ids generated, seconds to the first one)."""
    start = time.perf_counter()
    generation = await engine.submit(GenerateRequest(REF, prompt, SamplingOptions(temperature=0), max_tokens=decode))
    count, first = 0, 0.0
    async for event in generation:
        if isinstance(event, Token):
            count += 1
            first = first or time.perf_counter() - start
    return count, first


async def measure(model: GptOss, prompts: list[tuple[int, ...]], decode: int) -> dict:
    streams = len(prompts)
    engine = LocalEngine(num_parallel=streams, max_queue=streams, keep_alive=-1, loader=lambda ref, dtype: model)
    try:
        start = time.perf_counter()
        results = await asyncio.gather(*(one(engine, p, decode) for p in prompts))
        wall = time.perf_counter() - start
        counters = engine.counters()
    finally:
        await engine.close()
    return dict(streams=streams, tokens_per_s=sum(n for n, _ in results) / wall,
                ttft_s=statistics.median(t for _, t in results), max_batch=counters["max_batch"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--decode", type=int, default=32)
    parser.add_argument("--streams", default="1,2,4,8")
    args = parser.parse_args()
    import ossy.tokenizer

    tokenizer = ossy.tokenizer.load(VOCAB)
    config = full_width_config(args.layers, args.vocab)
    model = GptOss.from_tensors(config, random_tensors(config), torch.bfloat16)
    counts = list(map(int, args.streams.split(",")))
    texts = prompts(tokenizer, args.vocab, max(counts), args.prompt)
    ids = [tuple(tokenizer.encode(t)) for t in texts]
    asyncio.run(measure(model, ids[:1], 4))  # warm-up
    asyncio.run(measure_http(model, tokenizer, texts[:1], 4))
    direct = [asyncio.run(measure(model, ids[:n], args.decode)) for n in counts]
    http = [asyncio.run(measure_http(model, tokenizer, texts[:n], args.decode)) for n in counts]
    print(f"gpt-oss full width, {args.layers} layers, vocab {args.vocab}, bf16, {torch.get_num_threads()} threads; "
          f"prompt ~{statistics.mean(map(len, ids)):.0f} ids, decode {args.decode} per stream")
    print(f"{'':>7} | {'in-process engine':^33} | {'HTTP /api/generate':^33} | {'HTTP / engine':^13}")
    print(f"{'streams':>7} | {'tok/s':>7} {'x1':>5} {'TTFT s':>7} {'max batch':>9}   | "
          f"{'tok/s':>7} {'x1':>5} {'TTFT s':>7} {'max batch':>9}   | {'tok/s':>5} {'TTFT':>6}")
    for d, h in zip(direct, http):
        print(f"{d['streams']:>7} | {d['tokens_per_s']:>7.1f} {d['tokens_per_s'] / direct[0]['tokens_per_s']:>5.2f} "
              f"{d['ttft_s']:>7.3f} {d['max_batch']:>9}   | {h['tokens_per_s']:>7.1f} "
              f"{h['tokens_per_s'] / http[0]['tokens_per_s']:>5.2f} {h['ttft_s']:>7.3f} {h['max_batch']:>9}   | "
              f"{h['tokens_per_s'] / d['tokens_per_s']:>5.2f} {h['ttft_s'] / d['ttft_s']:>6.2f}")


if __name__ == "__main__":
    main()
