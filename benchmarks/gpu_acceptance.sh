#!/usr/bin/env bash
# GPU acceptance: one script, run from the checkout on the GPU machine. The whole run, the wheels' unpacking
# included, takes at most 8 minutes on one H100: every step has a time limit, and the limits with each
# step's kill delay add up to less (the script refuses to start otherwise).
#
#   benchmarks/gpu_acceptance.sh [--dry-run | --rehearse] [--out DIR]
#
# In order: the wheels the image lacks unpacked onto PYTHONPATH; the versions (torch, CUDA, cuDNN, the
# device, and the folder each needed package is imported from); the CUDA tests (pytest -m cuda); the main
# job (the synthetic staged demo) in bf16-mixed, with its wall time and peak memory; bench_nets.py for
# FCN-32s/16s/8s at 500x500 in bf16-mixed and fp32 with torch.compile off and on; cuDNN autotuning on and
# off over 10 VOC-like sizes (each size's first step timed alone). A failed step does not stop the ones
# after it. One Markdown report, DIR/report.md: the date, device, every command with its output, and a
# table of each step's seconds; each step's whole output beside it.
#
# Every run starts in a fresh folder: DIR (default a new runs/gpu-acceptance/<UTC date-time>-XXXX) must be new or
# empty, so that no step continues (auto-resumes) an earlier run; torch.compile's caches live in DIR too.
#
# The GPU machine reaches no package registry and lacks jsonargparse, omegaconf, albumentations and wandb:
# their wheels (benchmarks/gpu_wheels.txt) are downloaded beforehand into .wheels/gpu (the command is in
# benchmarks/README.md) and unpacked into DIR/site-packages, which is on PYTHONPATH after the checkout.
# The project itself runs from the checkout, not installed.
#
# --dry-run: print every step with its command and time limit; run those a CPU can (the versions; the
# CUDA tests, which then skip with their reason).
# --rehearse: every step end to end on the CPU at tiny sizes, in an environment laid out as the GPU
# machine's (benchmarks/gpu_env.py rehearsal: a venv without those packages and without pip, their wheels
# packed from this environment and unpacked as above); the CUDA test that runs the command line runs on
# the CPU (FCN_CUDA_TESTS_ON=cpu); each step may take 5 times its GPU limit. Any plumbing fault shows
# here. A test runs it (about 125 s of CPU time: some 2 minutes on a quiet 2-core machine).
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT=""
MODE=run
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) MODE=dry-run ;;
    --rehearse) MODE=rehearse ;;
    --out)
      [ $# -ge 2 ] || { echo "gpu_acceptance.sh: error: --out needs a folder" >&2; exit 2; }
      OUT="$2"; shift ;;
    -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_acceptance.sh: error: unknown argument $1 (expected --dry-run, --rehearse, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
PYTHON="${PYTHON:-python3}"
WHEELS="$ROOT/.wheels/gpu"
BUDGET_S=480    # the whole run: 8 minutes
KILL_AFTER_S=3  # what a step gets after its limit to end before it is killed
LIMIT_FACTOR=1  # the rehearsal's steps get 5 times the GPU's limits: a shared CPU is slow, not broken

if [ -z "$OUT" ]; then
  mkdir -p "$ROOT/runs/gpu-acceptance"
  OUT="$(mktemp -d "$ROOT/runs/gpu-acceptance/$(date -u +%Y%m%d-%H%M%S)-XXXX")"
fi
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
  echo "gpu_acceptance.sh: error: $OUT is not empty (an earlier run's files); every run starts in a fresh folder: give a new --out DIR" >&2
  exit 2
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
REPORT="$OUT/report.md"
SITE="$OUT/site-packages"
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR="$OUT/cache/inductor" TRITON_CACHE_DIR="$OUT/cache/triton"
cd "$ROOT"
started=$(date +%s)

# 10 VOC-like image sizes (heights x widths of PASCAL VOC images: at most 500 on a side).
VOC_SIZES="500x375 375x500 500x333 333x500 500x366 500x400 400x500 500x281 480x500 500x354"
if [ "$MODE" = rehearse ]; then
  # As on the GPU machine: nothing but the checkout and the unpacked wheels on PYTHONPATH, no user site.
  export PYTHONPATH="$ROOT:$SITE" PYTHONNOUSERSITE=1 FCN_CUDA_TESTS_ON=cpu
  WHEELS="$OUT/rehearsal/wheels"
  LIMIT_FACTOR=5
  if ! PYTHON="$("$PYTHON" benchmarks/gpu_env.py rehearsal "$OUT/rehearsal")"; then
    echo "gpu_acceptance.sh: error: could not lay out the rehearsal's environment (above)" >&2
    exit 2
  fi
  ACCELERATOR=cpu
  BENCH="--device cpu --width 0.0625 --peak-size 64 --warmup 0 --iters 1"
  SIZE=32 BATCHES=1 BATCH=2 COMPILE_BACKEND="--compile-backend eager"
  SIZES=""  # the first 3 VOC-like sizes over 16
  for size in $(echo "$VOC_SIZES" | cut -d' ' -f1-3); do SIZES="$SIZES $((${size%x*} / 16))x$((${size#*x} / 16))"; done
  SIZES="${SIZES# }"
  CUDA_TESTS="tests/training/test_cuda.py -k bf16_mixed_fit"
  DEMO="--trainer.max_steps 2 --trainer.val_check_interval 2 --model.init_args.width 0.0625"
  DEMO="$DEMO --data.init_args.root $(printf %q "$OUT/data") --data.init_args.generator.image_size 32"
  DEMO="$DEMO --data.init_args.generator.num_train 4 --data.init_args.generator.num_val 2"
  DEMO="$DEMO --data.init_args.batch_size 2 --data.init_args.val_batch_size 2 --data.init_args.num_workers 0"
else
  ACCELERATOR=gpu
  BENCH="--device cuda"
  SIZE=500 BATCHES="1 16" BATCH=16 COMPILE_BACKEND="" SIZES="$VOC_SIZES"
  CUDA_TESTS="tests/*/test_cuda.py"
  DEMO=""
fi
PY="$(printf %q "$PYTHON")"
Q_WHEELS="$(printf %q "$WHEELS")"
Q_SITE="$(printf %q "$SITE")"
Q_OUT="$(printf %q "$OUT")"

# name | time limit (s) | runs in a dry run | command
STEPS=(
  "install-wheels|15|no|if [ -d $Q_WHEELS ]; then $PY benchmarks/gpu_env.py unpack $Q_WHEELS $Q_SITE; else echo 'no $WHEELS (benchmarks/README.md says how to fetch the wheels): nothing unpacked; the versions step shows whether the packages import'; fi"
  "versions|20|yes|nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo 'nvidia-smi: no NVIDIA driver here'; $PY benchmarks/gpu_env.py versions"
  "cuda-tests|150|yes|$PY -m pytest -m cuda -q -p no:cacheprovider $CUDA_TESTS"
  "main-job-bf16|70|no|$PY benchmarks/timed.py -m fcn_lightning.cli staged --config configs/synthetic/staged.yaml --out $Q_OUT/demo --trainer.precision bf16-mixed --trainer.accelerator $ACCELERATOR --trainer.enable_progress_bar false $DEMO"
  "bench-500-compile-off|70|no|$PY benchmarks/bench_nets.py $BENCH --variants fcn32s fcn16s fcn8s --sizes $SIZE --batches $BATCHES --precision bf16-mixed fp32 --channels-last on --compile off"
  "bench-500-compile-on|70|no|$PY benchmarks/bench_nets.py $BENCH --variants fcn8s --sizes $SIZE --batches $BATCH --precision bf16-mixed --channels-last on --compile on $COMPILE_BACKEND --no-plain"
  "autotune-on-10-sizes|20|no|$PY benchmarks/bench_nets.py $BENCH --variants fcn8s --sizes $SIZES --batches 1 --precision bf16-mixed --channels-last on --cudnn-benchmark on --warmup 0 --iters 1 --no-plain"
  "autotune-off-10-sizes|20|no|$PY benchmarks/bench_nets.py $BENCH --variants fcn8s --sizes $SIZES --batches 1 --precision bf16-mixed --channels-last on --cudnn-benchmark off --warmup 0 --iters 1 --no-plain"
)
budget=0
for step in "${STEPS[@]}"; do
  IFS='|' read -r _ limit _ _ <<<"$step"
  budget=$((budget + limit + KILL_AFTER_S))
done
if [ "$budget" -gt "$BUDGET_S" ]; then
  echo "gpu_acceptance.sh: error: the steps' limits and kill delays add up to $budget s, over the $BUDGET_S s the run may take" >&2
  exit 2
fi

{
  echo "# GPU acceptance report"
  echo
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: ${HOSTNAME:-$(uname -n)}; checkout: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$([ "$MODE" = dry-run ] && echo '; DRY RUN (CPU steps only)')$([ "$MODE" = rehearse ] && echo '; REHEARSAL (every step on the CPU at tiny sizes)')"
  echo
  echo "Device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || true)"
  echo
  echo "Python: $PYTHON; PYTHONPATH: $PYTHONPATH"
  echo
} >"$REPORT"
echo "== $MODE in $OUT; steps' limits and kill delays: $budget s of $BUDGET_S s$([ "$LIMIT_FACTOR" = 1 ] || echo " (rehearsal: each limit x $LIMIT_FACTOR)")"

failed=0
timings=()
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit in_dry_run command <<<"$step"
  echo "== step $name (limit ${limit} s): $command"
  {
    echo "## $name"
    echo
    echo "Command (limit ${limit} s):"
    echo
    echo '```'
    echo "$command"
    echo '```'
    echo
  } >>"$REPORT"
  if [ "$MODE" = dry-run ] && [ "$in_dry_run" != yes ]; then
    echo "   (dry run: not run)"
    echo "Not run (dry run)." >>"$REPORT"
    echo >>"$REPORT"
    timings+=("| $name | $limit | - | not run (dry run) |")
    continue
  fi
  log="$OUT/$name.log"
  start=$(date +%s)
  timeout --kill-after="$KILL_AFTER_S" "$((limit * LIMIT_FACTOR))" bash -c "$command" >"$log" 2>&1
  code=$?
  seconds=$(($(date +%s) - start))
  if [ "$code" = 0 ]; then status="passed"; elif [ "$code" = 124 ] || [ "$code" = 137 ]; then status="TIMED OUT"; else status="FAILED (exit $code)"; fi
  [ "$code" = 0 ] || failed=$((failed + 1))
  timings+=("| $name | $limit | $seconds | $status |")
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

total=$(($(date +%s) - started))
{
  echo "## Time per step"
  echo
  echo "| step | limit (s) | seconds | result |"
  echo "|---|---|---|---|"
  printf '%s\n' "${timings[@]}"
  echo
  echo "Whole run: $total s (limits and kill delays: $budget s of $BUDGET_S s)."
  echo
  echo "Steps failed: $failed"
} >>"$REPORT"
printf '%s\n' "${timings[@]}"
echo "== whole run: $total s; report: $REPORT ($failed step(s) failed)"
[ "$failed" = 0 ]
