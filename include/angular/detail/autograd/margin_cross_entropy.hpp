#pragma once
// The fused margin cross-entropy of cosines as a C++ autograd function over its one body,
// fused_margin_cross_entropy (detail/fused_margin_cross_entropy.hpp). Where the device's
// kernels write the gradient during the forward (the CPU's) the forward keeps only it: one
// [B, C] tensor, against the composite's several. Elsewhere (CUDA) the forward keeps its inputs
// and the backward computes the gradient for the upstream it is given, folded into the kernel.

#include <angular/detail/autograd/upstream.hpp>
#include <angular/detail/fused_margin_cross_entropy.hpp>

#include <torch/csrc/autograd/custom_function.h>

#include <type_traits>

namespace angular::detail {

/// Keeps a problem's margin and cross-entropy settings by name, for a backward that computes
/// again (its tensors go through save_for_backward).
inline void save_settings(torch::autograd::AutogradContext* ctx, MarginKind margin, const MarginParams& params,
                          const CrossEntropySpec& spec) {
  ctx->saved_data["margin_kind"] = static_cast<int64_t>(margin);
  for_each_param(params, [&](const char* name, const auto& value) { ctx->saved_data[name] = value; });
  ctx->saved_data["reduction"] = spec.reduction;
  ctx->saved_data["ignore_index"] = spec.ignore_index;
  ctx->saved_data["label_smoothing"] = spec.label_smoothing;
}

/// Restores what save_settings kept; the spec's class weights are the caller's to restore.
inline void restore_settings(torch::autograd::AutogradContext* ctx, MarginKind& margin, MarginParams& params,
                             CrossEntropySpec& spec) {
  margin = static_cast<MarginKind>(ctx->saved_data["margin_kind"].toInt());
  for_each_param(params, [&](const char* name, auto& value) {
    const c10::IValue& saved = ctx->saved_data[name];
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, bool>) value = saved.toBool();
    else if constexpr (std::is_integral_v<T>) value = saved.toInt();
    else value = saved.toDouble();
  });
  spec.reduction = ctx->saved_data["reduction"].toInt();
  spec.ignore_index = ctx->saved_data["ignore_index"].toInt();
  spec.label_smoothing = ctx->saved_data["label_smoothing"].toDouble();
}

/// An undefined tensor as autograd functions take one: empty.
inline at::Tensor or_empty(const at::Tensor& t, const at::Tensor& like) {
  return t.defined() ? t : at::empty({0}, like.options());
}
inline at::Tensor defined_or_none(const at::Tensor& t) { return t.defined() && t.numel() > 0 ? t : at::Tensor(); }

struct FusedMarginCrossEntropy : torch::autograd::Function<FusedMarginCrossEntropy> {
  // cos and row_params are p's, given again for autograd to track (row_params empty where
  // undefined); the class weights travel in p.spec and get no gradient.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& cos, const at::Tensor& row_params,
                            CosineProblem p) {
    const std::array<bool, 2> wanted{cos.requires_grad(), row_params.requires_grad()};
    const bool in_forward = gradient_in_forward(kernel_path(cos));
    ctx->saved_data["in_forward"] = in_forward;
    ctx->saved_data["per_row"] = p.spec.reduction == at::Reduction::None;
    if (in_forward) {
      LossAndGradients out = fused_margin_cross_entropy(p, wanted);
      ctx->save_for_backward({out.grad_a, out.grad_b});
      return out.loss;
    }
    ctx->save_for_backward({cos, row_params, p.target, p.spec.class_weight});
    save_settings(ctx, p.margin, p.params, p.spec);
    return fused_margin_cross_entropy(p, {false, false}).loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    check_differentiated_once();
    const auto saved = ctx->get_saved_variables();
    if (ctx->saved_data["in_forward"].toBool()) {
      const bool per_row = ctx->saved_data["per_row"].toBool();
      return {times_upstream(saved[0], grads[0], per_row), times_upstream(saved[1], grads[0], per_row), {}};
    }
    CosineProblem p;
    p.cos = saved[0];
    p.row_params = defined_or_none(saved[1]);
    p.target = saved[2];
    p.spec.class_weight = saved[3];
    restore_settings(ctx, p.margin, p.params, p.spec);
    LossAndGradients out =
        fused_margin_cross_entropy(p, {ctx->needs_input_grad(0), ctx->needs_input_grad(1)}, grads[0]);
    return {out.grad_a, out.grad_b, {}};
  }
};

}  // namespace angular::detail
