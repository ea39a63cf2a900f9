#!/usr/bin/env bash
# What one short session on a lent GPU machine runs, in phases; each phase logs under $OUT.
#
#   benchmarks/gpu_session.sh build test bench      build for this GPU, run the cuda tests, time the backend
#   benchmarks/gpu_session.sh architectures         msrresnet and srvgg_compact on cuda beside torch (540x960)
#   benchmarks/gpu_session.sh train SECONDS         resume srresnet training from the committed checkpoint
#   benchmarks/gpu_session.sh variants DIR          A/B-test kernel variants
#
#   build   the extension in place, CUDA code for this GPU's compute capability only (fast to compile)
#   test    every test marked `cuda` (kernels, engine, backend against the torch reference)
#   bench   `srgan-fast cuda-profile` (fp16/bf16; per-layer and fused-block variants) and benchmarks/latency.py,
#           the cuda backend beside torch's three anchors (channels_last, + cudnn.benchmark, + torch.compile
#           max-autotune) in one run, on a 540x960 -> 4K frame: host-to-host and GPU forward time of each
#   variants DIR   A/B kernel variants in one call: DIR holds one folder per variant with the files that replace
#           the working tree's (e.g. DIR/v0/csrc/ops/cuda/conv_mma.cu); each is built in its own copy, its cuda
#           kernel and engine tests run, and it is profiled (fp16, fused and two-kernel blocks): variants.json.
#           On its first use (H200, 2026-11-26) pytest segfaulted in every variant copy, the unchanged baseline
#           too, while the same code passed in the working tree; cause not found. Its timings stand, but a
#           variant counts as tested only after `test` passes with it in the working tree.
#   train   training.train_srresnet from the newest training/checkpoints/srresnet_step*.safetensors (or $CKPT)
#           on $DATA (default /root/sfdata: the training folders, copied there first; EXPECT_IMAGES files, 180)
#           for about SECONDS, with the lr schedule sized from a measured steps/s; the checkpoint comes back in
#           15 MB pieces (the device tool returns files of at most 16 MB): cat ckpt.part.* > last.safetensors
#
# The machine runs its own python3 (with torch) and nvcc; nothing is installed. Its python must have the core
# dependencies: on the lent H200s of 2026-11-26 pypng was missing, so its wheel travelled with the call and went
# on PYTHONPATH first. Phases keep going after a failure so that one call reports as much as it can; the exit
# status is that of the last failed phase.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${OUT:-benchmarks/results/gpu-session}")
DATA=${DATA:-/root/sfdata}
RUN=${RUN:-/root/sfrun}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
status=0

# merge_json PATTERN TARGET: the JSON files under $OUT matching PATTERN become one object {file stem: content}
# in $OUT/TARGET (the device tool returns only a few files per call).
merge_json() {
  python3 - "$OUT" "$1" "$2" <<'EOF'
import json, pathlib, sys
out, pattern, target = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
parts = sorted(out.glob(pattern))
(out / target).write_text(json.dumps({p.stem: json.loads(p.read_text()) for p in parts}, indent=1))
for p in parts:
    p.unlink()
EOF
}

# build_here JOBS LOG: the extension in place in the current directory, CUDA for this GPU's compute capability
# only (one architecture compiles in a fraction of the time of CI's four).
build_here() {
  local arch
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
  SRGAN_FAST_BUILD_NATIVE=require SRGAN_FAST_CUDA=ON SRGAN_FAST_CUDA_ARCHITECTURES="$arch" MAX_JOBS="$1" \
    python3 setup.py build_ext --inplace >"$2" 2>&1
}

phase_build() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
  python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
  nvcc --version | tail -2
  build_here 16 "$OUT/build.log" || { tail -40 "$OUT/build.log"; return 1; }
  grep -E "warning|ptxas" "$OUT/build.log" | head -20
  python3 -m srgan_fast.cli info
}

phase_test() {
  timeout 240 python3 -m pytest -q -m cuda -rfE --tb=short -p no:cacheprovider tests 2>&1 | tee "$OUT/tests.log" \
    | tail -60
}

phase_bench() {
  local precision fused
  for precision in fp16 bf16; do
    for fused in "" --fuse-blocks; do
      timeout 60 python3 -m srgan_fast.cli cuda-profile --precision "$precision" --size 540x960 --repeats 20 $fused \
        --json "$OUT/profile-$precision${fused:+-fused}.json" || return 1
    done
  done
  merge_json "profile-*.json" cuda-profile.json
  # The torch anchors: channels_last, + cudnn.benchmark, + torch.compile max-autotune (minutes of autotuning
  # for its one shape, hence fp16 at 4K only); then both precisions at 128^2 without the compiled anchor.
  timeout 480 python3 benchmarks/latency.py --model random --device cuda --backends cuda torch \
    --precisions fp16 --sizes 540x960 --repeats 20 --warmup 3 --json "$OUT/latency-cuda-4k.json"
  timeout 120 python3 benchmarks/latency.py --model random --device cuda --backends cuda torch --no-compile \
    --precisions fp16 bf16 --sizes 128 --repeats 20 --warmup 3 --json "$OUT/latency-cuda-128.json"
}

# The other architectures the CUDA engine walks the step plan for (not yet run on a GPU): the cuda backend
# beside torch channels_last (+ cudnn.benchmark) on one 540x960 frame, fp16, random weights.
phase_architectures() {
  local architecture
  for architecture in msrresnet srvgg_compact; do
    timeout 150 python3 benchmarks/latency.py --model random --architecture "$architecture" --device cuda \
      --backends cuda torch --no-compile --precisions fp16 --sizes 540x960 --repeats 10 --warmup 2 \
      --json "$OUT/latency-cuda-$architecture.json" || return 1
  done
}

phase_variants() {
  local dir=$1 name
  for variant in "$dir"/*/; do
    name=$(basename "$variant")
    rm -rf "/tmp/variant-$name" && mkdir -p "/tmp/variant-$name"
    tar --exclude=./build --exclude=./.gpudata -cf - . | tar -xf - -C "/tmp/variant-$name"
    cp -r "$variant". "/tmp/variant-$name/"
    (cd "/tmp/variant-$name" && build_here 6 build.log || echo "variant $name: build failed") &
  done
  wait
  for variant in "$dir"/*/; do
    name=$(basename "$variant")
    echo "--- variant $name" | tee -a "$OUT/variants.log"
    (cd "/tmp/variant-$name" && tail -3 build.log && \
      timeout 120 python3 -m pytest -q -m cuda -p no:cacheprovider --tb=line tests/test_cuda_kernels.py \
        tests/test_cuda_engine.py 2>&1 | tail -8 | sed "s/^/$name: /"
      for fused in "" --fuse-blocks; do
        timeout 60 python3 -m srgan_fast.cli cuda-profile --precision fp16 --size 540x960 --repeats 20 $fused \
          --json "$OUT/variant-$name${fused:+-fused}.json" | sed -n "1s/^/$name: /p"
      done) 2>&1 | tee -a "$OUT/variants.log"
  done
  merge_json "variant-*.json" variants.json
}

phase_train() {
  local seconds=$1 images rate steps start ckpt
  # The images reach the machine in several calls (each call's transfer is capped): refuse a partial copy.
  images=$(find "$DATA" -type f | wc -l)
  [ "$images" -eq "${EXPECT_IMAGES:-180}" ] ||
    { echo "expected ${EXPECT_IMAGES:-180} training/validation images in $DATA, found $images"; return 1; }
  mkdir -p "$RUN"
  ckpt=${CKPT:-$(ls training/checkpoints/srresnet_step*.safetensors | sort -V | tail -1)}
  cp "$ckpt" "$RUN/last.safetensors"
  start=$(python3 -c "from training.checkpoint import read_checkpoint_meta as m; print(m('$ckpt')['step'])")
  # Steps/s without data loading; the loop itself runs a little slower, so plan on 70% of it.
  timeout 90 python3 -m training.speed --device cuda --phase srresnet --precision fp32 bf16 --batch 16 --crop 96 \
    --steps 30 | tee "$OUT/train.log"
  rate=$(timeout 60 python3 -m training.speed --device cuda --phase srresnet --precision bf16 --batch 32 --crop 128 \
    --steps 40 | tee -a "$OUT/train.log" | awk '/steps\/s/ {print $(NF-1)}')
  steps=$(python3 -c "print(int(0.7 * $rate * ($seconds - 60)))")
  # A fresh MSE cycle: lr 1e-4, halved at 40/60/75/85/93% of the planned steps.
  milestones=$(python3 -c "print(' '.join(str($start + int(f * $steps)) for f in (0.4, 0.6, 0.75, 0.85, 0.93)))")
  echo "planned: $steps steps at batch 32 x 128^2 from step $start; lr halved at $milestones" | tee -a "$OUT/train.log"
  timeout $((seconds + 60)) python3 -m training.train_srresnet --data "$DATA" --run-dir "$RUN" --resume \
    --device cuda --precision bf16 --batch 32 --crop 128 --loss mse --lr 1e-4 --lr-milestones $milestones \
    --steps $((start + steps)) --workers 12 --val-every 1000 --ckpt-every 1000 --log-every 50 \
    --max-minutes "$(python3 -c "print(($seconds - 30) / 60)")" 2>&1 | tr '\r' '\n' \
    | tee -a "$OUT/train.log" | grep -E "^step |resumed|data:|stopped|Error|error|signal|reached"
  cp "$RUN/log.csv" "$OUT/train-log.csv"
  split -b 15M "$RUN/last.safetensors" "$OUT/ckpt.part."
}

while [ $# -gt 0 ]; do
  phase=$1
  shift
  echo "=== $phase ($(date -u +%T))"
  case $phase in
    build | test | bench | architectures) "phase_$phase" || status=$? ;;
    train) phase_train "$1" || status=$?; shift ;;
    variants) phase_variants "$1" || status=$?; shift ;;
    *) echo "unknown phase $phase (build, test, bench, architectures, variants DIR, train SECONDS)"; exit 2 ;;
  esac
done
echo "=== done ($(date -u +%T)), status $status"
exit $status
