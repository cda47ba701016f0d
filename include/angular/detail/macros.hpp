#pragma once
// Function attributes of the kernels.

#if defined(__GNUC__)
/// Inlined into every caller. The CPU kernel's SIMD vectors pass only between such functions.
#define ANGULAR_ALWAYS_INLINE inline __attribute__((always_inline))
#define ANGULAR_LAMBDA_INLINE __attribute__((always_inline))
/// Seen across shared objects even where a consumer builds with -fvisibility=hidden.
#define ANGULAR_VISIBLE __attribute__((visibility("default")))
#define ANGULAR_HIDDEN __attribute__((visibility("hidden")))
#else
#define ANGULAR_ALWAYS_INLINE inline
#define ANGULAR_LAMBDA_INLINE
#define ANGULAR_VISIBLE
#define ANGULAR_HIDDEN
#endif

/// Code shared by the CPU and CUDA kernels (the margin policies): a device function under
/// nvcc, an always-inline one elsewhere.
#if defined(__CUDACC__)
#define ANGULAR_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define ANGULAR_HOST_DEVICE ANGULAR_ALWAYS_INLINE
#endif

/// A CUDA kernel, hidden from other shared objects: two libraries that each compile
/// angular::cuda's kernels keep their own instead of resolving to one another's.
#define ANGULAR_KERNEL __global__ ANGULAR_HIDDEN
