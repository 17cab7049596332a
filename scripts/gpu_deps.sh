#!/bin/bash
# Downloads the Debian 12 packages (.deb) a CUDA build of `ddaq` needs beside an
# upstream LibTorch, into DIR (default .gpudeps), for a GPU machine that reaches
# no package registry: carry DIR there and run scripts/gpu_check.sh (docs/gpu.md).
set -euo pipefail
dir=${1:-.gpudeps}
mkdir -p "$dir"
cd "$dir"
apt-get download \
  libeigen3-dev libceres-dev libceres3 libgoogle-glog-dev libgoogle-glog0v6 libgflags-dev libgflags2.2 \
  libunwind8 libunwind-dev libcholmod3 libcxsparse3 libspqr2 libamd2 libcamd2 libccolamd2 libcolamd2 \
  libsuitesparseconfig5 libmetis5 libmetis-dev libsuitesparse-dev libatlas3-base libgfortran5 \
  libblas3 liblapack3 libblas-dev liblapack-dev \
  libhdf5-dev libhdf5-103-1 libhdf5-cpp-103-1 libhdf5-hl-100 libhdf5-hl-cpp-100 libsz2 libaec0 libaec-dev \
  libonnx-dev libonnx1 libonnxifi libprotobuf-dev libprotobuf32 libprotobuf-lite32 \
  libcli11-dev nlohmann-json3-dev doctest-dev libgloo-dev libgd-dev libgd3
# libgd's own libraries: scripts/gpu_prefix.sh links in only those the GPU
# machine lacks (an older copy of a system library would shadow the newer one).
mkdir -p runtime
(cd runtime && apt-get download libabsl20220623 libaom3 libavif15 libbrotli1 libbsd0 libdav1d6 libde265-0 \
  libdeflate0 libexpat1 libfontconfig1 libfreetype6 libgav1-1 libheif1 libjbig0 libjpeg62-turbo liblerc4 \
  libmd0 libnuma1 libpng16-16 librav1e0 libsvtav1enc1 libtiff6 libwebp7 libx11-6 libx265-199 libxau6 \
  libxcb1 libxdmcp6 libxpm4 libyuv0)
du -sh .
