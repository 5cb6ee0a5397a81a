#!/usr/bin/env bash
# The GPU session's benchmark run: one call, a few minutes, figures to paste into benchmarks/RESULTS.md
# with the device named. Usage (on the GPU machine, repository root): bash benchmarks/gpu.sh [OUT_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-/tmp/skingen-gpu}}"
mkdir -p "$out"
export HF_HUB_OFFLINE=1
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv && .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1 && .venv/bin/pip install -q -e .
fi
py=.venv/bin/python
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    $py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
} 2>&1 | tee "$out/device.txt"
run() {  # name, timeout, command...
    local name=$1 limit=$2; shift 2
    echo "== $name" | tee -a "$out/summary.txt"
    timeout "$limit" "$@" 2>"$out/$name.err" | tee "$out/$name.txt" | tee -a "$out/summary.txt"
}
run stylegan2 330 $py benchmarks/bench_stylegan2_gpu.py
run metrics 120 $py benchmarks/bench_metrics.py --n-images 256 --batch 64
run ddpm 120 $py benchmarks/bench_ddpm.py --steps 30 --batch 16
run extractors 150 $py benchmarks/bench_extractors.py --n 512 --batch 64
run sd_lora 240 $py benchmarks/bench_sd_lora.py --sd15 --steps 10 --batch 4 --sample 4
echo "figures in $out/summary.txt"
