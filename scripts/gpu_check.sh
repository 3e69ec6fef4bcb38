#!/usr/bin/env bash
# The checks that need a CUDA device, in one go: the GPU tests (compiled Triton kernels, the world model on CUDA),
# then the attention benchmark, whose JSON (benchmarks/results/ keeps one per benchmark) is named after the device,
# and the training benchmark on CUDA (its table only: its kept JSON is the CPU one).
# Run from the repository root after `pip install -e '.[dev]'` on a machine with a CUDA GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
device=$(python3 -c "import torch; print(torch.cuda.get_device_name().split()[-1].lower())")
TRITON_INTERPRET=0 python3 -m pytest -m gpu -q tests/kernels tests/test_gpu_model.py
cd benchmarks
python3 attention.py --no-flex --json "results/attention_cuda_${device}.json"
python3 train.py --device cuda --presets tiny small base --steps 10
