"""ossy's memory estimate (`ossy.model.inspect.estimate_memory`, as the engine computes it) against
the resident memory a real load and a full context take, on a full-width gpt-oss model.

A random checkpoint at full gpt-oss width (`benchmarks/engine.py`'s: hidden 2880, 64/8 heads,
32 experts of width 2880, MXFP4 experts) with `--layers` layers and a `--vocab` vocabulary is
written; a fresh process then imports ossy (its RSS is the "runtime" baseline), loads the model
through the engine's loader, fills one slot's cache to `--num-ctx` tokens (prefill in the engine's
chunks) and reports its peak RSS. The estimate counts weights, one slot's KV cache at num_ctx,
the step buffers and the runtime.

    .venv/bin/python benchmarks/memory.py --layers 4 --vocab 201088 --num-ctx 8192
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def status_bytes(field: str) -> int:
    """VmRSS / VmHWM (peak) of this process from /proc (ru_maxrss would include the parent's at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure(path: str, num_ctx: int) -> dict:
    """In this process: RSS after imports, then peak RSS after loading and filling a slot."""
    import torch

    from ossy.engine.scheduler import DEFAULT_REWIND, PREFILL_CHUNK, load_checkpoint, memory_estimate
    from ossy.engine.protocol import ModelRef

    torch.manual_seed(0)
    baseline = status_bytes("VmRSS")
    model = load_checkpoint(ModelRef("m", "sha256:m", Path(path)), "bfloat16")
    cache = model.new_cache(rewind=DEFAULT_REWIND)
    ids = torch.randint(0, model.config.vocab_size, (num_ctx - 1,))
    for start in range(0, len(ids), PREFILL_CHUNK):
        model.forward(ids[start:start + PREFILL_CHUNK], cache, last_only=True)
    model.forward(ids[:1], cache, last_only=True)  # one decode step at a full context
    peak = status_bytes("VmHWM")
    e = memory_estimate(model.config, num_ctx, slots=1, native=model.backend != "torch")
    return {"baseline": baseline, "peak": peak, "weights": e.weights, "kv": e.kv_per_slot, "compute": e.compute,
            "runtime": e.runtime, "estimate": e.total, "backend": model.backend}


def run(layers: int, vocab: int, num_ctx: int, directory: Path) -> dict:
    """Write the checkpoint under `directory` and measure it in a fresh process."""
    from engine import full_width_config, random_tensors

    from ossy.model.weights import save_checkpoint

    config = full_width_config(layers, vocab)
    path = save_checkpoint(directory / "model", config, random_tensors(config), mxfp4=True)
    out = subprocess.run([sys.executable, __file__, "--child", str(path), "--num-ctx", str(num_ctx)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=201088)
    parser.add_argument("--num-ctx", type=int, default=8192)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.num_ctx)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        r = run(args.layers, args.vocab, args.num_ctx, Path(tmp))
    gib = 2**30
    print(f"{args.layers} full-width layers, vocab {args.vocab}, num_ctx {args.num_ctx}, backend {r['backend']}")
    print(f"estimate  {r['estimate'] / gib:6.2f} GiB  (weights {r['weights'] / gib:.2f}, kv {r['kv'] / gib:.3f}, "
          f"compute {r['compute'] / gib:.3f}, runtime {r['runtime'] / gib:.2f})")
    print(f"measured  {r['peak'] / gib:6.2f} GiB  peak RSS (runtime baseline {r['baseline'] / gib:.2f})")
    print(f"estimate / measured: {r['estimate'] / r['peak']:.3f}")


if __name__ == "__main__":
    main()
