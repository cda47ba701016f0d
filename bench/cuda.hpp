#pragma once
// The CUDA side of the benchmarks: ANGULAR_HAVE_CUDA_BENCH and the headers of events and of
// the caching allocator's statistics, where the build has CUDA (ANGULAR_BENCH_CUDA).

#if __has_include(<ATen/cuda/CUDAContext.h>) && defined(ANGULAR_BENCH_CUDA)
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#define ANGULAR_HAVE_CUDA_BENCH 1
#endif
