"""Tokens per second of one gpt-oss checkpoint through ossy in front of vLLM (`VllmEngine`, vLLM
in this process) and through ossy's own PyTorch path on `--device`, greedy, the same prompt ids.
Run by scripts/gpu_check.sh on a GPU machine; `--device cpu` runs the same steps on a CPU (what
tests/vllm checks on a tiny checkpoint).

Prints one JSON line per engine: decode tok/s (of `--tokens` new tokens after a `--prompt`-token
prompt), time to first token, and whether the two engines chose the same greedy ids."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import torch

from ossy.engine.protocol import GenerateRequest, ModelRef, SamplingOptions, Token
from ossy.engine.vllm import InProcess, VllmEngine
from ossy.model.gptoss import DenseExperts
from ossy.model.loading import open_model
from ossy.model.mxfp4 import PackedExperts


def to_device(model, device: str):
    """ossy's PyTorch model with every tensor on `device` (its math is device-agnostic)."""
    model.embed, model.unembed, model.norm = model.embed.to(device), model.unembed.to(device), model.norm.to(device)
    model.inv_freq = model.inv_freq.to(device)
    for layer in model.layers:
        for name, value in vars(layer).items():
            if isinstance(value, torch.Tensor):
                setattr(layer, name, value.to(device))
        experts = layer.experts
        if isinstance(experts, PackedExperts):
            experts.gate_up = tuple(t.to(device) for t in experts.gate_up)
            experts.down = tuple(t.to(device) for t in experts.down)
        if isinstance(experts, (PackedExperts, DenseExperts)):
            for name in ("gate_up_bias", "down_bias") + (("gate_up", "down") if isinstance(experts, DenseExperts) else ()):
                setattr(experts, name, getattr(experts, name).to(device))
    return model


def own(checkpoint: str, device: str, prompt: list[int], tokens: int, dtype: str) -> dict:
    model = to_device(open_model(checkpoint, dtype, kernels="torch"), device)
    cache = model.new_cache()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    started = time.perf_counter()
    logits = model.forward(torch.tensor(prompt, device=device), cache, last_only=True)
    ids = [int(logits[0].argmax())]
    sync()
    first = time.perf_counter()
    while len(ids) < tokens:
        logits = model.forward(torch.tensor(ids[-1:], device=device), cache, last_only=True)
        ids.append(int(logits[0].argmax()))
    sync()
    return {"engine": f"ossy pytorch ({device})", "ttft_s": first - started,
            "decode_tok_s": (tokens - 1) / (time.perf_counter() - first), "ids": ids}


async def through_vllm(checkpoint: str, prompt: list[int], tokens: int, engine_args: dict) -> dict:
    engine = VllmEngine(InProcess(engine_args))
    ref = ModelRef("check", "sha256:check", checkpoint)
    try:
        await engine.load(ref)
        request = GenerateRequest(ref, tuple(prompt), SamplingOptions(temperature=0.0), max_tokens=tokens,
                                  num_ctx=len(prompt) + tokens + 1)
        started, first, ids = time.perf_counter(), None, []
        async for event in await engine.submit(request):
            if isinstance(event, Token):
                first = first or time.perf_counter()
                ids.append(event.id)
        return {"engine": "ossy on vLLM", "ttft_s": first - started,
                "decode_tok_s": (len(ids) - 1) / (time.perf_counter() - first), "ids": ids}
    finally:
        await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--prompt", type=int, default=512, help="prompt tokens")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens")
    parser.add_argument("--vllm-args", default="{}", help="vLLM engine arguments, JSON")
    args = parser.parse_args()
    prompt = [(1000 + 7919 * i) % 200000 for i in range(args.prompt)]  # ordinary token ids
    engine_args = {"dtype": args.dtype, "max_model_len": args.prompt + args.tokens + 16, **json.loads(args.vllm_args)}
    results = [asyncio.run(through_vllm(args.checkpoint, prompt, args.tokens, engine_args)),
               own(args.checkpoint, args.device, prompt, args.tokens, args.dtype)]
    same = results[0]["ids"] == results[1]["ids"]
    for result in results:
        ids = result.pop("ids")
        print(json.dumps({**result, "tokens": len(ids), "same_greedy_ids": same}), flush=True)


if __name__ == "__main__":  # vLLM's engine core starts by spawn: this module is imported again there
    main()
