#pragma once
// Which kernel a loss over cosines runs on, and the opt-in CUDA kernels.
//
// CPU tensors take the fused CPU kernel. CUDA tensors take the fused CUDA kernel once the
// program links the CMake target angular::cuda, whose source file installs it at start-up;
// without it they take the composite ATen path, and the first such call warns. Inside a
// CompositePathGuard every tensor takes the composite path (for higher-order gradients).

#include <angular/detail/macros.hpp>
#include <angular/detail/row_loss.hpp>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace angular {

/// Where a loss over cosines runs.
enum class KernelPath {
  fused_cpu,   // the fused CPU kernel
  fused_cuda,  // the fused CUDA kernel (the program links angular::cuda)
  composite,   // the composite ATen reference (any other device, or CUDA without angular::cuda)
};

inline const char* to_string(KernelPath path) {
  switch (path) {
    case KernelPath::fused_cpu: return "fused_cpu";
    case KernelPath::fused_cuda: return "fused_cuda";
    case KernelPath::composite: return "composite";
  }
  TORCH_CHECK(false, "angular: unknown KernelPath ", static_cast<int>(path));
}

namespace detail {

/// Set on this thread by CompositePathGuard.
inline bool& composite_path_forced() {
  thread_local bool forced = false;
  return forced;
}

}  // namespace detail

/// While it lives, losses over cosines computed on this thread take the composite ATen path
/// on every device: slower and several [B, C] tensors kept, but differentiable more than once
/// (torch::autograd::grad(..., create_graph = true) through the loss), which the fused
/// kernels are not.
class CompositePathGuard {
 public:
  CompositePathGuard() : previous_(detail::composite_path_forced()) { detail::composite_path_forced() = true; }
  ~CompositePathGuard() { detail::composite_path_forced() = previous_; }
  CompositePathGuard(const CompositePathGuard&) = delete;
  CompositePathGuard& operator=(const CompositePathGuard&) = delete;

 private:
  bool previous_;
};

/// Whether the fused CUDA kernels are installed (see register_cuda_kernels below).
inline bool cuda_kernels_registered() { return detail::cuda_row_kernels().forward != nullptr; }

/// The path that a loss over cosines `cos` (functional::arc_loss, arcface_loss, ...) takes, and a
/// features-level loss over features on the same device.
inline KernelPath kernel_path(const at::Tensor& cos) {
  if (detail::composite_path_forced()) return KernelPath::composite;
  if (cos.device().is_cpu()) return KernelPath::fused_cpu;
  if (cos.device().is_cuda() && cuda_kernels_registered()) return KernelPath::fused_cuda;
  return KernelPath::composite;
}

/// Installs the fused CUDA kernels. Defined in the source file that the CMake target
/// angular::cuda adds to the program, which calls it at start-up; call it yourself where
/// that file's object may be left out by the linker (angular::cuda linked into a static
/// library whose other code the program does not use). Calling it again is harmless.
ANGULAR_VISIBLE void register_cuda_kernels();

}  // namespace angular
