#pragma once
// The CPU and CUDA kernels of angular's loss operators (angular_ops.cpp): pure, no autograd
// inside. Each checks its inputs into a problem (margin_call.hpp) and runs the one body of its
// family, detail::fused_margin_cross_entropy or detail::fused_linear_margin_cross_entropy;
// the operators' autograd lives above them (autograd.hpp).
//   *_forward   the loss and the gradients asked for, for an upstream gradient of 1 on every
//               loss element
//   *_backward  the gradients for an upstream gradient, computed again
//   the loss alone: where a device has no fused kernels (CUDA tensors in a package built
//               without them), the composite reference, which needs no autograd for a value

#include "margin_call.hpp"

#include <ATen/core/dispatch/Dispatcher.h>

#include <array>
#include <tuple>

namespace angular::ops {

using Grads = std::tuple<at::Tensor, at::Tensor>;
using LossGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using OptionalTensor = std::optional<at::Tensor>;

/// The operator `name` of the dispatcher, typed as the kernel `Schema` (decltype of one above).
template <class Schema>
c10::TypedOperatorHandle<Schema> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Schema>();
}

inline MarginCall make_call(const at::Tensor& target, c10::string_view margin, const at::Tensor& settings,
                            at::TensorList statistics, const OptionalTensor& class_weight, int64_t reduction,
                            int64_t ignore_index, double label_smoothing, int64_t chunk_rows) {
  MarginCall call;
  call.margin = std::string(margin);
  call.settings = setting_values(settings);
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
#define ANGULAR_CALL_PARAMS                                                                      \
  const at::Tensor &target, c10::string_view margin, const at::Tensor &settings,                 \
      at::TensorList statistics, const OptionalTensor &class_weight, int64_t reduction,          \
      int64_t ignore_index, double label_smoothing
#define ANGULAR_CALL_ARGS \
  target, margin, settings, statistics, class_weight, reduction, ignore_index, label_smoothing

// ---- over cosines (and the feature norms, which SphereFace differentiates) -------------------

/// The gradient of the norms [B] from the problem's row-parameter gradient [B, 1]: SphereFace's;
/// zero where the margin reads the norms without a gradient (AdaFace's).
inline at::Tensor norms_gradient(const at::Tensor& grad_rows, const at::Tensor& norms) {
  if (grad_rows.defined()) return grad_rows.reshape(norms.sizes()).to(norms.scalar_type());
  return at::zeros_like(norms, at::MemoryFormat::Contiguous);
}

inline Grads cosine_grads(const detail::LossAndGradients& out, const at::Tensor& cos, const OptionalTensor& norms,
                          std::array<bool, 2> mask) {
  const bool grad_norms = mask[1] && norms.has_value();
  return {or_empty(out.grad_a, cos), grad_norms ? norms_gradient(out.grad_b, *norms) : or_empty({}, cos)};
}

inline LossGrads cosine_forward(const at::Tensor& cos, const OptionalTensor& norms, ANGULAR_CALL_PARAMS,
                                std::array<bool, 2> output_mask) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, 0);
  const detail::LossAndGradients out =
      detail::fused_margin_cross_entropy(cosine_problem(call, cos, norms.value_or(at::Tensor())), output_mask);
  const auto [grad_cos, grad_norms] = cosine_grads(out, cos, norms, output_mask);
  return {out.loss, grad_cos, grad_norms};
}

inline Grads cosine_backward(const at::Tensor& grad, const at::Tensor& cos, const OptionalTensor& norms,
                             ANGULAR_CALL_PARAMS, std::array<bool, 2> output_mask) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, 0);
  const detail::LossAndGradients out = detail::fused_margin_cross_entropy(
      cosine_problem(call, cos, norms.value_or(at::Tensor())), output_mask, grad);
  return cosine_grads(out, cos, norms, output_mask);
}

inline at::Tensor cosine_loss_op(const at::Tensor& cos, const OptionalTensor& norms, ANGULAR_CALL_PARAMS) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, 0);
  const detail::CosineProblem p = cosine_problem(call, cos, norms.value_or(at::Tensor()));
  if (kernel_path(cos) == KernelPath::composite) return detail::composite_margin_cross_entropy(p);
  return detail::fused_margin_cross_entropy(p, {false, false}).loss;
}

// ---- over features + class vectors -----------------------------------------------------------

inline LossGrads feature_forward(const at::Tensor& features, const at::Tensor& weight, ANGULAR_CALL_PARAMS,
                                 int64_t chunk_rows, std::array<bool, 2> output_mask) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, chunk_rows);
  const detail::LossAndGradients out =
      detail::fused_linear_margin_cross_entropy(linear_problem(call, features, weight), output_mask);
  return {out.loss, or_empty(out.grad_a, features), or_empty(out.grad_b, weight)};
}

inline Grads feature_backward(const at::Tensor& grad, const at::Tensor& features, const at::Tensor& weight,
                              ANGULAR_CALL_PARAMS, int64_t chunk_rows, std::array<bool, 2> output_mask) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, chunk_rows);
  const detail::LossAndGradients out =
      detail::fused_linear_margin_cross_entropy(linear_problem(call, features, weight), output_mask, grad);
  return {or_empty(out.grad_a, features), or_empty(out.grad_b, weight)};
}

inline at::Tensor feature_loss_op(const at::Tensor& features, const at::Tensor& weight, ANGULAR_CALL_PARAMS,
                                  int64_t chunk_rows) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, chunk_rows);
  const detail::LinearProblem p = linear_problem(call, features, weight);
  if (kernel_path(features) == KernelPath::composite) return detail::composite_linear_margin_cross_entropy(p);
  return detail::fused_linear_margin_cross_entropy(p, {false, false}).loss;
}

// ---- a module's running statistics -----------------------------------------------------------

/// The running statistics of a margin after a training step on this batch (new tensors; the
/// module copies them into its buffers), once the inputs, the settings and the momentum passed
/// their checks: a bad batch moves nothing.
inline std::vector<at::Tensor> margin_statistics_step(const at::Tensor& features, const at::Tensor& weight,
                                                      ANGULAR_CALL_PARAMS, int64_t chunk_rows,
                                                      const at::Tensor& momentum) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, chunk_rows);
  TORCH_CHECK(momentum.numel() == 1, "angular: momentum must be one number, got shape ", momentum.sizes());
  const double m = momentum.to(at::kCPU, at::kDouble).item<double>();
  return with_margin_named(call.margin, [&](auto options) {
    using FuncOptions = decltype(options);
    using Traits = detail::MarginTraits<FuncOptions>;
    const auto o = options_of<FuncOptions>(call);
    detail::check_statistics_step(features, weight, target, o, m);
    MarginCall moved = call;
    for (at::Tensor& s : moved.statistics) s = s.clone();
    detail::MarginInputs in = margin_inputs<FuncOptions>(moved, at::Tensor());
    if constexpr (Traits::kRowInput == detail::RowInput::norm_statistics) in.norms = detail::detached_norms(features);
    detail::step_statistics_<Traits>(in, features, weight, target, call.ignore_index, m);
    return moved.statistics;
  });
}

}  // namespace angular::ops
