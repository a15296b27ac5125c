#!/usr/bin/env bash
# GPU acceptance: one script, under 8 minutes on one H100, run from the checkout on the GPU machine.
#
#   benchmarks/gpu_acceptance.sh [--dry-run] [--out DIR]
#
# In order: the device and versions; the CUDA tests (pytest -m cuda); the main job (the synthetic staged
# demo) in bf16-mixed with its table and time; bench_nets.py for FCN-32s/16s/8s at 500x500 in bf16-mixed
# and fp32 with torch.compile off and on; cuDNN autotuning on and off over 10 VOC-like sizes. Each step
# has its own time limit, and a failed step does not stop the ones after it. Everything goes into one
# Markdown report, DIR/report.md (default DIR: runs/gpu-acceptance), with the date, device and commands.
#
# The GPU machine reaches no package registry and lacks jsonargparse, omegaconf, albumentations and wandb:
# their wheels (benchmarks/gpu_wheels.txt) are downloaded beforehand into .wheels/gpu (the command is in
# benchmarks/README.md), and this script installs them into a folder of its own on PYTHONPATH. The project
# itself runs from the checkout (PYTHONPATH), not installed.
#
# --dry-run prints every step with its command and time limit and runs those that can run on a CPU (the
# version step; the CUDA tests, which then skip with their reason): a test runs it.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/runs/gpu-acceptance"
DRY_RUN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_acceptance.sh: error: unknown argument $1 (expected --dry-run, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
PYTHON="${PYTHON:-python3}"
WHEELS="$ROOT/.wheels/gpu"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
REPORT="$OUT/report.md"
SITE="$OUT/site-packages"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
cd "$ROOT"

# 10 VOC-like image sizes (heights x widths of PASCAL VOC images: at most 500 on a side).
VOC_SIZES="500x375 375x500 500x333 333x500 500x366 500x400 400x500 500x281 480x500 500x354"

# name | time limit (s) | runs on a CPU (dry run) | command. The limits add up to 475 s (7.9 minutes).
STEPS=(
  "versions|30|yes|nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo 'nvidia-smi: no NVIDIA driver here'; \"\$PYTHON\" -c 'import torch, lightning; print(\"torch\", torch.__version__, \"| CUDA\", torch.version.cuda, \"| cuDNN\", torch.backends.cudnn.version(), \"| lightning\", lightning.__version__, \"| device\", torch.cuda.get_device_name() if torch.cuda.is_available() else \"none (CPU)\")'"
  "cuda-tests|150|yes|\"\$PYTHON\" -m pytest -m cuda -q -p no:cacheprovider tests/*/test_cuda.py"
  "main-job-bf16|90|no|/usr/bin/time -f 'wall %e s' \"\$PYTHON\" -m fcn_lightning.cli staged --config configs/synthetic/staged.yaml --out \"\$OUT/demo\" --trainer.precision bf16-mixed --trainer.accelerator gpu --trainer.enable_progress_bar false"
  "bench-500-compile-off|90|no|\"\$PYTHON\" benchmarks/bench_nets.py --device cuda --variants fcn32s fcn16s fcn8s --sizes 500 --batches 1 16 --precision bf16-mixed fp32 --channels-last on --compile off"
  "bench-500-compile-on|75|no|\"\$PYTHON\" benchmarks/bench_nets.py --device cuda --variants fcn8s --sizes 500 --batches 16 --precision bf16-mixed --channels-last on --compile on --no-plain"
  "autotune-on-10-sizes|20|no|\"\$PYTHON\" benchmarks/bench_nets.py --device cuda --variants fcn8s --sizes $VOC_SIZES --batches 1 --precision bf16-mixed --channels-last on --cudnn-benchmark on --warmup 0 --iters 1 --no-plain"
  "autotune-off-10-sizes|20|no|\"\$PYTHON\" benchmarks/bench_nets.py --device cuda --variants fcn8s --sizes $VOC_SIZES --batches 1 --precision bf16-mixed --channels-last on --cudnn-benchmark off --warmup 0 --iters 1 --no-plain"
)

{
  echo "# GPU acceptance report"
  echo
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(hostname); checkout: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$([ "$DRY_RUN" = 1 ] && echo '; DRY RUN (CPU steps only)')"
  echo
  echo "Device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || true)"
  echo
} >"$REPORT"

if [ "$DRY_RUN" = 0 ] && [ -d "$WHEELS" ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$WHEELS"/*.whl && export PYTHONPATH="$PYTHONPATH:$SITE" \
    || echo "gpu_acceptance.sh: installing the wheels of $WHEELS failed; steps that need them will fail" >&2
elif [ "$DRY_RUN" = 0 ]; then
  echo "gpu_acceptance.sh: no $WHEELS (see benchmarks/README.md): jsonargparse, omegaconf, albumentations and wandb must already be importable" >&2
fi

failed=0
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit on_cpu command <<<"$step"
  shown="${command//\"\$PYTHON\"/$PYTHON}"
  shown="${shown//\"\$OUT/\"$OUT}"
  echo "== step $name (limit ${limit} s): $shown"
  {
    echo "## $name"
    echo
    echo "Command (limit ${limit} s):"
    echo
    echo '```'
    echo "$shown"
    echo '```'
    echo
  } >>"$REPORT"
  if [ "$DRY_RUN" = 1 ] && [ "$on_cpu" != yes ]; then
    echo "   (dry run: needs the GPU, not run)"
    echo "Not run (dry run: needs the GPU)." >>"$REPORT"
    echo >>"$REPORT"
    continue
  fi
  log="$OUT/$name.log"
  start=$(date +%s)
  PYTHON="$PYTHON" OUT="$OUT" timeout --kill-after=10 "$limit" bash -c "$command" >"$log" 2>&1
  code=$?
  seconds=$(( $(date +%s) - start ))
  if [ "$code" = 0 ]; then status="passed"; elif [ "$code" = 124 ] || [ "$code" = 137 ]; then status="TIMED OUT"; else status="FAILED (exit $code)"; fi
  [ "$code" = 0 ] || failed=$((failed + 1))
  tail -n 60 "$log"
  echo "== step $name: $status in ${seconds} s"
  {
    echo "Result: **$status** in ${seconds} s. Output (last 200 lines; whole: \`$name.log\`):"
    echo
    echo '```'
    tail -n 200 "$log"
    echo '```'
    echo
  } >>"$REPORT"
done

echo "Steps failed: $failed" >>"$REPORT"
echo "== report: $REPORT ($failed step(s) failed)"
[ "$failed" = 0 ]
