"""Prefill and decode speed and peak memory: ossy against transformers (eager), side by side.

One random checkpoint at full gpt-oss width (hidden 2880, 64 query / 8 kv heads of 64, 32
experts of width 2880, top-4) with few layers and a reduced vocabulary (both stated in the
output) is written with MXFP4 experts. transformers loads it with `Mxfp4Config(dequantize=True)`
(bf16 experts, eager attention); ossy keeps the experts packed and runs them on its native kernels
("ossy"), or on the PyTorch path, which dequantizes the routed experts per step ("ossy-torch"),
once without and once with a dequantized-expert cache large enough for every expert.
Each engine runs in its own subprocess, so its peak RSS (ru_maxrss) is its own. All bf16.
"load s" is opening the checkpoint (transformers dequantizes every expert there; ossy maps the
file and reads pages on first use, inside the warm-up). With the cache, the warm-up fills it, so
the "ossy-torch+cache" figures are steady state with every routed expert already dequantized.
Each engine first does one untimed warm-up run of the same prompt, then `--repeat` timed runs,
each on a fresh KV cache: prefill of the prompt (logits of the last position), then greedy
decode; the best run counts (the machine is shared, so the best is the least disturbed).

Reproduce (about 2-3 minutes on 2 cores):
    .venv/bin/python benchmarks/engine.py
    .venv/bin/python benchmarks/engine.py --layers 2 --vocab 32768 --prompt 128 --decode 16 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ENGINES = ("transformers", "ossy", "ossy-torch", "ossy-torch+cache")


def full_width_config(layers: int, vocab: int):
    from ossy.model.config import FULL, SLIDING, GptOssConfig

    return GptOssConfig(
        vocab_size=vocab, hidden_size=2880, intermediate_size=2880, num_hidden_layers=layers,
        num_attention_heads=64, num_key_value_heads=8, head_dim=64, num_local_experts=32,
        num_experts_per_tok=4, sliding_window=128,
        layer_types=tuple(SLIDING if i % 2 == 0 else FULL for i in range(layers)),
        rope_scaling_factor=32.0, original_max_position_embeddings=4096, quantization="mxfp4",
    )


def random_tensors(config) -> dict[str, torch.Tensor]:
    """Random weights: bf16 normals of std 1/sqrt(fan_in), MXFP4 experts from random bytes."""
    from ossy.model.tensors import tensor_shapes

    gen = torch.Generator().manual_seed(0)
    out = {}
    for name, shape in tensor_shapes(config, mxfp4=True).items():
        if name.endswith("_blocks"):
            out[name] = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
        elif name.endswith("_scales"):  # 2**-7..2**-6 times E2M1 values: std ~ 1/sqrt(2880)
            out[name] = torch.randint(120, 122, shape, dtype=torch.uint8, generator=gen)
        elif name.endswith("norm.weight"):
            out[name] = torch.ones(shape, dtype=torch.bfloat16)
        else:
            std = 1.0 if name == "model.embed_tokens.weight" or len(shape) == 1 else shape[-1] ** -0.5
            out[name] = (torch.randn(shape, generator=gen) * std).to(torch.bfloat16)
    return out


# -- one engine, in a subprocess ---------------------------------------------------------------
def load_engine(engine: str, path: str):
    """Return step(ids [T], state) -> (next_id, state) for the engine, greedy, bf16."""
    if engine == "transformers":
        from transformers import GptOssForCausalLM, Mxfp4Config

        model = GptOssForCausalLM.from_pretrained(path, quantization_config=Mxfp4Config(dequantize=True),
                                                  dtype=torch.bfloat16, attn_implementation="eager").eval()

        def step(ids, cache):
            with torch.no_grad():
                out = model(ids[None], cache=cache, use_cache=True, logits_to_keep=1)
            return int(out.logits[0, -1].argmax()), out.past_key_values

        return step, lambda: None
    import ossy.api

    cache_bytes = 1 << 40 if engine.endswith("+cache") else 0
    kernels = "torch" if engine.startswith("ossy-torch") else "auto"
    model = ossy.api.load(path, dtype="bfloat16", expert_cache_bytes=cache_bytes, kernels=kernels).model

    def step(ids, cache):
        return int(model.forward(ids, cache, last_only=True)[0].argmax()), cache

    return step, model.new_cache


def run_once(step, new_cache, prompt: torch.Tensor, decode: int) -> dict:
    cache = new_cache()
    t0 = time.perf_counter()
    token, cache = step(prompt, cache)
    t1 = time.perf_counter()
    tokens = [token]
    for _ in range(decode - 1):
        token, cache = step(torch.tensor([token]), cache)
        tokens.append(token)
    t2 = time.perf_counter()
    return {"prefill_tok_s": len(prompt) / (t1 - t0), "decode_tok_s": (decode - 1) / (t2 - t1), "tokens": tokens}


def child(engine: str, path: str, prompt_len: int, decode: int, repeat: int) -> None:
    t0 = time.perf_counter()
    step, new_cache = load_engine(engine, path)
    load_s = time.perf_counter() - t0
    vocab = json.loads((Path(path) / "config.json").read_text())["vocab_size"]
    prompt = torch.randint(0, vocab, (prompt_len,), generator=torch.Generator().manual_seed(1))
    run_once(step, new_cache, prompt, decode)  # warm-up
    runs = [run_once(step, new_cache, prompt, decode) for _ in range(repeat)]
    result = {key: max(r[key] for r in runs) for key in ("prefill_tok_s", "decode_tok_s")}
    result["tokens"] = runs[0]["tokens"]
    result["load_s"] = load_s
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# -- the parent: build the checkpoint, run each engine, print the table -----------------------
def run_engine(engine: str, path: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--child", engine, "--checkpoint", str(path),
           "--prompt", str(args.prompt), "--decode", str(args.decode), "--repeat", str(args.repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{engine} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: dict[str, dict], args) -> None:
    base = results.get("transformers") or next(iter(results.values()))  # the ratios' denominator
    print(f"\ngpt-oss width (H 2880, 64/8 heads x 64, 32 experts top-4, I 2880), {args.layers} layers, "
          f"vocab {args.vocab} (reduced from 201088), bf16, {torch.get_num_threads()} threads; "
          f"prompt {args.prompt} tokens, decode {args.decode} tokens, best of {args.repeat}")
    print(f"{'engine':<14}{'load s':>8}{'prefill tok/s':>15}{'x':>7}{'decode tok/s':>14}{'x':>7}"
          f"{'peak RSS MB':>13}{'x':>7}")
    for engine, r in results.items():
        print(f"{engine:<14}{r['load_s']:>8.1f}{r['prefill_tok_s']:>15.1f}"
              f"{r['prefill_tok_s'] / base['prefill_tok_s']:>7.2f}{r['decode_tok_s']:>14.2f}"
              f"{r['decode_tok_s'] / base['decode_tok_s']:>7.2f}{r['peak_rss_mb']:>13.0f}"
              f"{r['peak_rss_mb'] / base['peak_rss_mb']:>7.2f}")
    same = {e: sum(a == b for a, b in zip(r["tokens"], base["tokens"])) for e, r in results.items()}
    first = next(iter(results))
    name = "transformers'" if "transformers" in results else f"{first}'s"
    print(f"greedy tokens equal to {name} (of {args.decode}; random bf16 weights have near-ties): {same}")
    print(f"x = ratio to {name[:-2] if name.endswith(chr(39) + 's') else 'transformers'} (higher is better for "
          f"tok/s, lower for memory)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--decode", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.checkpoint, args.prompt, args.decode, args.repeat)
    from ossy.model.weights import save_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        config = full_width_config(args.layers, args.vocab)
        path = save_checkpoint(Path(tmp) / "ckpt", config, random_tensors(config), mxfp4=True)
        results = {}
        for engine in args.engines.split(","):
            results[engine] = run_engine(engine, path, args)
            print(f"{engine}: {results[engine]['load_s']:.1f} s load, done", file=sys.stderr)
        report(results, args)


if __name__ == "__main__":
    main()
