#!/bin/bash
# Sourced by scripts/gpu_check.sh and scripts/gpu_suite.sh: unpacks the .deb files
# of scripts/gpu_deps.sh (folder $deps) into $prefix (dpkg -x), repairs what
# dpkg -x cannot (alternatives links, /usr paths in CMake files), and exports
# LD_LIBRARY_PATH, L (the library folder), torch_cmake and torch_root.
prefix=${prefix:-/tmp/ddaq-prefix}
rm -rf "$prefix"; mkdir -p "$prefix"
for f in "$deps"/*.deb; do dpkg -x "$f" "$prefix"; done
L=$prefix/usr/lib/x86_64-linux-gnu
# libgd's libraries, each only where the machine has no library of that name.
mkdir -p "$prefix/runtime"
for f in "$deps"/runtime/*.deb; do dpkg -x "$f" "$prefix/runtime"; done
for so in "$prefix"/runtime/usr/lib/x86_64-linux-gnu/*.so.*; do
  name=$(basename "$so")
  ldconfig -p | grep -q " $name " || ln -sf "$so" "$L/$name"
done
# Debian's BLAS/LAPACK live in alternatives folders; dpkg -x makes no links.
for lib in blas lapack; do
  ln -sf "$lib/lib$lib.so.3" "$L/lib$lib.so.3"; ln -sf "$lib/lib$lib.so.3" "$L/lib$lib.so"
done
for lib in atlas f77blas cblas; do ln -sf "lib$lib.so.3" "$L/lib$lib.so"; done
# The packages' CMake files name /usr in places (glog's find modules, Ceres's BLAS).
grep -rlZ '/usr/' "$L/cmake" "$prefix/usr/share/cmake" "$prefix/usr/lib/cmake" 2>/dev/null |
  xargs -0 sed -i -e "s|/usr/lib/x86_64-linux-gnu/lib|$L/lib|g" -e "s|/usr/share/glog|$prefix/usr/share/glog|g"
export LD_LIBRARY_PATH=$L:$L/hdf5/serial:$L/blas:$L/lapack:${LD_LIBRARY_PATH:-}
torch_cmake=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
torch_root=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
gloo=()
[ -f "$torch_root/include/gloo/config.h" ] && gloo=(-DGLOO_INCLUDE_DIR="$torch_root/include")
