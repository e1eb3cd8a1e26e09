"""Aggregate decode throughput and time-to-first-token with 1, 2, 4 and 8 concurrent streams,
against the in-process engine (`LocalEngine`, continuous batching), as ratios to one stream.

The model is the random full-width gpt-oss of `benchmarks/engine.py` (few layers, reduced
vocabulary; MXFP4 experts kept packed), bf16, built in memory. For each concurrency N a fresh
engine with N slots gets N greedy requests at once (distinct prompts of `--prompt` ids, `--decode`
new ids each); tokens/s is all generated ids over the wall time from the first submit to the last
`Finished`; TTFT is the median over streams of submit -> first token (it includes waiting behind
the other streams' prefills, which run one at a time). One untimed warm-up run first.

Reproduce (about a minute on 2 cores):
    .venv/bin/python benchmarks/serve.py
    .venv/bin/python benchmarks/serve.py --layers 2 --vocab 8192 --prompt 64 --decode 32 --streams 1,2,4,8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import torch

from engine import full_width_config, random_tensors  # benchmarks/engine.py, beside this script
from ossy.engine import LocalEngine
from ossy.engine.protocol import GenerateRequest, ModelRef, SamplingOptions, Token
from ossy.model.gptoss import GptOss

REF = ModelRef(name="random:bench", digest="sha256:bench", checkpoint=Path("."))  # the loader ignores it


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


async def measure(model: GptOss, streams: int, prompt_len: int, decode: int) -> dict:
    engine = LocalEngine(num_parallel=streams, max_queue=streams, keep_alive=-1, loader=lambda ref, dtype: model)
    vocab = model.config.vocab_size
    prompts = [tuple((s * 7919 + j * 31) % vocab for j in range(prompt_len)) for s in range(streams)]
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
    config = full_width_config(args.layers, args.vocab)
    model = GptOss.from_tensors(config, random_tensors(config), torch.bfloat16)
    asyncio.run(measure(model, 1, args.prompt, 4))  # warm-up
    rows = [asyncio.run(measure(model, n, args.prompt, args.decode)) for n in map(int, args.streams.split(","))]
    print(f"gpt-oss full width, {args.layers} layers, vocab {args.vocab}, bf16, {torch.get_num_threads()} threads; "
          f"prompt {args.prompt}, decode {args.decode} per stream")
    print(f"{'streams':>7} {'tok/s':>8} {'x1':>6} {'TTFT s':>8} {'max batch':>9}")
    for row in rows:
        print(f"{row['streams']:>7} {row['tokens_per_s']:>8.1f} {row['tokens_per_s'] / rows[0]['tokens_per_s']:>6.2f} "
              f"{row['ttft_s']:>8.3f} {row['max_batch']:>9}")


if __name__ == "__main__":
    main()
