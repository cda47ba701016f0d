"""Builds angular._C: the repository's operator file (ops/angular_ops.cpp) and, where the
installed torch is CUDA-enabled and nvcc is found, the fused CUDA kernels (cuda/angular_cuda.cu).
ANGULAR_CUDA=0 builds without them, =1 insists on them; ANGULAR_BUILD_JOBS sets the
compiler jobs."""

import os
import sys

import torch
from setuptools import setup
from torch.utils import cpp_extension

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)  # the repository


def build_cuda():
    choice = os.environ.get("ANGULAR_CUDA", "auto")
    if choice not in ("auto", "0", "1"):
        sys.exit(f"angular: ANGULAR_CUDA must be auto, 0 or 1, got {choice!r}")
    available = torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None
    if choice == "1" and not available:
        sys.exit("angular: ANGULAR_CUDA=1, but the installed torch has no CUDA or nvcc was not found (CUDA_HOME)")
    return choice != "0" and available


def extension():
    # Sources relative to this folder, as setuptools wants them; the repository's files come
    # in through the include path.
    sources = ["csrc/module.cpp"]
    include_dirs = [os.path.join(ROOT, d) for d in ("include", "ops", "cuda")]
    # No OpenMP, as in angular's CMake builds: the row loops run on angular's own thread pool
    # (detail/cpu/parallel.hpp). Built with -fopenmp they took 1.3x as long here (bench/RESULTS.md).
    cxx = ["-O3", "-g0"]
    if build_cuda():
        sources.append("csrc/cuda.cu")
        return cpp_extension.CUDAExtension(
            "angular._C", sources, include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3"]})
    return cpp_extension.CppExtension("angular._C", sources, include_dirs=include_dirs,
                                      extra_compile_args={"cxx": cxx})


if "ANGULAR_BUILD_JOBS" in os.environ:
    os.environ["MAX_JOBS"] = os.environ["ANGULAR_BUILD_JOBS"]

setup(ext_modules=[extension()], cmdclass={"build_ext": cpp_extension.BuildExtension})
