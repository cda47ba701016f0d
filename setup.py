"""Builds angular._C from the repository's operator file (ops/angular_ops.cpp, through
python/csrc/module.cpp) and, where CUDA kernels are built, cuda/angular_cuda.cu. The version is
include/angular/version.hpp's, as the CMake package's.

The CUDA kernels: ANGULAR_CUDA=0 builds without them, =1 insists on them, unset ("auto") builds
them where the installed torch has CUDA, nvcc is found and the architectures are known (a GPU
is visible, or TORCH_CUDA_ARCH_LIST is set), and says why where it does not. Where they are
built without a GPU to read the architectures from and without TORCH_CUDA_ARCH_LIST, they are
built for the CMake package's default list. ANGULAR_BUILD_JOBS sets the compiler jobs."""

import os
import re
import sys

import torch
from setuptools import setup
from torch.utils import cpp_extension

HERE = os.path.dirname(os.path.abspath(__file__))
# The CMake package's architectures where neither a GPU nor TORCH_CUDA_ARCH_LIST names them
# (cmake/angularTorch.cmake).
DEFAULT_CUDA_ARCHITECTURES = "7.5;8.0;8.6;8.9;9.0+PTX"


def version():
    with open(os.path.join(HERE, "include", "angular", "version.hpp")) as f:
        return re.search(r'#define ANGULAR_VERSION "([^"]+)"', f.read()).group(1)


def say(message):
    print(f"angular: {message}", file=sys.stderr)


def build_cuda():
    choice = os.environ.get("ANGULAR_CUDA", "auto")
    if choice not in ("auto", "0", "1"):
        sys.exit(f"angular: ANGULAR_CUDA must be auto, 0 or 1, got {choice!r}")
    if choice == "0":
        return False
    available = torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None
    if not available:
        if choice == "1":
            sys.exit("angular: ANGULAR_CUDA=1, but the installed torch has no CUDA or nvcc was not found (CUDA_HOME)")
        say("building without the CUDA kernels: " + ("this torch has no CUDA" if torch.version.cuda is None
                                                      else "nvcc was not found (set CUDA_HOME)"))
        return False
    architectures_known = "TORCH_CUDA_ARCH_LIST" in os.environ or torch.cuda.is_available()
    if choice == "auto" and not architectures_known:
        say("building without the CUDA kernels: no GPU is visible and TORCH_CUDA_ARCH_LIST is not set "
            "(ANGULAR_CUDA=1 builds them for " + DEFAULT_CUDA_ARCHITECTURES + ")")
        return False
    if not architectures_known:
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHITECTURES
    say(f"building the CUDA kernels for {os.environ.get('TORCH_CUDA_ARCH_LIST', 'the visible GPUs')}")
    return True


def extension():
    # Sources relative to this folder; the operators, headers and kernels come in through the
    # include path, so that the package builds the repository's files as they are.
    sources = ["python/csrc/module.cpp"]
    include_dirs = [os.path.join(HERE, d) for d in ("include", "ops", "cuda")]
    # No OpenMP, as in angular's CMake builds: the row loops run on angular's own thread pool
    # (detail/cpu/parallel.hpp); built with -fopenmp they took 1.3x as long (bench/RESULTS.md).
    cxx = ["-O3", "-g0"]
    if build_cuda():
        sources.append("python/csrc/cuda.cu")
        return cpp_extension.CUDAExtension("angular._C", sources, include_dirs=include_dirs,
                                           extra_compile_args={"cxx": cxx, "nvcc": ["-O3"]})
    return cpp_extension.CppExtension("angular._C", sources, include_dirs=include_dirs,
                                      extra_compile_args={"cxx": cxx})


if "ANGULAR_BUILD_JOBS" in os.environ:
    os.environ["MAX_JOBS"] = os.environ["ANGULAR_BUILD_JOBS"]

setup(version=version(), ext_modules=[extension()], cmdclass={"build_ext": cpp_extension.BuildExtension},
      # Beside the CMake build folders (build/dev, ...), not among them.
      options={"build": {"build_base": "build/python"}})
