// angular's losses as dispatcher operators, namespace `angular` (torch.ops.angular in Python):
// one family of ops over cosines and one over features + class vectors, the margin named by
// its table name ("arcface", ...) with its settings by name. The CMake target angular::ops
// adds this file to the consumer's program (a TORCH_LIBRARY block must be compiled once);
// the Python package builds it into angular._C.
//
//   margin_cross_entropy(cos, target, margin, setting_names, setting_values, norms, statistics,
//                        class_weight, reduction, ignore_index, label_smoothing) -> loss
//   linear_margin_cross_entropy(features, weight, target, margin, setting_names, setting_values,
//                               statistics, class_weight, reduction, ignore_index,
//                               label_smoothing, chunk_rows) -> loss
//   *_forward(..., output_mask) -> (loss, grad_0, grad_1)   the gradients for an upstream 1 of
//                                  a reduced loss (empty where not asked or reduction none)
//   *_backward(grad, ..., output_mask) -> (grad_0, grad_1)  per-sample losses' gradients
//   margin_settings(margin) -> (names, defaults)            a margin's settings (None: NaN)
//
// Kernels: CPU and CUDA (the fused CUDA kernels where angular::cuda is linked, as everywhere in
// angular), an Autograd kernel (the gradients written in the forward are kept, as the C++
// functional layer keeps them), and Autocast kernels that run the ops in float32 as
// torch.autocast runs cross_entropy. Shapes for torch.compile come from Python
// (angular/_fake.py).

#include "margin_call.hpp"

#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <tuple>

namespace angular::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Grads = std::tuple<at::Tensor, at::Tensor>;
using LossGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Names = c10::List<std::string>;
using OptionalTensor = std::optional<at::Tensor>;

MarginCall make_call(const at::Tensor& target, c10::string_view margin, const Names& names,
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

at::Tensor or_empty(const at::Tensor& t, const at::Tensor& like) {
  return t.defined() ? t : at::empty({0}, like.options());
}

// The arguments every signature below shares, after the differentiable tensors.
#define ANGULAR_CALL_PARAMS                                                                           \
  const at::Tensor &target, c10::string_view margin, const Names &names, c10::ArrayRef<double> values, \
      at::TensorList statistics, const OptionalTensor &class_weight, int64_t reduction, int64_t ignore_index, \
      double label_smoothing
#define ANGULAR_CALL_ARGS \
  target, margin, names, values, statistics, class_weight, reduction, ignore_index, label_smoothing

// ---- over cosines ----------------------------------------------------------------------------

LossAndGradients cosine_pass(const at::Tensor& cos, const OptionalTensor& norms, const MarginCall& call,
                             std::array<bool, 2> wanted, const at::Tensor& upstream) {
  return loss_and_gradients([&](const at::Tensor& c, const at::Tensor& n) { return cosine_loss(call, c, n); }, cos,
                            norms.value_or(at::Tensor()), wanted, upstream);
}

LossGrads cosine_forward(const at::Tensor& cos, const OptionalTensor& norms, ANGULAR_CALL_PARAMS,
                         std::array<bool, 2> output_mask) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, 0);
  if (reduction == at::Reduction::None) output_mask = {false, false};
  const LossAndGradients out = cosine_pass(cos, norms, call, output_mask, {});
  return {out.loss, or_empty(out.grad_a, cos), or_empty(out.grad_b, cos)};
}

Grads cosine_backward(const at::Tensor& grad, const at::Tensor& cos, const OptionalTensor& norms,
                      ANGULAR_CALL_PARAMS, std::array<bool, 2> output_mask) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, 0);
  const LossAndGradients out = cosine_pass(cos, norms, call, output_mask, grad);
  return {or_empty(out.grad_a, cos), or_empty(out.grad_b, cos)};
}

at::Tensor cosine_loss_op(const at::Tensor& cos, const OptionalTensor& norms, ANGULAR_CALL_PARAMS) {
  return std::get<0>(cosine_forward(cos, norms, ANGULAR_CALL_ARGS, {false, false}));
}

// ---- over features + class vectors -----------------------------------------------------------

LossAndGradients feature_pass(const at::Tensor& features, const at::Tensor& weight, const MarginCall& call,
                              std::array<bool, 2> wanted, const at::Tensor& upstream) {
  return loss_and_gradients([&](const at::Tensor& x, const at::Tensor& w) { return feature_loss(call, x, w); },
                            features, weight, wanted, upstream);
}

LossGrads feature_forward(const at::Tensor& features, const at::Tensor& weight, ANGULAR_CALL_PARAMS,
                          int64_t chunk_rows, std::array<bool, 2> output_mask) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, chunk_rows);
  if (reduction == at::Reduction::None) output_mask = {false, false};
  const LossAndGradients out = feature_pass(features, weight, call, output_mask, {});
  return {out.loss, or_empty(out.grad_a, features), or_empty(out.grad_b, weight)};
}

Grads feature_backward(const at::Tensor& grad, const at::Tensor& features, const at::Tensor& weight,
                       ANGULAR_CALL_PARAMS, int64_t chunk_rows, std::array<bool, 2> output_mask) {
  const MarginCall call = make_call(ANGULAR_CALL_ARGS, chunk_rows);
  const LossAndGradients out = feature_pass(features, weight, call, output_mask, grad);
  return {or_empty(out.grad_a, features), or_empty(out.grad_b, weight)};
}

at::Tensor feature_loss_op(const at::Tensor& features, const at::Tensor& weight, ANGULAR_CALL_PARAMS,
                           int64_t chunk_rows) {
  return std::get<0>(feature_forward(features, weight, ANGULAR_CALL_ARGS, chunk_rows, {false, false}));
}

std::tuple<std::vector<std::string>, std::vector<double>> margin_settings(c10::string_view margin) {
  std::vector<std::string> names;
  std::vector<double> defaults;
  with_margin_named(std::string(margin), [&](auto options) {
    options.for_each_setting([&](const char* name, const auto& value) {
      names.emplace_back(name);
      using T = std::decay_t<decltype(value)>;
      if constexpr (std::is_same_v<T, std::optional<double>>) defaults.push_back(value.value_or(NAN));
      else defaults.push_back(static_cast<double>(value));
    });
  });
  return {names, defaults};
}

// ---- composite ops: ATen underneath, which autograd and torch.compile see through ------------

at::Tensor cosine_matrix_op(const at::Tensor& features, const at::Tensor& weight) {
  return functional::cosine_matrix(features, weight);
}

at::Tensor margin_logits_op(const at::Tensor& features, const at::Tensor& weight, c10::string_view margin,
                            const Names& names, c10::ArrayRef<double> values) {
  const MarginCall call = make_call(at::Tensor(), margin, names, values, {}, std::nullopt, at::Reduction::Mean, -100,
                                    0.0, 0);
  return with_margin_named(call.margin, [&](auto options) {
    return detail::prediction_logits(options_of<decltype(options)>(call), features, weight);
  });
}

// The labels are the cross-entropy's to check (center_loss computes it first): a check here
// would read them, which torch.compile cannot trace.
at::Tensor center_term_op(const at::Tensor& features, const at::Tensor& centers, const at::Tensor& target,
                          int64_t reduction, int64_t ignore_index) {
  detail::check_features(features, centers, "centers");
  reduction_of(reduction);
  const auto dtype = detail::compute_dtype(features);
  return detail::center_term(features.to(dtype), centers.to(dtype), target, reduction, ignore_index);
}

void update_centers_op(const at::Tensor& centers, const at::Tensor& features, const at::Tensor& target, double alpha,
                       int64_t ignore_index) {
  detail::check_features(features, centers, "centers");
  at::Tensor c = centers;
  detail::move_centers_(c, features, target, alpha, ignore_index);
}

void update_margin_statistics_op(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
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
    detail::update_margin_statistics_<detail::MarginTraits<FuncOptions>>(in.norm_mean, in.norm_std, in.t, features,
                                                                         weight, target, in.norms, ignore_index,
                                                                         momentum);
  });
}

void check_margin(c10::string_view margin, const Names& names, c10::ArrayRef<double> values, int64_t num_classes) {
  const MarginCall call = make_call(at::Tensor(), margin, names, values, {}, std::nullopt, at::Reduction::Mean, -100,
                                    0.0, 0);
  with_margin_named(call.margin, [&](auto options) {
    using FuncOptions = decltype(options);
    detail::MarginTraits<FuncOptions>::params(options_of<FuncOptions>(call), num_classes);
  });
}

// ---- autograd ---------------------------------------------------------------------------------

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
at::Tensor times_upstream(const at::Tensor& grad, const at::Tensor& upstream) {
  const bool traced = upstream.key_set().has_any(
      c10::DispatchKeySet({c10::DispatchKey::Python, c10::DispatchKey::Functionalize}));
  if (!traced && upstream.device().is_cpu() && upstream.item<double>() == 1.0) return grad;
  return grad * upstream.to(grad.scalar_type());
}

at::Tensor defined_if(bool wanted, const at::Tensor& t) { return wanted ? t : at::Tensor(); }

/// The gradients an autograd function below returns: one per argument of its forward, each
/// tensor of a list counting as one (the two differentiable tensors, then eight arguments and
/// the statistics, then one more).
variable_list gradient_slots(const SavedCall& s) { return variable_list(11 + s.statistics.size()); }

template <class Schema>
c10::TypedOperatorHandle<Schema> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Schema>();
}

// norms: an empty tensor where there are none (autograd functions take no undefined inputs).
struct CosineAutograd : torch::autograd::Function<CosineAutograd> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& cos, const at::Tensor& norms, bool has_norms,
                            ANGULAR_CALL_PARAMS) {
    const OptionalTensor n = has_norms ? OptionalTensor(norms) : std::nullopt;
    at::AutoDispatchBelowADInplaceOrView below;
    const std::array<bool, 2> mask{cos.requires_grad(), has_norms && norms.requires_grad()};
    const auto [loss, grad_cos, grad_norms] =
        op<decltype(cosine_forward)>("angular::margin_cross_entropy_forward").call(cos, n, ANGULAR_CALL_ARGS, mask);
    if (reduction == at::Reduction::None) ctx->save_for_backward({cos, norms});
    else ctx->save_for_backward({grad_cos, grad_norms});
    ctx->saved_data["has_norms"] = has_norms;
    SavedCall::save(ctx, ANGULAR_CALL_ARGS, 0);
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const SavedCall s(ctx);
    const bool has_norms = ctx->saved_data["has_norms"].toBool();
    const std::array<bool, 2> mask{ctx->needs_input_grad(0), has_norms && ctx->needs_input_grad(1)};
    variable_list out = gradient_slots(s);
    if (s.reduction == at::Reduction::None) {
      const OptionalTensor n = has_norms ? OptionalTensor(saved[1]) : std::nullopt;
      const auto [grad_cos, grad_norms] = op<decltype(cosine_backward)>("angular::margin_cross_entropy_backward")
                                              .call(grads[0], saved[0], n, ANGULAR_SAVED_ARGS(s), mask);
      out[0] = defined_if(mask[0], grad_cos);
      out[1] = defined_if(mask[1], grad_norms);
    } else {
      if (mask[0]) out[0] = times_upstream(saved[0], grads[0]);
      if (mask[1]) out[1] = times_upstream(saved[1], grads[0]);
    }
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
    if (reduction == at::Reduction::None) ctx->save_for_backward({features, weight});
    else ctx->save_for_backward({grad_features, grad_weight});
    SavedCall::save(ctx, ANGULAR_CALL_ARGS, chunk_rows);
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const SavedCall s(ctx);
    const std::array<bool, 2> mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    variable_list out = gradient_slots(s);
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

at::Tensor cosine_loss_autograd(const at::Tensor& cos, const OptionalTensor& norms, ANGULAR_CALL_PARAMS) {
  const at::Tensor n = norms.has_value() ? *norms : at::empty({0}, cos.options());
  return CosineAutograd::apply(cos, n, norms.has_value(), ANGULAR_CALL_ARGS);
}

at::Tensor feature_loss_autograd(const at::Tensor& features, const at::Tensor& weight, ANGULAR_CALL_PARAMS,
                                 int64_t chunk_rows) {
  return FeatureAutograd::apply(features, weight, ANGULAR_CALL_ARGS, chunk_rows);
}

// ---- autocast: float32, as torch.autocast runs cross_entropy ---------------------------------

template <c10::DeviceType device>
at::Tensor cosine_loss_autocast(const at::Tensor& cos, const OptionalTensor& norms, ANGULAR_CALL_PARAMS) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  return op<decltype(cosine_loss_op)>("angular::margin_cross_entropy")
      .call(at::autocast::cached_cast(at::kFloat, cos, device), at::autocast::cached_cast(at::kFloat, norms, device),
            ANGULAR_CALL_ARGS);
}

template <c10::DeviceType device>
at::Tensor feature_loss_autocast(const at::Tensor& features, const at::Tensor& weight, ANGULAR_CALL_PARAMS,
                                 int64_t chunk_rows) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  return op<decltype(feature_loss_op)>("angular::linear_margin_cross_entropy")
      .call(at::autocast::cached_cast(at::kFloat, features, device),
            at::autocast::cached_cast(at::kFloat, weight, device), ANGULAR_CALL_ARGS, chunk_rows);
}

}  // namespace
}  // namespace angular::ops

#define ANGULAR_CALL_SCHEMA                                                                       \
  "Tensor target, str margin, str[] setting_names, float[] setting_values, Tensor[] statistics, " \
  "Tensor? class_weight, int reduction, int ignore_index, float label_smoothing"

TORCH_LIBRARY(angular, m) {
  m.def("margin_cross_entropy(Tensor cos, Tensor? norms, " ANGULAR_CALL_SCHEMA ") -> Tensor");
  m.def("margin_cross_entropy_forward(Tensor cos, Tensor? norms, " ANGULAR_CALL_SCHEMA
        ", bool[2] output_mask) -> (Tensor, Tensor, Tensor)");
  m.def("margin_cross_entropy_backward(Tensor grad, Tensor cos, Tensor? norms, " ANGULAR_CALL_SCHEMA
        ", bool[2] output_mask) -> (Tensor, Tensor)");
  m.def("linear_margin_cross_entropy(Tensor features, Tensor weight, " ANGULAR_CALL_SCHEMA
        ", int chunk_rows) -> Tensor");
  m.def("linear_margin_cross_entropy_forward(Tensor features, Tensor weight, " ANGULAR_CALL_SCHEMA
        ", int chunk_rows, bool[2] output_mask) -> (Tensor, Tensor, Tensor)");
  m.def("linear_margin_cross_entropy_backward(Tensor grad, Tensor features, Tensor weight, " ANGULAR_CALL_SCHEMA
        ", int chunk_rows, bool[2] output_mask) -> (Tensor, Tensor)");
  m.def("margin_settings(str margin) -> (str[], float[])", &angular::ops::margin_settings);
  m.def("check_margin(str margin, str[] setting_names, float[] setting_values, int num_classes) -> ()",
        &angular::ops::check_margin);
  m.def("cosine_matrix(Tensor features, Tensor weight) -> Tensor");
  m.def("margin_logits(Tensor features, Tensor weight, str margin, str[] setting_names, float[] setting_values) "
        "-> Tensor");
  m.def("center_term(Tensor features, Tensor centers, Tensor target, int reduction, int ignore_index) -> Tensor");
  m.def("update_centers_(Tensor(a!) centers, Tensor features, Tensor target, float alpha, int ignore_index) -> ()");
  m.def("update_margin_statistics_(Tensor features, Tensor weight, Tensor target, str margin, "
        "Tensor(a!)[] statistics, float momentum, int ignore_index) -> ()");
}

TORCH_LIBRARY_IMPL(angular, CompositeImplicitAutograd, m) {
  m.impl("cosine_matrix", &angular::ops::cosine_matrix_op);
  m.impl("margin_logits", &angular::ops::margin_logits_op);
  m.impl("center_term", &angular::ops::center_term_op);
  m.impl("update_centers_", &angular::ops::update_centers_op);
  m.impl("update_margin_statistics_", &angular::ops::update_margin_statistics_op);
}

#define ANGULAR_DEVICE_KERNELS(KEY)                                                         \
  TORCH_LIBRARY_IMPL(angular, KEY, m) {                                                     \
    m.impl("margin_cross_entropy", &angular::ops::cosine_loss_op);                          \
    m.impl("margin_cross_entropy_forward", &angular::ops::cosine_forward);                  \
    m.impl("margin_cross_entropy_backward", &angular::ops::cosine_backward);                \
    m.impl("linear_margin_cross_entropy", &angular::ops::feature_loss_op);                  \
    m.impl("linear_margin_cross_entropy_forward", &angular::ops::feature_forward);          \
    m.impl("linear_margin_cross_entropy_backward", &angular::ops::feature_backward);        \
  }
ANGULAR_DEVICE_KERNELS(CPU)
ANGULAR_DEVICE_KERNELS(CUDA)

TORCH_LIBRARY_IMPL(angular, Autograd, m) {
  m.impl("margin_cross_entropy", &angular::ops::cosine_loss_autograd);
  m.impl("linear_margin_cross_entropy", &angular::ops::feature_loss_autograd);
}

TORCH_LIBRARY_IMPL(angular, AutocastCPU, m) {
  m.impl("margin_cross_entropy", &angular::ops::cosine_loss_autocast<c10::DeviceType::CPU>);
  m.impl("linear_margin_cross_entropy", &angular::ops::feature_loss_autocast<c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(angular, AutocastCUDA, m) {
  m.impl("margin_cross_entropy", &angular::ops::cosine_loss_autocast<c10::DeviceType::CUDA>);
  m.impl("linear_margin_cross_entropy", &angular::ops::feature_loss_autocast<c10::DeviceType::CUDA>);
}
