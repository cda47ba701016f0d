# Sourced by the GPU scripts: the Debian packages of .device/ (scripts/gpu-prepare), the
# machine's own PyTorch, and one release build (build/gpu) of whatever targets the caller
# names. Needs ROOT and OUT.

gpu_tools() {
  if [ -d "$ROOT/.device/debs" ]; then
    for deb in "$ROOT"/.device/debs/*.deb; do dpkg -x "$deb" "$ROOT/.device/root"; done
    export LD_LIBRARY_PATH=$ROOT/.device/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null) ||
    TORCH_PREFIX=$("$ROOT/scripts/bootstrap" | tail -n 1)
  PY=python3
  python3 -c 'import torch' 2>/dev/null || PY=${ANGULAR_VENV:-$HOME/.cache/angular/venv}/bin/python
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    nvcc --version | tail -n 2; cmake --version | head -n 1; } 2>&1
}

# gpu_build TARGET...: configures build/gpu once (CUDA kernels in the tests, benchmarks and
# trainers) and builds the targets; the log goes to $OUT/build.log.
gpu_build() {
  BUILD=$ROOT/build/gpu
  local zlib=()
  if [ ! -e /usr/include/zlib.h ] && [ -e "$ROOT/.device/root/usr/include/zlib.h" ]; then
    # The headers from .device/, the machine's own library (the .deb's libz.so link points nowhere here).
    zlib=(-DZLIB_INCLUDE_DIR="$ROOT/.device/root/usr/include"
          -DZLIB_LIBRARY="$(ls /lib/x86_64-linux-gnu/libz.so.1 /usr/lib/x86_64-linux-gnu/libz.so.1 2>/dev/null | head -n 1)")
  fi
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
    "-DCMAKE_PREFIX_PATH=$TORCH_PREFIX;$ROOT/.device/root/usr;$ROOT/.device/root/usr/lib/x86_64-linux-gnu/cmake" \
    -DANGULAR_EXAMPLES_CUDA=ON -DANGULAR_OPTIMISE_CUDA_KERNELS=ON "${zlib[@]}" \
    >>"$OUT/build.log" 2>&1 &&
    cmake --build "$BUILD" -j "$(nproc)" --target "$@" >>"$OUT/build.log" 2>&1 ||
    { tail -n 40 "$OUT/build.log"; return 1; }
}
