#pragma once
// Per-row parameters of the margins (MarginParams's row_parameter_count): their checks, and
// the gradient of a row factor r_i by which every logit of row i scales (SphereFace's ‖x_i‖).
// With t_ij the target distribution (1 − ε)·w_y·[j = y] + (ε/C)·w_j, whose mass is
// coef_i = (1 − ε)·w_y + (ε/C)·Σw, the loss's derivative to logit z_ij is coef_i·p_ij − t_ij, so
//   ∂loss_i/∂r_i = Σ_j (coef_i·p_ij − t_ij)·z_ij / r_i = (loss_i − coef_i·H_i) / r_i,
// H_i = lse_i − Σ_j p_ij·z_ij the entropy of the row's softmax, which the kernels report.

#include <angular/detail/margin_policy.hpp>
#include <angular/detail/reference.hpp>
#include <angular/detail/row_loss.hpp>

#include <ATen/ATen.h>

namespace angular::detail {

/// coef_i = (1 − ε)·w_{y_i} + (ε/C)·Σ_j w_j for kept rows, 0 for ignored ones ([B]).
inline at::Tensor target_mass(const RowLossArgs& args, int64_t classes) {
  const auto [labels, kept] = indexable_target(args.target, args.ignore_index);
  const at::Tensor w_y = args.class_weight.defined() ? args.class_weight.index_select(0, clamp_labels(labels, classes))
                                                     : at::ones({labels.size(0)}, args.weight_sum.options());
  const double smoothing = args.label_smoothing;
  return ((1 - smoothing) * w_y + args.weight_sum * (smoothing / static_cast<double>(classes))) * kept;
}

/// ∂(Σ_i a_i·loss_i)/∂r_i from the forward's per-row losses and entropies, `factor` a_i ([B]
/// or a scalar) and the row factors r ([B]); 0 for ignored rows (whose a_i may be infinite:
/// a mean over no row).
inline at::Tensor row_factor_gradient(const RowLossArgs& args, int64_t classes, const at::Tensor& row_loss,
                                      const at::Tensor& entropy, const at::Tensor& factor, const at::Tensor& r) {
  const at::Tensor gradient = (row_loss - target_mass(args, classes) * entropy) * factor / r;
  return at::where(args.target != args.ignore_index, gradient, at::zeros_like(gradient));
}

/// Per-row parameters of `margin` as the kernels take them: [B, P] in `dtype`, contiguous;
/// undefined where the margin has none (or they are not known yet).
inline at::Tensor kernel_row_params(const at::Tensor& row_params, MarginKind margin, at::ScalarType dtype) {
  if (row_parameter_count(margin) == 0 || !row_params.defined()) return at::Tensor();
  return row_params.to(dtype).contiguous();
}

}  // namespace angular::detail
