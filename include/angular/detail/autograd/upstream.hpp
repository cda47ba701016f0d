#pragma once
// What every autograd function of angular's fused losses does with the upstream gradient (the
// C++ functions in this folder and the operators' Autograd kernels in ops/): scale a gradient
// written for an upstream of 1, and refuse a graph of the gradient.

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/DispatchKeySet.h>
#include <c10/util/Exception.h>

namespace angular::detail {

/// Whether a tensor is being traced (torch.compile's fake and functional tensors): its values
/// cannot be read.
inline bool is_traced(const at::Tensor& t) {
  return t.key_set().has_any(c10::DispatchKeySet({c10::DispatchKey::Python, c10::DispatchKey::Functionalize}));
}

/// A gradient written for an upstream of 1 on every loss element, times the upstream gradient:
/// a scalar, or with `per_row` one per row of `grad` ([B] or [B, ...]). A concrete CPU scalar
/// upstream of 1 (loss.backward()) costs nothing; a device's is not read (that would wait for it).
inline at::Tensor times_upstream(const at::Tensor& grad, const at::Tensor& upstream, bool per_row = false) {
  if (!grad.defined()) return grad;
  if (!per_row) {
    if (!is_traced(upstream) && upstream.device().is_cpu() && upstream.item<double>() == 1.0) return grad;
    return grad * upstream.to(grad.scalar_type());
  }
  at::Tensor u = upstream.to(grad.scalar_type());
  for (int64_t d = 1; d < grad.dim(); ++d) u = u.unsqueeze(-1);
  return grad * u;
}

/// The backward's refusal of a graph of the gradient (create_graph = true): the fused kernels
/// are differentiable once, and a gradient without a graph would make a gradient penalty
/// silently zero. Autograd runs a backward in grad mode only when asked for that graph.
inline void check_differentiated_once() {
  TORCH_CHECK(!at::GradMode::is_enabled(),
              "angular: the fused margin losses are differentiable once, and their backward was asked for a "
              "graph of the gradient (create_graph=True, a second derivative). Compute the loss on the "
              "composite ATen path for higher-order gradients: inside an angular::CompositePathGuard in "
              "C++, `with angular.functional.composite_path():` in Python.");
}

}  // namespace angular::detail
