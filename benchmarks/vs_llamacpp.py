"""ossy against llama.cpp on a gpt-oss-20b-shaped model, on this machine, in one script.

What it does:
  1. Writes a random checkpoint of gpt-oss-20b's shape (24 layers, hidden 2880, 64/8 heads of 64,
     32 experts of width 2880 top-4, vocab 201,088; `--layers N` for quick runs) in the Hugging
     Face layout, MXFP4 experts and bf16 everything else, one shard per layer, written a shard at a
     time (never all in RAM). Each tensor's values come from a generator seeded by its name.
  2. Writes the same weights as a GGUF (llama.cpp's gpt-oss layout: MXFP4 experts, BF16 attention,
     embeddings and output) with gguf-py, in a venv of its own that also holds llama.cpp's Python
     binding (llama-cpp-python, built from source; not a dependency of ossy): `--llama-venv`.
  3. Runs each engine in its own subprocess with the same thread count, alternating, `--rounds`
     times: load time (to the first token), then, after an untimed 512-token warm-up (the two
     models do not both fit in the page cache, so each engine first reads its weights back in),
     prefill tok/s at 128 and 512 tokens, greedy decode tok/s after a short prompt and after a
     4k-token context, peak RSS (ru_maxrss). Prints best and median of each figure and ossy /
     llama.cpp ratios.
  4. Then, in ossy's process, the same model behind ossy serve's app (`create_app` over a
     `LocalEngine`, uvicorn on loopback, as `ossy serve` runs it) with 1 and 4 concurrent greedy
     /api/generate streams (`benchmarks/serve.py`): aggregate tok/s and median time to the first
     token. llama.cpp has no figure there: llama-cpp-python's server runs one request at a time (4
     streams get its single-stream decode rate between them), and the GGUF has no tokenizer.

Reproduce (the first run builds the llama venv: ~15 min; writing the two checkpoints ~5 min):
    python3 -m venv /tmp/llamavenv && /tmp/llamavenv/bin/pip install llama-cpp-python==0.3.36 gguf==0.19.0 \
        safetensors==0.8.0
    .venv/bin/python benchmarks/vs_llamacpp.py --llama-venv /tmp/llamavenv --dir /tmp/oss20b --rounds 2
    .venv/bin/python benchmarks/vs_llamacpp.py --llama-venv /tmp/llamavenv --dir /tmp/oss4 --layers 4
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()


# -- the checkpoint ------------------------------------------------------------------------------
def config_of(layers: int, vocab: int):
    from engine import full_width_config  # benchmarks/engine.py, beside this script

    return full_width_config(layers, vocab)


def random_tensor(name: str, shape: tuple[int, ...]):
    """The same values for the same name, every time: bf16 normals of std 1/sqrt(fan_in), MXFP4
    experts from random bytes with scales 2^-7..2^-6 (values of std ~1/sqrt(2880))."""
    import torch

    gen = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") >> 1)
    if name.endswith("_blocks"):
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    if name.endswith("_scales"):
        return torch.randint(120, 122, shape, dtype=torch.uint8, generator=gen)
    if name.endswith("norm.weight"):
        return torch.ones(shape, dtype=torch.bfloat16)
    std = 1.0 if name == "model.embed_tokens.weight" or len(shape) == 1 else shape[-1] ** -0.5
    return (torch.randn(shape, generator=gen) * std).to(torch.bfloat16)


def write_checkpoint(path: Path, config) -> None:
    """The HF checkpoint, a shard per layer (plus one for the embeddings, one for the head)."""
    from safetensors.torch import save_file

    from ossy.model.tensors import tensor_shapes

    path.mkdir(parents=True, exist_ok=True)
    shards: dict[str, list[tuple[str, tuple]]] = {}
    for name, shape in tensor_shapes(config, mxfp4=True).items():
        part = name.split(".")[2] if name.startswith("model.layers.") else \
            "embed" if "embed" in name else "head"
        shards.setdefault(part, []).append((name, shape))
    weight_map, total = {}, 0
    for n, (part, tensors) in enumerate(shards.items(), start=1):
        file = f"model-{n:05d}-of-{len(shards):05d}.safetensors"
        values = {name: random_tensor(name, shape) for name, shape in tensors}
        save_file(values, path / file, metadata={"format": "pt"})
        total += sum(v.numel() * v.element_size() for v in values.values())
        weight_map.update(dict.fromkeys(values, file))
        print(f"  wrote {file} ({part})", flush=True)
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                    "weight_map": weight_map}, indent=1))
    (path / "config.json").write_text(json.dumps(config.to_hf_dict(), indent=2))
    tokenizer = ROOT.parent / "shared" / "vocab" / "gpt-oss" / "tokenizer.json"  # the real gpt-oss tokenizer
    (path / "tokenizer.json").write_bytes(tokenizer.read_bytes())


# -- one engine, in a subprocess -----------------------------------------------------------------
PROMPT_IDS = [(1000 + 7919 * i) % 200000 for i in range(4096)]  # ordinary token ids


def ossy_runner(path: str, threads: int):
    """(eval(ids) -> next greedy id, reset(), backend, serve(decode) -> figures) for ossy on its
    native path."""
    import torch

    from ossy.model.loading import open_model

    torch.set_num_threads(threads)
    model = open_model(path, "bfloat16", kernels="auto", threads=threads)
    state = {"cache": model.new_cache()}

    def evaluate(ids: list[int]) -> int:
        logits = None
        for start in range(0, len(ids), 512):  # prefill in chunks of 512, as the engine does
            logits = model.forward(torch.tensor(ids[start:start + 512]), state["cache"], last_only=True)
        return int(logits[0].argmax())

    def reset() -> None:
        state["cache"] = model.new_cache()

    return evaluate, reset, model.backend, lambda decode: through_the_server(model, decode)


def llama_runner(path: str, threads: int):
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=8192, n_batch=512,
                          n_ubatch=512, use_mmap=True, verbose=False)

    def evaluate(ids: list[int]) -> int:
        llm.eval(ids)  # keeps no logits unless logits_all: read the last position's from the context
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
        return int(np.argmax(logits))

    def reset() -> None:
        llm.reset()

    return evaluate, reset, "llama.cpp " + llama_cpp.__version__, None


def child(engine: str, path: str, threads: int, decode: int) -> None:
    import resource

    started = time.perf_counter()
    evaluate, reset, backend, serve = (ossy_runner if engine == "ossy" else llama_runner)(path, threads)
    evaluate(PROMPT_IDS[:1])  # load to the first token (weights are read on first use)
    result = {"engine": engine, "backend": backend, "load_s": time.perf_counter() - started}
    reset()
    evaluate(PROMPT_IDS[:512])  # untimed: every expert's pages in memory (the two models do not fit together)
    for n in (128, 512):
        reset()
        t = time.perf_counter()
        evaluate(PROMPT_IDS[:n])
        result[f"prefill_{n}_tok_s"] = n / (time.perf_counter() - t)
    for label, context in (("decode", 16), ("decode_4k", 4096)):
        reset()
        token = evaluate(PROMPT_IDS[:context])
        t = time.perf_counter()
        for _ in range(decode):
            token = evaluate([token])
        result[f"{label}_tok_s"] = decode / (time.perf_counter() - t)
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    if serve is not None:
        result.update(serve(decode))
    print(json.dumps(result), flush=True)


def through_the_server(model, decode: int) -> dict:
    """Aggregate decode tok/s and median TTFT of 1 and 4 concurrent streams through ossy serve's app."""
    import asyncio

    sys.path.insert(0, str(HERE.parent))
    from serve import VOCAB, measure_http, prompts  # benchmarks/serve.py, beside this script

    import ossy.tokenizer

    tokenizer = ossy.tokenizer.load(VOCAB)
    texts = prompts(tokenizer, model.config.vocab_size, 4, 64)
    asyncio.run(measure_http(model, tokenizer, texts[:1], 2))  # warm-up
    out = {}
    for streams in SERVE_STREAMS:
        figures = asyncio.run(measure_http(model, tokenizer, texts[:streams], decode))
        out[f"serve_{streams}_tok_s"], out[f"serve_{streams}_ttft_s"] = figures["tokens_per_s"], figures["ttft_s"]
    return out


def run_child(python: str, engine: str, path: Path, args) -> dict:
    cmd = [python, str(HERE), "--child", engine, "--model", str(path), "--threads", str(args.threads),
           "--decode", str(args.decode)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"{engine} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the parent ----------------------------------------------------------------------------------
FIGURES = [("load_s", "load to first token, s", False), ("prefill_128_tok_s", "prefill 128, tok/s", True),
           ("prefill_512_tok_s", "prefill 512, tok/s", True), ("decode_tok_s", "decode, tok/s", True),
           ("decode_4k_tok_s", "decode at 4k context, tok/s", True), ("peak_rss_gb", "peak RSS, GB", False)]
SERVE_STREAMS = (1, 4)
SERVE_FIGURES = [(f"serve_{n}_{what}", f"serve, {n} stream{'s' if n > 1 else ''}, {label}", higher)
                 for n in SERVE_STREAMS for what, label, higher in (("tok_s", "tok/s", True), ("ttft_s", "TTFT s", False))]


def report(results: dict[str, list[dict]], args) -> None:
    print(f"\ngpt-oss-20b shape, {args.layers} layers, vocab {args.vocab}, {args.threads} threads, "
          f"{args.rounds} round(s) alternating; best (median)")
    print(f"{'':32}{'ossy':>22}{'llama.cpp':>22}{'ossy / llama.cpp':>20}")
    for key, label, higher in FIGURES + SERVE_FIGURES:
        cells, bests = [], {}
        for engine in ("ossy", "llama.cpp"):
            values = [r[key] for r in results.get(engine, []) if key in r]
            if not values:
                cells.append("-")
                continue
            best = max(values) if higher else min(values)
            bests[engine] = best
            cells.append(f"{best:.2f} ({statistics.median(values):.2f})")
        ratio = f"{bests['ossy'] / bests['llama.cpp']:.2f}x" if len(bests) == 2 else "-"
        print(f"{label:32}{cells[0]:>22}{cells[1]:>22}{ratio:>20}")
    for engine, runs in results.items():
        print(f"{engine}: {runs[0]['backend']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--vocab", type=int, default=201088)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--decode", type=int, default=32, help="tokens decoded for each decode figure")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/ossy-vs-llamacpp"), help="where the models go (kept)")
    parser.add_argument("--llama-venv", type=Path, help="a venv with llama-cpp-python, gguf and safetensors")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.model, args.threads, args.decode)
    config = config_of(args.layers, args.vocab)
    hf, gguf_file = args.dir / "hf", args.dir / "model.gguf"
    if not (hf / "config.json").is_file():
        print(f"writing the checkpoint to {hf}", flush=True)
        write_checkpoint(hf, config)
    llama_python = str(args.llama_venv / "bin" / "python") if args.llama_venv else None
    if llama_python and not gguf_file.is_file():
        print(f"writing the GGUF to {gguf_file}", flush=True)
        subprocess.run([llama_python, str(ROOT / "benchmarks" / "gguf_writer.py"), str(hf), str(gguf_file)],
                       check=True)
    results: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        results.setdefault("ossy", []).append(run_child(sys.executable, "ossy", hf, args))
        if llama_python:
            results.setdefault("llama.cpp", []).append(run_child(llama_python, "llama.cpp", gguf_file, args))
    report(results, args)


if __name__ == "__main__":
    main()
