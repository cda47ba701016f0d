#pragma once
// The composite operators (angular_ops.cpp registers them as CompositeImplicitAutograd): ATen
// and angular's loss operators underneath, which autograd and torch.compile see through; and
// the check of a loss's settings, which the Python modules run when a setting changes.

#include "kernels.hpp"

#include <angular/detail/autograd/upstream.hpp>

namespace angular::ops {

inline at::Tensor cosine_matrix_op(const at::Tensor& features, const at::Tensor& weight) {
  return functional::cosine_matrix(features, weight);
}

/// The prediction logits of a margin; its settings as numbers (float[]), which torch.compile
/// specialises on: a graph that calls it is compiled again when they change.
inline at::Tensor margin_logits_op(const at::Tensor& features, const at::Tensor& weight, c10::string_view margin,
                                   c10::ArrayRef<double> settings) {
  MarginCall call;
  call.margin = std::string(margin);
  call.settings = settings.vec();
  return with_margin_named(call.margin, [&](auto options) {
    return detail::prediction_logits(options_of<decltype(options)>(call), features, weight);
  });
}

// The labels are the cross-entropy's to check (center_loss computes it first): a check here
// would read them, which torch.compile cannot trace.
inline at::Tensor center_term_op(const at::Tensor& features, const at::Tensor& centers, const at::Tensor& target,
                                 int64_t reduction, int64_t ignore_index) {
  detail::check_features(features, centers, "centers");
  reduction_of(reduction);
  const auto dtype = detail::compute_dtype(features);
  return detail::center_term(features.to(dtype), centers.to(dtype), target, reduction, ignore_index);
}

/// The center loss, as functional::center_loss: the modified softmax's fused operator plus λ
/// times the center term; settings = [λ]. λ is checked where it can be read (not while
/// torch.compile traces; the modules check it when it is set).
inline at::Tensor center_loss_op(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& centers,
                                 const at::Tensor& target, const at::Tensor& settings,
                                 const std::optional<at::Tensor>& class_weight, int64_t reduction,
                                 int64_t ignore_index, double label_smoothing, int64_t chunk_rows) {
  detail::check_features(features, centers, "centers");
  TORCH_CHECK(centers.size(0) == weight.size(0), "angular: centers must be [", weight.size(0), ", ", weight.size(1),
              "] like weight, got shape ", centers.sizes());
  TORCH_CHECK(settings.dim() == 1 && settings.size(0) == 1, "angular: the center loss has 1 setting (lambda), got ",
              settings.sizes());
  if (!detail::is_traced(settings)) detail::check_center_lambda(setting_values(settings)[0]);
  const at::Tensor ce = op<decltype(feature_loss_op)>("angular::linear_margin_cross_entropy")
                             .call(features, weight, target, "soft", settings.new_empty({0}), {}, class_weight,
                                   reduction, ignore_index, label_smoothing, chunk_rows);
  const at::Tensor term = center_term_op(features, centers, target, reduction, ignore_index);
  return ce + settings.select(0, 0).to(term.scalar_type()) * term;
}

/// Wen et al.'s alpha rule in place, alpha a tensor of one number (checked where it can be
/// read), so that torch.compile does not specialise on it.
inline void update_centers_op(const at::Tensor& centers, const at::Tensor& features, const at::Tensor& target,
                              const at::Tensor& alpha, int64_t ignore_index) {
  detail::check_features(features, centers, "centers");
  TORCH_CHECK(alpha.numel() == 1, "angular: alpha must be one number, got shape ", alpha.sizes());
  if (!detail::is_traced(alpha)) detail::check_center_alpha(alpha.to(at::kCPU, at::kDouble).item<double>());
  at::NoGradGuard no_grad;
  at::Tensor c = centers;
  c.sub_(detail::center_step(c, features, target, ignore_index) * alpha.reshape({}).to(c.scalar_type()));
}

/// Refuses settings of the loss `loss` (a margin's name, or "center") that its C++ options
/// would refuse for `num_classes` classes: each must be in its range.
inline void check_settings(c10::string_view loss, const at::Tensor& settings, int64_t num_classes) {
  const std::vector<double> values = setting_values(settings);
  if (loss == "center") {
    detail::check_center_lambda(with_settings(functional::CenterLossFuncOptions{}, values, "center").lambda());
    return;
  }
  MarginCall call;
  call.margin = std::string(loss);
  call.settings = values;
  with_margin_named(call.margin, [&](auto options) {
    using FuncOptions = decltype(options);
    detail::MarginTraits<FuncOptions>::params(options_of<FuncOptions>(call), num_classes);
  });
}

}  // namespace angular::ops
