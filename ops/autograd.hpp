#pragma once
// The autograd of angular's loss operators, in one place above their pure kernels
// (kernels.hpp), as torchvision keeps its ops': an Autograd kernel per loss operator that
// records one function over the `_forward` and `_backward` operators, with the policy of the
// C++ functions (detail/autograd/): where the device's kernels write the gradient during the
// forward (the CPU's), and the loss is reduced, the forward keeps the gradients for an upstream
// of 1 and the backward scales them; otherwise the backward computes them for its upstream. A
// second derivative is refused. On a device without fused kernels the composite reference runs
// instead, which autograd differentiates itself. And the Autocast kernels, which run the
// operators in float32 as torch.autocast runs cross_entropy.

#include "kernels.hpp"

#include <angular/detail/autograd/upstream.hpp>

#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/custom_function.h>

namespace angular::ops {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// The op's arguments besides the differentiable tensors, kept for a backward.
struct SavedCall {
  static void save(AutogradContext* ctx, ANGULAR_CALL_PARAMS, int64_t chunk_rows) {
    ctx->saved_data["target"] = target;
    ctx->saved_data["margin"] = std::string(margin);
    ctx->saved_data["settings"] = settings.clone();  // a module's settings may change before the backward
    ctx->saved_data["statistics"] = statistics.vec();
    ctx->saved_data["class_weight"] = class_weight;
    ctx->saved_data["reduction"] = reduction;
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["label_smoothing"] = label_smoothing;
    ctx->saved_data["chunk_rows"] = chunk_rows;
  }
  explicit SavedCall(AutogradContext* ctx)
      : target(ctx->saved_data["target"].toTensor()),
        margin(ctx->saved_data["margin"].toStringRef()),
        settings(ctx->saved_data["settings"].toTensor()),
        statistics(ctx->saved_data["statistics"].toTensorVector()),
        class_weight(ctx->saved_data["class_weight"].toOptional<at::Tensor>()),
        reduction(ctx->saved_data["reduction"].toInt()),
        ignore_index(ctx->saved_data["ignore_index"].toInt()),
        label_smoothing(ctx->saved_data["label_smoothing"].toDouble()),
        chunk_rows(ctx->saved_data["chunk_rows"].toInt()) {}
  at::Tensor target;
  std::string margin;
  at::Tensor settings;
  std::vector<at::Tensor> statistics;
  OptionalTensor class_weight;
  int64_t reduction, ignore_index;
  double label_smoothing;
  int64_t chunk_rows;
};
#define ANGULAR_SAVED_ARGS(s)                                                                                    \
  s.target, s.margin, s.settings, s.statistics, s.class_weight, s.reduction, s.ignore_index, s.label_smoothing

/// The gradients an autograd function below returns: one per argument of its forward, each
/// tensor of a list counting as one: two tensors, has_norms or chunk_rows, the seven arguments
/// of ANGULAR_CALL_PARAMS but the statistics, and the statistics.
inline variable_list gradient_slots(size_t statistics) { return variable_list(10 + statistics); }

// norms: an empty tensor where there are none (autograd functions take no undefined inputs).
// Each row's loss reads only its own row of cos and norms, so the forward's gradients serve
// per-sample losses too, each row times its upstream.
struct CosineAutograd : torch::autograd::Function<CosineAutograd> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& cos, const at::Tensor& norms, bool has_norms,
                            ANGULAR_CALL_PARAMS) {
    const OptionalTensor n = has_norms ? OptionalTensor(norms) : std::nullopt;
    at::AutoDispatchBelowADInplaceOrView below;
    const std::array<bool, 2> mask{cos.requires_grad(), has_norms && norms.requires_grad()};
    const bool in_forward = detail::gradient_in_forward(kernel_path(cos));
    ctx->saved_data["in_forward"] = in_forward;
    ctx->saved_data["per_row"] = reduction == at::Reduction::None;
    ctx->saved_data["has_norms"] = has_norms;
    ctx->saved_data["statistic_count"] = static_cast<int64_t>(statistics.size());
    if (in_forward) {
      const auto [loss, grad_cos, grad_norms] =
          op<decltype(cosine_forward)>("angular::margin_cross_entropy_forward").call(cos, n, ANGULAR_CALL_ARGS, mask);
      ctx->save_for_backward({grad_cos, grad_norms});
      return loss;
    }
    ctx->save_for_backward({cos, norms});
    SavedCall::save(ctx, ANGULAR_CALL_ARGS, 0);
    return op<decltype(cosine_loss_op)>("angular::margin_cross_entropy").call(cos, n, ANGULAR_CALL_ARGS);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    detail::check_differentiated_once();
    const auto saved = ctx->get_saved_variables();
    const std::array<bool, 2> mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    variable_list out = gradient_slots(ctx->saved_data["statistic_count"].toInt());
    if (ctx->saved_data["in_forward"].toBool()) {
      const bool per_row = ctx->saved_data["per_row"].toBool();
      if (mask[0]) out[0] = detail::times_upstream(saved[0], grads[0], per_row);
      if (mask[1]) out[1] = detail::times_upstream(saved[1], grads[0], per_row);
      return out;
    }
    const SavedCall s(ctx);
    const OptionalTensor n = ctx->saved_data["has_norms"].toBool() ? OptionalTensor(saved[1]) : std::nullopt;
    const auto [grad_cos, grad_norms] = op<decltype(cosine_backward)>("angular::margin_cross_entropy_backward")
                                            .call(grads[0], saved[0], n, ANGULAR_SAVED_ARGS(s), mask);
    if (mask[0]) out[0] = grad_cos;
    if (mask[1]) out[1] = grad_norms;
    return out;
  }
};

// With per-sample losses (kNone) every row shares ∂W, which only the backward's upstream
// weighs: the backward runs the pass again.
struct FeatureAutograd : torch::autograd::Function<FeatureAutograd> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& features, const at::Tensor& weight,
                            ANGULAR_CALL_PARAMS, int64_t chunk_rows) {
    at::AutoDispatchBelowADInplaceOrView below;
    const bool in_forward = reduction != at::Reduction::None;
    ctx->saved_data["in_forward"] = in_forward;
    ctx->saved_data["statistic_count"] = static_cast<int64_t>(statistics.size());
    if (in_forward) {
      const std::array<bool, 2> mask{features.requires_grad(), weight.requires_grad()};
      const auto [loss, grad_features, grad_weight] =
          op<decltype(feature_forward)>("angular::linear_margin_cross_entropy_forward")
              .call(features, weight, ANGULAR_CALL_ARGS, chunk_rows, mask);
      ctx->save_for_backward({grad_features, grad_weight});
      return loss;
    }
    ctx->save_for_backward({features, weight});
    SavedCall::save(ctx, ANGULAR_CALL_ARGS, chunk_rows);
    return op<decltype(feature_loss_op)>("angular::linear_margin_cross_entropy")
        .call(features, weight, ANGULAR_CALL_ARGS, chunk_rows);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    detail::check_differentiated_once();
    const auto saved = ctx->get_saved_variables();
    const std::array<bool, 2> mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    variable_list out = gradient_slots(ctx->saved_data["statistic_count"].toInt());
    if (ctx->saved_data["in_forward"].toBool()) {
      if (mask[0]) out[0] = detail::times_upstream(saved[0], grads[0]);
      if (mask[1]) out[1] = detail::times_upstream(saved[1], grads[0]);
      return out;
    }
    const SavedCall s(ctx);
    const auto [grad_features, grad_weight] =
        op<decltype(feature_backward)>("angular::linear_margin_cross_entropy_backward")
            .call(grads[0], saved[0], saved[1], ANGULAR_SAVED_ARGS(s), s.chunk_rows, mask);
    if (mask[0]) out[0] = grad_features;
    if (mask[1]) out[1] = grad_weight;
    return out;
  }
};

inline at::Tensor cosine_loss_autograd(const at::Tensor& cos, const OptionalTensor& norms, ANGULAR_CALL_PARAMS) {
  const at::Tensor n = norms.has_value() ? *norms : at::empty({0}, cos.options());
  if (!at::GradMode::is_enabled() || !(cos.requires_grad() || n.requires_grad())) {
    // No graph to record (torch.no_grad, or no input asks): the loss alone, no gradient work.
    at::AutoDispatchBelowADInplaceOrView below;
    return op<decltype(cosine_loss_op)>("angular::margin_cross_entropy").call(cos, norms, ANGULAR_CALL_ARGS);
  }
  if (kernel_path(cos) == KernelPath::composite)
    return detail::composite_margin_cross_entropy(
        cosine_problem(make_call(ANGULAR_CALL_ARGS, 0), cos, norms.value_or(at::Tensor())));
  return CosineAutograd::apply(cos, n, norms.has_value(), ANGULAR_CALL_ARGS);
}

inline at::Tensor feature_loss_autograd(const at::Tensor& features, const at::Tensor& weight, ANGULAR_CALL_PARAMS,
                                        int64_t chunk_rows) {
  if (!at::GradMode::is_enabled() || !(features.requires_grad() || weight.requires_grad())) {
    at::AutoDispatchBelowADInplaceOrView below;
    return op<decltype(feature_loss_op)>("angular::linear_margin_cross_entropy")
        .call(features, weight, ANGULAR_CALL_ARGS, chunk_rows);
  }
  if (kernel_path(features) == KernelPath::composite)
    return detail::composite_linear_margin_cross_entropy(
        linear_problem(make_call(ANGULAR_CALL_ARGS, chunk_rows), features, weight));
  return FeatureAutograd::apply(features, weight, ANGULAR_CALL_ARGS, chunk_rows);
}

/// The Autograd kernel of an operator without a differentiable output (the statistics' step):
/// the backend kernel, recording nothing.
inline std::vector<at::Tensor> margin_statistics_step_autograd(const at::Tensor& features, const at::Tensor& weight,
                                                               ANGULAR_CALL_PARAMS, int64_t chunk_rows,
                                                               const at::Tensor& momentum) {
  at::AutoDispatchBelowADInplaceOrView below;
  at::NoGradGuard no_grad;
  return op<decltype(margin_statistics_step)>("angular::margin_statistics_step")
      .call(features, weight, ANGULAR_CALL_ARGS, chunk_rows, momentum);
}

// Autocast: float32, as torch.autocast runs cross_entropy.

template <c10::DeviceType device>
inline at::Tensor cosine_loss_autocast(const at::Tensor& cos, const OptionalTensor& norms, ANGULAR_CALL_PARAMS) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  return op<decltype(cosine_loss_op)>("angular::margin_cross_entropy")
      .call(at::autocast::cached_cast(at::kFloat, cos, device), at::autocast::cached_cast(at::kFloat, norms, device),
            ANGULAR_CALL_ARGS);
}

template <c10::DeviceType device>
inline at::Tensor feature_loss_autocast(const at::Tensor& features, const at::Tensor& weight, ANGULAR_CALL_PARAMS,
                                        int64_t chunk_rows) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  return op<decltype(feature_loss_op)>("angular::linear_margin_cross_entropy")
      .call(at::autocast::cached_cast(at::kFloat, features, device),
            at::autocast::cached_cast(at::kFloat, weight, device), ANGULAR_CALL_ARGS, chunk_rows);
}

}  // namespace angular::ops
