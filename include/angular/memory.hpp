#pragma once
// The CPU memory that angular keeps between training steps: the buffers of the class vectors'
// gradients (at C = 10⁶, D = 512, 2 GB each), kept once no tensor holds them and handed to the
// next step's gradient of the same size, so that its pages are not faulted in and zeroed again
// (as CUDA's caching allocator keeps its blocks). At most two, and only buffers of 64 MiB or more.

#include <angular/detail/cpu/gradient_buffers.hpp>

#include <cstddef>

namespace angular {

/// Gives the kept gradient buffers that no tensor holds back to the system (as
/// torch.cuda.empty_cache() does for CUDA's); returns their bytes.
inline size_t release_gradient_buffers() { return detail::cpu::GradientBuffers::instance().release(); }

/// Bytes kept in gradient buffers that no tensor holds.
inline size_t free_gradient_buffer_bytes() { return detail::cpu::GradientBuffers::instance().free_bytes(); }

}  // namespace angular
