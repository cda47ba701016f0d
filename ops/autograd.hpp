#pragma once
// The Autograd kernels of angular's operators (angular_ops.cpp): the forward operator's
// gradients are kept and scaled by the upstream gradient, as the C++ functional layer keeps
// them; per-sample losses over features run the backward operator. And the Autocast
// kernels, which run the operators in float32 as torch.autocast runs cross_entropy.

#include "kernels.hpp"

#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>

namespace angular::ops {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// The op's arguments besides the differentiable tensors, kept for a backward.
struct SavedCall {
  static void save(AutogradContext* ctx, ANGULAR_CALL_PARAMS, int64_t chunk_rows) {
    ctx->saved_data["target"] = target;
    ctx->saved_data["margin"] = std::string(margin);
    ctx->saved_data["names"] = names;
    ctx->saved_data["values"] = values.vec();
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
        names(c10::impl::toTypedList<std::string>(ctx->saved_data["names"].toList())),
        values(ctx->saved_data["values"].toDoubleVector()),
        statistics(ctx->saved_data["statistics"].toTensorVector()),
        class_weight(ctx->saved_data["class_weight"].toOptional<at::Tensor>()),
        reduction(ctx->saved_data["reduction"].toInt()),
        ignore_index(ctx->saved_data["ignore_index"].toInt()),
        label_smoothing(ctx->saved_data["label_smoothing"].toDouble()),
        chunk_rows(ctx->saved_data["chunk_rows"].toInt()) {}
  at::Tensor target;
  std::string margin;
  Names names;
  std::vector<double> values;
  std::vector<at::Tensor> statistics;
  OptionalTensor class_weight;
  int64_t reduction, ignore_index;
  double label_smoothing;
  int64_t chunk_rows;
};
#define ANGULAR_SAVED_ARGS(s) \
  s.target, s.margin, s.names, s.values, s.statistics, s.class_weight, s.reduction, s.ignore_index, s.label_smoothing

/// A gradient written in the forward for an upstream 1, times the upstream. A concrete CPU
/// upstream of 1 (loss.backward()) costs nothing; a traced one (torch.compile) is multiplied.
inline at::Tensor times_upstream(const at::Tensor& grad, const at::Tensor& upstream) {
  const bool traced =
      upstream.key_set().has_any(c10::DispatchKeySet({c10::DispatchKey::Python, c10::DispatchKey::Functionalize}));
  if (!traced && upstream.device().is_cpu() && upstream.item<double>() == 1.0) return grad;
  return grad * upstream.to(grad.scalar_type());
}

inline at::Tensor defined_if(bool wanted, const at::Tensor& t) { return wanted ? t : at::Tensor(); }

/// The gradients an autograd function below returns: one per argument of its forward, each
/// tensor of a list counting as one: two tensors, has_norms or chunk_rows, the eight arguments
/// of ANGULAR_CALL_PARAMS but the statistics, and the statistics.
inline variable_list gradient_slots(size_t statistics) { return variable_list(11 + statistics); }

template <class Schema>
c10::TypedOperatorHandle<Schema> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Schema>();
}

// norms: an empty tensor where there are none (autograd functions take no undefined inputs).
// Each row's loss reads only its own row of cos and norms, so the forward's gradients serve
// per-sample losses too, each row times its upstream: no second pass.
struct CosineAutograd : torch::autograd::Function<CosineAutograd> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& cos, const at::Tensor& norms, bool has_norms,
                            ANGULAR_CALL_PARAMS) {
    const OptionalTensor n = has_norms ? OptionalTensor(norms) : std::nullopt;
    at::AutoDispatchBelowADInplaceOrView below;
    const std::array<bool, 2> mask{cos.requires_grad(), has_norms && norms.requires_grad()};
    const auto [loss, grad_cos, grad_norms] =
        op<decltype(cosine_forward)>("angular::margin_cross_entropy_forward").call(cos, n, ANGULAR_CALL_ARGS, mask);
    ctx->save_for_backward({grad_cos, grad_norms});
    ctx->saved_data["per_row"] = reduction == at::Reduction::None;
    ctx->saved_data["statistics"] = static_cast<int64_t>(statistics.size());
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const bool per_row = ctx->saved_data["per_row"].toBool();
    const auto scaled = [&](const at::Tensor& grad) {
      return per_row ? detail::times_row_upstream(grad, grads[0], true) : times_upstream(grad, grads[0]);
    };
    variable_list out = gradient_slots(ctx->saved_data["statistics"].toInt());
    if (ctx->needs_input_grad(0)) out[0] = scaled(saved[0]);
    if (ctx->needs_input_grad(1)) out[1] = scaled(saved[1]);
    return out;
  }
};

struct FeatureAutograd : torch::autograd::Function<FeatureAutograd> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& features, const at::Tensor& weight,
                            ANGULAR_CALL_PARAMS, int64_t chunk_rows) {
    at::AutoDispatchBelowADInplaceOrView below;
    const std::array<bool, 2> mask{features.requires_grad(), weight.requires_grad()};
    const auto [loss, grad_features, grad_weight] =
        op<decltype(feature_forward)>("angular::linear_margin_cross_entropy_forward")
            .call(features, weight, ANGULAR_CALL_ARGS, chunk_rows, mask);
    if (reduction == at::Reduction::None)
      ctx->save_for_backward({features, weight});
    else
      ctx->save_for_backward({grad_features, grad_weight});
    SavedCall::save(ctx, ANGULAR_CALL_ARGS, chunk_rows);
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const SavedCall s(ctx);
    const std::array<bool, 2> mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    variable_list out = gradient_slots(s.statistics.size());
    if (s.reduction == at::Reduction::None) {
      const auto [grad_features, grad_weight] =
          op<decltype(feature_backward)>("angular::linear_margin_cross_entropy_backward")
              .call(grads[0], saved[0], saved[1], ANGULAR_SAVED_ARGS(s), s.chunk_rows, mask);
      out[0] = defined_if(mask[0], grad_features);
      out[1] = defined_if(mask[1], grad_weight);
    } else {
      if (mask[0]) out[0] = times_upstream(saved[0], grads[0]);
      if (mask[1]) out[1] = times_upstream(saved[1], grads[0]);
    }
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
  return CosineAutograd::apply(cos, n, norms.has_value(), ANGULAR_CALL_ARGS);
}

inline at::Tensor feature_loss_autograd(const at::Tensor& features, const at::Tensor& weight, ANGULAR_CALL_PARAMS,
                                        int64_t chunk_rows) {
  if (!at::GradMode::is_enabled() || !(features.requires_grad() || weight.requires_grad())) {
    at::AutoDispatchBelowADInplaceOrView below;
    return op<decltype(feature_loss_op)>("angular::linear_margin_cross_entropy")
        .call(features, weight, ANGULAR_CALL_ARGS, chunk_rows);
  }
  return FeatureAutograd::apply(features, weight, ANGULAR_CALL_ARGS, chunk_rows);
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
