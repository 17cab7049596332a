#!/bin/bash
# The GPU check of docs/gpu.md, as one script for a machine with CUDA LibTorch
# (python3's torch) and the .deb files of scripts/gpu_deps.sh in DEPS:
#   1. builds `ddaq` against that LibTorch (tests and Python module off),
#   2. trains experiments/econt/quick.json on the CPU and on the GPU and
#      evaluates both (exact EMD, AUC) on the same test wafers,
#   3. training throughput (events/s) at batch 256, 2048 and 16384, CPU vs GPU,
#   4. the EMD surrogate's throughput on the GPU against the exact solver.
# Usage: bash scripts/gpu_check.sh DEPS OUT   (writes OUT/*.log, OUT/summary.txt)
set -uo pipefail
deps=$(realpath "$1"); out=$(realpath "$2"); root=$(pwd)
mkdir -p "$out"
log() { echo "== $*" | tee -a "$out/summary.txt"; }
nproc_=$(nproc)

source "$root/scripts/gpu_prefix.sh"

log "torch $(python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")') abi $(python3 -c 'import torch; print(torch._C._GLIBCXX_USE_CXX11_ABI)')"
t0=$(date +%s)
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DDDAQ_BUILD_TESTS=OFF -DDDAQ_BUILD_PYTHON=OFF \
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5 -DCMAKE_PREFIX_PATH="$torch_cmake;$prefix/usr" \
  -DHDF5_ROOT="$L/hdf5/serial" "${gloo[@]}" >"$out/configure.log" 2>&1 || { log "configure failed"; tail -30 "$out/configure.log"; exit 1; }
grep "ddaq: LibTorch" "$out/configure.log" | tee -a "$out/summary.txt"
cmake --build build-cuda -j"$nproc_" -- -k 0 >"$out/build.log" 2>&1 || { log "build failed"; grep -E "error|Error" "$out/build.log" | head -40; exit 1; }
log "build: $(( $(date +%s) - t0 )) s on $nproc_ cores"
ddaq=$root/build-cuda/core/ddaq
work=/tmp/ddaq-gpu; rm -rf "$work"; mkdir -p "$work"
$ddaq data synth -o "$work/train.h5" --events ${TRAIN_EVENTS:-60000} --seed 1 --pileup 40 >/dev/null
$ddaq data synth -o "$work/test.h5" --events 20000 --seed 2 --pileup 40 >/dev/null

config() {  # config BATCH THREADS FILE
  python3 - "$1" "$2" "$3" "$root/experiments/econt/quick.json" "$root/surrogates/models/emd_surrogate.pt" <<'PY'
import json, sys
batch, threads, path, src, surrogate = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
c = json.load(open(src))
c["training"].update(batch_size=batch, threads=threads, surrogate=surrogate)
json.dump(c, open(path, "w"), indent=1)
PY
}
log "2. quick.json (4 epochs, batch 256, 60,000 wafers), CPU ($nproc_ threads) vs GPU"
config 256 "$nproc_" "$work/q.json"
for dev in ${DEVICES:-cpu cuda}; do
  timeout 240 $ddaq train "$work/q.json" --data "$work/train.h5" -o "$work/q_$dev" --device $dev >"$out/train_$dev.log" 2>&1
  echo "rc=$?" >>"$out/train_$dev.log"
  log "$dev: $(grep -E 'steps, .* epochs' "$out/train_$dev.log" | tail -1)"
  timeout 120 $ddaq eval "$work/q_$dev" --data "$work/test.h5" --events 5000 >"$out/eval_$dev.log" 2>&1
  grep -iE "emd|auc" "$out/eval_$dev.log" | head -6 | tee -a "$out/summary.txt"
done
log "3. training throughput (events/s), steps = max(20, 400000/batch)"
for batch in 256 2048 16384; do
  steps=$(( 400000 / batch )); [ $steps -lt 20 ] && steps=20
  config $batch "$nproc_" "$work/b$batch.json"
  for dev in ${DEVICES:-cpu cuda}; do
    timeout 150 $ddaq train "$work/b$batch.json" --data "$work/train.h5" -o "$work/b${batch}_$dev" --device $dev \
      --max-steps $steps >"$out/bench_${batch}_$dev.log" 2>&1
    log "batch $batch $dev: $(grep -oE '[0-9]+ events/s' "$out/bench_${batch}_$dev.log" | tail -1)"
  done
done
log "4. EMD surrogate vs exact solver ($nproc_ threads)"
timeout 150 $ddaq surrogate emd eval "$root/surrogates/models/emd_surrogate.pt" --data "$work/test.h5" \
  --max-wafers 20000 --device ${SURROGATE_DEVICE:-cuda} >"$out/surrogate.log" 2>&1
cat "$out/surrogate.log" | tee -a "$out/summary.txt"
