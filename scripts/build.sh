#!/usr/bin/env bash
# Configures and builds ddaq into build/ (Release, Ninja, ccache when present).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${DDAQ_BUILD_DIR:-$root/build}"
jobs="${DDAQ_JOBS:-2}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE=/usr/bin/python3 >/dev/null
cmake --build "$build" -j "$jobs"
