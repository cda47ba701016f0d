# Sourced by the scripts: bootstrap once, then point CMake at LibTorch and ccache at its cache.
ANGULAR_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TORCH_PREFIX=$("$ANGULAR_ROOT/scripts/bootstrap" | tail -n 1)
ANGULAR_PYTHON=${ANGULAR_VENV:-$HOME/.cache/angular/venv}/bin/python
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
# Paths relative to the checkout, so that a fresh clone elsewhere (as CI's) hits the cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ANGULAR_ROOT}
# Precompiled headers are cacheable only with these.
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
cd "$ANGULAR_ROOT"

# configure_and_build PRESET [TARGET...]
configure_and_build() {
  local preset=$1; shift
  # A build folder configured with another LibTorch (TORCH_VERSION, ANGULAR_VENV) starts afresh:
  # its cache holds that LibTorch's paths.
  local fresh=() cache="build/$preset/CMakeCache.txt"
  if [ -f "$cache" ] && ! grep -qxF "Torch_DIR:PATH=$TORCH_PREFIX/Torch" "$cache"; then fresh=(--fresh); fi
  cmake --preset "$preset" "${fresh[@]}" -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DTorch_DIR="$TORCH_PREFIX/Torch" >/dev/null
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build --preset "$preset" -j "${ANGULAR_JOBS:-2}" "${targets[@]}"
}

# install_python_package: builds angular._C (setup.py, at the root) against the venv's torch,
# through ccache, and installs the package into the venv. Its CUDA kernels are built wherever nvcc
# is: for the GPU seen, else for sm_90 alone (what the presets build), which checks that they
# compile where no GPU can run them. ANGULAR_CUDA=0 leaves them out.
install_python_package() {
  local cxx=${CXX:-g++}
  local -a cuda=(ANGULAR_CUDA=0)
  if [ "${ANGULAR_CUDA:-}" != 0 ] && command -v nvcc >/dev/null; then
    cuda=(ANGULAR_CUDA=1)
    if ! { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }; then
      cuda+=(TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}")
    fi
  fi
  if [ -x /usr/lib/ccache/g++ ] && [ -z "${CXX:-}" ]; then cxx=/usr/lib/ccache/g++; fi
  echo "python: building angular._C (${cuda[*]}) and installing the package into the venv" >&2
  env "${cuda[@]}" MAX_JOBS="${ANGULAR_JOBS:-2}" CXX="$cxx" \
    "$ANGULAR_PYTHON" -m pip install -q --disable-pip-version-check --no-build-isolation .
}
