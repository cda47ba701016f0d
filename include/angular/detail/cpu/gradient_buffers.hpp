#pragma once
// The memory of the class vectors' gradients on the CPU, kept between steps. A training step
// frees W's gradient (zero_grad(set_to_none), the default) and the next one asks for a fresh
// [C, D] buffer; LibTorch's CPU allocator gives such a buffer back to the kernel and gets new
// pages, which the kernel zeroes as they are first written: at C = 10⁶, D = 512 that is 2 GB
// per step, about a fifth of the step's time on a 2-core machine. As CUDA's caching allocator
// does, the buffer is kept once its last tensor lets it go and handed to the next gradient of
// the same size. At most kKeptBuffers buffers are kept, and only large ones;
// angular::release_gradient_buffers() gives the free ones back.

#include <angular/detail/cpu/memory.hpp>
#include <angular/detail/macros.hpp>

#include <ATen/ATen.h>

#include <algorithm>
#include <mutex>
#include <vector>

namespace angular::detail::cpu {

class GradientBuffers {
 public:
  static constexpr size_t kMinBytes = size_t{64} << 20;  // smaller ones fault in little
  static constexpr size_t kKeptBuffers = 2;

  /// An uninitialised CPU tensor of `sizes` (contiguous), on a kept buffer of its size where a
  /// free one exists.
  at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
    const size_t bytes = static_cast<size_t>(c10::multiply_integers(sizes)) * options.dtype().itemsize();
    if (bytes < kMinBytes) return at::empty(sizes, options);
    std::lock_guard<std::mutex> lock(mutex_);
    for (const at::Storage& kept : kept_)
      if (kept.nbytes() == bytes && kept.use_count() == 1)  // no tensor holds it any more
        return at::empty({0}, options).set_(kept, 0, sizes);
    at::Tensor fresh = at::empty(sizes, options);
    prefer_huge_pages(fresh.data_ptr(), fresh.nbytes());
    // Room for it: the oldest free buffer goes, else the oldest (its tensors keep it alive).
    if (kept_.size() >= kKeptBuffers) {
      const auto free =
          std::find_if(kept_.begin(), kept_.end(), [](const at::Storage& s) { return s.use_count() == 1; });
      kept_.erase(free != kept_.end() ? free : kept_.begin());
    }
    kept_.push_back(fresh.storage());
    return fresh;
  }

  /// Drops the buffers no tensor holds; returns their bytes.
  size_t release() {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t bytes = 0;
    const auto free = [&](const at::Storage& s) {
      if (s.use_count() != 1) return false;
      bytes += s.nbytes();
      return true;
    };
    kept_.erase(std::remove_if(kept_.begin(), kept_.end(), free), kept_.end());
    return bytes;
  }

  /// Bytes of the kept buffers that no tensor holds.
  size_t free_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t bytes = 0;
    for (const at::Storage& kept : kept_)
      if (kept.use_count() == 1) bytes += kept.nbytes();
    return bytes;
  }

  /// The program's one set (a function-local static in an inline function: one across shared
  /// objects too, with default visibility).
  ANGULAR_VISIBLE static GradientBuffers& instance() {
    static GradientBuffers buffers;
    return buffers;
  }

 private:
  std::mutex mutex_;
  std::vector<at::Storage> kept_;
};

}  // namespace angular::detail::cpu
