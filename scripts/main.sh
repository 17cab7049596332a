#!/usr/bin/env bash
# README command 1: install, build, run ddaq's main job on built-in data.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
bash "$root/scripts/build.sh"
"${DDAQ_BUILD_DIR:-$root/build}/core/ddaq" run "$root/experiments/econt/quick.json" -o "$root/runs/quick" --overwrite
