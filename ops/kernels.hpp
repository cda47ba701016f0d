#pragma once
// The kernels of angular's operators (angular_ops.cpp) on a device: each a call of angular's
// C++ functional layer (margin_call.hpp), which picks the fused kernels; and the composite
// operators, plain ATen.

#include "margin_call.hpp"

#include <tuple>

namespace angular::ops {

using Grads = std::tuple<at::Tensor, at::Tensor>;
using LossGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Names = c10::List<std::string>;
using OptionalTensor = std::optional<at::Tensor>;

inline MarginCall make_call(const at::Tensor& target, c10::string_view margin, const Names& names,
                            c10::ArrayRef<double> values, at::TensorList statistics, const OptionalTensor& class_weight,
                            int64_t reduction, int64_t ignore_index, double label_smoothing, int64_t chunk_rows) {
  MarginCall call;
  call.margin = std::string(margin);
  for (const std::string& name : names) call.setting_names.push_back(name);
  call.setting_values = values.vec();
  call.target = target;
  call.statistics = statistics.vec();
  call.class_weight = class_weight.value_or(at::Tensor());
  call.reduction = reduction;
  call.ignore_index = ignore_index;
  call.label_smoothing = label_smoothing;
  call.chunk_rows = chunk_rows;
  return call;
}

inline at::Tensor or_empty(const at::Tensor& t, const at::Tensor& like) {
  return t.defined() ? t : at::empty({0}, like.options());
}

// The arguments every signature below shares, after the differentiable tensors.
#define ANGULAR_CALL_PARAMS                                                                                   \
  const at::Tensor &target, c10::string_view margin, const Names &names, c10::ArrayRef<double> values,        \
      at::TensorList statistics, const OptionalTensor &class_weight, int64_t reduction, int64_t ignore_index, \
      double label_smoothing
#define ANGULAR_CALL_ARGS \
  target, margin, names, values, statistics, class_weight, reduction, ignore_index, label_smoothing

// ---- over cosines ----------------------------------------------------------------------------

inline LossAndGradients cosine_pass(const at::Tensor& cos, const OptionalTensor& norms, const MarginCall& call,
                                    std::array<bool, 2> wanted, const at::Tensor& upstream) {
  return loss_and_gradients([&](const at::Tensor& c, const at::Tensor& n) { return cosine_loss(call, c, n); }, cos,
                            norms.value_or(at::Tensor()), wanted, upstream);
}

inline LossGrads cosine_forward(const at::Tensor& cos, const OptionalTensor& norms, ANGULAR_CALL_PARAMS,
                                std::array<bool, 2> output_mask) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, 0);
  const LossAndGradients out = cosine_pass(cos, norms, call, output_mask, {});
  return {out.loss, or_empty(out.grad_a, cos), or_empty(out.grad_b, cos)};
}

inline Grads cosine_backward(const at::Tensor& grad, const at::Tensor& cos, const OptionalTensor& norms,
                             ANGULAR_CALL_PARAMS, std::array<bool, 2> output_mask) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, 0);
  const LossAndGradients out = cosine_pass(cos, norms, call, output_mask, grad);
  return {or_empty(out.grad_a, cos), or_empty(out.grad_b, cos)};
}

inline at::Tensor cosine_loss_op(const at::Tensor& cos, const OptionalTensor& norms, ANGULAR_CALL_PARAMS) {
  return std::get<0>(cosine_forward(cos, norms, ANGULAR_CALL_ARGS, {false, false}));
}

// ---- over features + class vectors -----------------------------------------------------------

inline LossAndGradients feature_pass(const at::Tensor& features, const at::Tensor& weight, const MarginCall& call,
                                     std::array<bool, 2> wanted, const at::Tensor& upstream) {
  return loss_and_gradients([&](const at::Tensor& x, const at::Tensor& w) { return feature_loss(call, x, w); },
                            features, weight, wanted, upstream);
}

inline LossGrads feature_forward(const at::Tensor& features, const at::Tensor& weight, ANGULAR_CALL_PARAMS,
                                 int64_t chunk_rows, std::array<bool, 2> output_mask) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, chunk_rows);
  if (reduction == at::Reduction::None) output_mask = {false, false};
  const LossAndGradients out = feature_pass(features, weight, call, output_mask, {});
  return {out.loss, or_empty(out.grad_a, features), or_empty(out.grad_b, weight)};
}

inline Grads feature_backward(const at::Tensor& grad, const at::Tensor& features, const at::Tensor& weight,
                              ANGULAR_CALL_PARAMS, int64_t chunk_rows, std::array<bool, 2> output_mask) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, chunk_rows);
  const LossAndGradients out = feature_pass(features, weight, call, output_mask, grad);
  return {or_empty(out.grad_a, features), or_empty(out.grad_b, weight)};
}

inline at::Tensor feature_loss_op(const at::Tensor& features, const at::Tensor& weight, ANGULAR_CALL_PARAMS,
                                  int64_t chunk_rows) {
  return std::get<0>(feature_forward(features, weight, ANGULAR_CALL_ARGS, chunk_rows, {false, false}));
}

inline std::tuple<std::vector<std::string>, std::vector<double>> margin_settings(c10::string_view margin) {
  std::vector<std::string> names;
  std::vector<double> defaults;
  with_margin_named(std::string(margin), [&](auto options) {
    options.for_each_setting([&](const char* name, const auto& value) {
      names.emplace_back(name);
      using T = std::decay_t<decltype(value)>;
      if constexpr (std::is_same_v<T, std::optional<double>>)
        defaults.push_back(value.value_or(NAN));
      else
        defaults.push_back(static_cast<double>(value));
    });
  });
  return {names, defaults};
}

// ---- composite ops: ATen underneath, which autograd and torch.compile see through ------------

inline at::Tensor cosine_matrix_op(const at::Tensor& features, const at::Tensor& weight) {
  return functional::cosine_matrix(features, weight);
}

inline at::Tensor margin_logits_op(const at::Tensor& features, const at::Tensor& weight, c10::string_view margin,
                                   const Names& names, c10::ArrayRef<double> values) {
  const MarginCall call =
      make_call(at::Tensor(), margin, names, values, {}, std::nullopt, at::Reduction::Mean, -100, 0.0, 0);
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

inline void update_centers_op(const at::Tensor& centers, const at::Tensor& features, const at::Tensor& target,
                              double alpha, int64_t ignore_index) {
  detail::check_features(features, centers, "centers");
  at::Tensor c = centers;
  detail::move_centers_(c, features, target, alpha, ignore_index);
}

inline void update_margin_statistics_op(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                                        c10::string_view margin, at::TensorList statistics, double momentum,
                                        int64_t ignore_index) {
  detail::check_momentum(momentum);
  MarginCall call;
  call.margin = std::string(margin);
  call.statistics = statistics.vec();
  with_margin_named(call.margin, [&](auto options) {
    using FuncOptions = decltype(options);
    detail::MarginInputs in = margin_inputs<FuncOptions>(call, at::Tensor());
    if (in.norm_mean.defined()) in.norms = detail::detached_norms(features);
    detail::update_margin_statistics_<detail::MarginTraits<FuncOptions>>(
        in.norm_mean, in.norm_std, in.t, features, weight, target, in.norms, ignore_index, momentum);
  });
}

inline void check_margin(c10::string_view margin, const Names& names, c10::ArrayRef<double> values,
                         int64_t num_classes) {
  const MarginCall call =
      make_call(at::Tensor(), margin, names, values, {}, std::nullopt, at::Reduction::Mean, -100, 0.0, 0);
  with_margin_named(call.margin, [&](auto options) {
    using FuncOptions = decltype(options);
    detail::MarginTraits<FuncOptions>::params(options_of<FuncOptions>(call), num_classes);
  });
}

}  // namespace angular::ops
