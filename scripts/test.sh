#!/usr/bin/env bash
# README command 2: install, build, run the whole test suite through ctest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh"
cd "${DDAQ_BUILD_DIR:-$root/build}"
ctest --output-on-failure -j "${DDAQ_JOBS:-2}"
