#!/bin/bash
# The rest of docs/gpu.md's GPU check, as one script for a machine with CUDA
# LibTorch (python3's torch) and the .deb files of scripts/gpu_deps.sh in DEPS:
#   1. builds ddaq, the doctest suite and (where python3 has its headers and
#      pybind11) the Python module against that LibTorch,
#   2. runs the whole ctest suite there (real-data and firmware tests skip:
#      ../shared does not travel),
#   3. the EMD surrogate's throughput on the GPU at training-sized inputs,
#   4. --resume of an interrupted training on the GPU.
# Usage: bash scripts/gpu_suite.sh DEPS OUT   (writes OUT/*.log, OUT/summary.txt)
# Env: SUITE_FIRST=REGEX (those tests first, output kept), SUITE_LIMIT=S,
#      SKIP_MEASURE=1 (steps 1-2 only).
set -uo pipefail
deps=$(realpath "$1"); out=$(realpath "$2"); root=$(pwd)
mkdir -p "$out"
log() { echo "== $*" | tee -a "$out/summary.txt"; }
nproc_=$(nproc)
source "$root/scripts/gpu_prefix.sh"
log "torch $(python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")')"

python_opts=(-DDDAQ_BUILD_PYTHON=OFF)
inc=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if [ -f "$inc/Python.h" ] && pybind_dir=$(python3 -m pybind11 --cmakedir 2>/dev/null); then
  python_opts=(-DDDAQ_BUILD_PYTHON=ON -Dpybind11_DIR="$pybind_dir" -DPYBIND11_FINDPYTHON=OFF)
fi
log "python module: ${python_opts[*]}"
t0=$(date +%s)
configure() {
  cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DDDAQ_BUILD_TESTS=ON "$@" \
    -DPython3_EXECUTABLE="$(command -v python3)" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
    -DCMAKE_PREFIX_PATH="$torch_cmake;$prefix/usr" -DHDF5_ROOT="$L/hdf5/serial" "${gloo[@]}" >"$out/configure.log" 2>&1
}
if ! configure "${python_opts[@]}"; then
  log "configure with the Python module failed: $(grep -A2 'CMake Error' "$out/configure.log" | head -3 | tr '\n' ' ')"
  rm -rf build-cuda
  configure -DDDAQ_BUILD_PYTHON=OFF || { log "configure failed"; tail -30 "$out/configure.log"; exit 1; }
  log "python module: off"
fi
grep "ddaq: LibTorch" "$out/configure.log" | tee -a "$out/summary.txt"
cmake --build build-cuda -j"$nproc_" -- -k 0 >"$out/build.log" 2>&1 || log "build failed (what built is tested)"
grep -E "error:|FAILED" "$out/build.log" | head -20 | tee -a "$out/summary.txt"
log "1. build: $(( $(date +%s) - t0 )) s on $nproc_ cores"

# SUITE_FIRST=REGEX runs those entries first, with their output kept
# (ctest-first.log), then the rest.
if [ -n "${SUITE_FIRST:-}" ]; then
  t0=$(date +%s)
  (cd build-cuda && timeout ${FIRST_LIMIT:-240} ctest -j"$nproc_" --timeout 200 -R "$SUITE_FIRST" \
    --output-on-failure >"$out/ctest-first.log" 2>&1)
  log "2a. ctest -R '$SUITE_FIRST' (rc $?, $(( $(date +%s) - t0 )) s): $(grep -E 'tests passed|tests failed' "$out/ctest-first.log")"
  grep -E "\*\*\*Failed|\*\*\*Timeout|Not Run|\*\*\*Exception" "$out/ctest-first.log" | head -30 | tee -a "$out/summary.txt"
fi
t0=$(date +%s)
(cd build-cuda && timeout ${SUITE_LIMIT:-300} ctest -j"$nproc_" --timeout 240 ${SUITE_FIRST:+-E "$SUITE_FIRST"} \
  >"$out/ctest.log" 2>&1)
log "2. ctest (rc $?, $(( $(date +%s) - t0 )) s, -j$nproc_): $(grep -E 'tests passed|tests failed' "$out/ctest.log")"
grep -E "\*\*\*Failed|\*\*\*Timeout|Not Run|\*\*\*Exception" "$out/ctest.log" | head -30 | tee -a "$out/summary.txt"
log "skipped: $(grep -c '\*\*\*Skipped' "$out/ctest.log")"

[ -n "${SKIP_MEASURE:-}" ] && exit 0
ddaq=$root/build-cuda/core/ddaq
work=/tmp/ddaq-gpu; rm -rf "$work"; mkdir -p "$work"
log "3. EMD surrogate at ${PAIRS:-400000} wafers (GPU) against the exact solver ($nproc_ threads)"
$ddaq data synth -o "$work/big.h5" --events ${PAIRS:-400000} --seed 3 --pileup 40 >/dev/null
timeout 150 $ddaq surrogate emd eval "$root/surrogates/models/emd_surrogate.pt" --data "$work/big.h5" \
  --max-wafers ${PAIRS:-400000} --device cuda >"$out/surrogate.log" 2>&1
tee -a "$out/summary.txt" <"$out/surrogate.log"

log "4. --resume on the GPU (quick.json, stopped at step 120 of 240, resumed)"
$ddaq data synth -o "$work/train.h5" --events 20000 --seed 1 --pileup 40 >/dev/null
python3 - "$root/experiments/econt/quick.json" "$work/q.json" "$root/surrogates/models/emd_surrogate.pt" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["training"].update(surrogate=sys.argv[3]); json.dump(c, open(sys.argv[2], "w"))
PY
{ timeout 120 $ddaq train "$work/q.json" --data "$work/train.h5" -o "$work/r" --device cuda --max-steps 120 --checkpoint-every 60
  echo "rc=$?"
  timeout 120 $ddaq train "$work/q.json" --data "$work/train.h5" -o "$work/r" --device cuda --resume
  echo "rc=$?"
  timeout 60 $ddaq eval "$work/r" --data "$work/train.h5" --events 2000; echo "rc=$?"; } >"$out/resume.log" 2>&1
grep -E "rc=|steps|resum|EMD|error" "$out/resume.log" | head -12 | tee -a "$out/summary.txt"
