#pragma once
// The features-level fused margin cross-entropy as a C++ autograd function over its one body,
// fused_linear_margin_cross_entropy (detail/fused_linear_margin_cross_entropy.hpp). With a
// reduced loss its forward writes both gradients for an upstream of 1 and keeps only them (no
// [B, C] tensor lives past a chunk); with per-sample losses (kNone) the backward, which alone
// knows each row's upstream gradient, runs the pass again.

#include <angular/detail/autograd/margin_cross_entropy.hpp>
#include <angular/detail/fused_linear_margin_cross_entropy.hpp>

namespace angular::detail {

struct FusedLinearMarginCrossEntropy : torch::autograd::Function<FusedLinearMarginCrossEntropy> {
  // features and weight are p's, given again for autograd to track.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& features,
                            const at::Tensor& weight, LinearProblem p) {
    const bool in_forward = p.spec.reduction != at::Reduction::None;
    ctx->saved_data["in_forward"] = in_forward;
    if (in_forward) {
      LossAndGradients out = fused_linear_margin_cross_entropy(p, {features.requires_grad(), weight.requires_grad()});
      ctx->save_for_backward({out.grad_a, out.grad_b});
      return out.loss;
    }
    ctx->save_for_backward({features, weight, p.target, p.spec.class_weight, p.row_params});
    save_settings(ctx, p.margin, p.params, p.spec);
    ctx->saved_data["normalize"] = p.normalize;
    ctx->saved_data["chunk_rows"] = p.chunk_rows;
    ctx->saved_data["chunk_classes"] = p.chunk_classes;
    return fused_linear_margin_cross_entropy(p, {false, false}).loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    check_differentiated_once();
    const auto saved = ctx->get_saved_variables();
    if (ctx->saved_data["in_forward"].toBool())
      return {times_upstream(saved[0], grads[0]), times_upstream(saved[1], grads[0]), {}};
    LinearProblem p;
    p.features = saved[0];
    p.weight = saved[1];
    p.target = saved[2];
    p.spec.class_weight = saved[3];
    p.row_params = saved[4];
    restore_settings(ctx, p.margin, p.params, p.spec);
    p.normalize = ctx->saved_data["normalize"].toBool();
    p.chunk_rows = ctx->saved_data["chunk_rows"].toInt();
    p.chunk_classes = ctx->saved_data["chunk_classes"].toInt();
    LossAndGradients out =
        fused_linear_margin_cross_entropy(p, {ctx->needs_input_grad(0), ctx->needs_input_grad(1)}, grads[0]);
    return {out.grad_a, out.grad_b, {}};
  }
};

}  // namespace angular::detail
