#pragma once
// The contract between the fused autograd function and a device's kernels: per-row losses
// and logsumexps in the forward, grad_cos from per-row upstream gradients in the backward.
// Reductions (sum, mean over Σ w_y) stay in ATen on [B] tensors.

#include <angular/detail/macros.hpp>
#include <angular/detail/margin_policy.hpp>

#include <ATen/ATen.h>

namespace angular::detail {

struct RowLossArgs {
  at::Tensor cos;           // [B, C·K] contiguous; float, double, half or bfloat16
  at::Tensor target;        // [B] int64 contiguous, labels validated
  at::Tensor class_weight;  // [C] contiguous in the compute dtype, or undefined
  at::Tensor column_scale;  // [C·K] contiguous in the compute dtype, or undefined (kernels with
                            // RowKernels::scales_columns only)
  at::Tensor row_scale;     // [B] contiguous in the compute dtype, or undefined (kernels that
                            // write the gradient in the forward only)
  at::Tensor weight_sum;    // 0-d, compute dtype, on cos's device: Σ_j w_j (C without weights)
  at::Tensor row_params;    // [B, P] contiguous in the compute dtype, P = the margin's
                            // row_parameter_count, or undefined where P = 0
  MarginKind margin = MarginKind::arc;
  MarginParams params;      // params.sub_centers = K: cos is [B, C·K], class j's cosine the
                            // max of columns jK … jK + K − 1, its gradient on that argmax only
  double label_smoothing = 0.0;
  int64_t ignore_index = -100;
};

/// What a forward writes: lse [B] and row_loss [B] (compute dtype; ignored rows get 0);
/// where defined, entropy [B] (compute dtype), each row's softmax entropy lse − Σ_j p_j z_j,
/// for margins whose logits scale with a row parameter; and grad_cos (below).
struct RowOutputs {
  at::Tensor lse, row_loss, entropy, grad_cos;
};

/// Writes `out`. Kernels that fuse the gradient into the forward (`RowKernels::backward ==
/// nullptr`) also write, when out.grad_cos is defined, the gradient of Σ_i scale·row_loss_i
/// into it (cos's dtype). With row_scale s given, row i's gradient is that of
/// scale·s_i·row_loss_i. With RowKernels::scales_columns, column_scale q may be given: the
/// cosines are then cos_ij·q_j, the gradient written is g_ij·q_j, and grad_cos may be cos itself.
using RowForward = void (*)(const RowLossArgs&, RowOutputs& out, double scale);
/// Writes grad_cos [B, C] (cos's dtype) from lse and row_grad [B] (compute dtype, the
/// reduction folded in), recomputing the logits.
using RowBackward = void (*)(const RowLossArgs&, const at::Tensor& lse, const at::Tensor& row_grad,
                             at::Tensor& grad_cos);

struct RowKernels {
  RowForward forward = nullptr;
  RowBackward backward = nullptr;  // nullptr: the forward writes the gradient
  bool scales_columns = false;      // takes column_scale, and writes the gradient over cos
};

/// The CUDA kernels, installed by angular::register_cuda_kernels() (the angular::cuda target's
/// source file). A function-local static in an inline function: one table per program, and
/// with default visibility one across shared objects too.
ANGULAR_VISIBLE inline RowKernels& cuda_row_kernels() {
  static RowKernels kernels;
  return kernels;
}

}  // namespace angular::detail
