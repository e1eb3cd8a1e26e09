#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: gpt-oss through ossy-on-vLLM and through ossy's own PyTorch path
# on CUDA, tokens per second of both (docs/scale.md). Needs no GPU to read, one to run; CI has none.
#   scripts/gpu_check.sh [CHECKPOINT_DIR | HF_ID]      (default openai/gpt-oss-20b)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-openai/gpt-oss-20b}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "gpu_check: no NVIDIA GPU here" >&2; exit 1; }
VENV=.venv-gpu  # vLLM pins libraries below ossy's: a venv of its own, ossy installed without its pins
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q vllm==0.32.0 gguf==0.19.0 huggingface_hub
"$VENV/bin/pip" install -q --no-deps -e .
if [ ! -d "$MODEL" ]; then
  MODEL="$("$VENV/bin/python" -c 'import sys; from huggingface_hub import snapshot_download; print(snapshot_download(sys.argv[1]))' "$MODEL")"
fi
"$VENV/bin/python" scripts/gpu_check.py "$MODEL" --device cuda
