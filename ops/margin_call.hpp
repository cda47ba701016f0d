#pragma once
// A margin cross-entropy named at run time, as the dispatcher operators (angular_ops.cpp) take
// it: the margin by its table name ("arcface", ...), its settings by name, the cross-entropy
// arguments; run through angular's C++ functional layer, which picks the fused kernels.

#include <angular/loss.hpp>

#include <ATen/core/grad_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/autograd.h>

#include <array>
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace angular::ops {

/// A margin and its arguments besides the differentiable tensors.
struct MarginCall {
  std::string margin;  // a MarginTraits kName
  std::vector<std::string> setting_names;
  std::vector<double> setting_values;
  at::Tensor target;
  std::vector<at::Tensor> statistics;  // AdaFace: norm_mean, norm_std; CurricularFace: t
  at::Tensor class_weight;             // [C] or undefined
  int64_t reduction = at::Reduction::Mean;
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  int64_t chunk_rows = 0;
};

inline reduction_t reduction_of(int64_t reduction) {
  switch (reduction) {
    case at::Reduction::None: return torch::kNone;
    case at::Reduction::Mean: return torch::kMean;
    case at::Reduction::Sum: return torch::kSum;
  }
  TORCH_CHECK(false, "angular: reduction must be 0 (none), 1 (mean) or 2 (sum), got ", reduction);
}

/// `FuncOptions` with the call's settings (each by name; the others keep their defaults) and
/// cross-entropy arguments.
template <class FuncOptions>
FuncOptions options_of(const MarginCall& call) {
  TORCH_CHECK(call.setting_names.size() == call.setting_values.size(), "angular: ", call.setting_names.size(),
              " setting names but ", call.setting_values.size(), " values");
  FuncOptions options;
  std::vector<bool> used(call.setting_names.size(), false);
  options.for_each_setting([&](const char* name, auto& value) {
    for (size_t i = 0; i < call.setting_names.size(); ++i) {
      if (call.setting_names[i] != name) continue;
      used[i] = true;
      const double v = call.setting_values[i];
      using T = std::decay_t<decltype(value)>;
      if constexpr (std::is_same_v<T, std::optional<double>>) {
        value = std::isnan(v) ? std::nullopt : std::optional<double>(v);  // NaN: None
      } else if constexpr (std::is_same_v<T, bool>) {
        value = v != 0;
      } else if constexpr (std::is_integral_v<T>) {
        TORCH_CHECK(std::floor(v) == v, "angular: ", name, " must be an integer, got ", v);
        value = static_cast<T>(v);
      } else {
        value = v;
      }
    }
  });
  for (size_t i = 0; i < used.size(); ++i) {
    TORCH_CHECK(used[i], "angular: the ", call.margin, " margin has no setting '", call.setting_names[i], "'");
  }
  options.reduction(reduction_of(call.reduction))
      .ignore_index(call.ignore_index)
      .label_smoothing(call.label_smoothing)
      .weight(call.class_weight)
      .chunk_rows(call.chunk_rows);
  return options;
}

/// Calls f(FuncOptions{}) with the functional options of the margin named `margin`.
template <class F>
decltype(auto) with_margin_named(const std::string& margin, F&& f) {
  bool found = false;
  using Result = decltype(f(functional::ArcFaceLossFuncOptions{}));
  std::conditional_t<std::is_void_v<Result>, bool, Result> result{};
  for_each_margin_module([&](auto tag) {
    using FuncOptions = typename decltype(tag)::type::FuncOptions;
    if (found || margin != detail::MarginTraits<FuncOptions>::kName) return;
    found = true;
    if constexpr (std::is_void_v<Result>)
      f(FuncOptions{});
    else
      result = f(FuncOptions{});
  });
  if (!found) {  // the names listed only for the error
    std::string names;
    for_each_margin_module([&](auto tag) {
      names += (names.empty() ? "" : ", ") + std::string(margin_name<typename decltype(tag)::type>());
    });
    TORCH_CHECK(false, "angular: unknown margin '", margin, "'; the margins are ", names);
  }
  if constexpr (!std::is_void_v<Result>) return result;
}

/// The per-row inputs of a margin from the call's `norms` (or undefined) and statistics.
template <class FuncOptions>
detail::MarginInputs margin_inputs(const MarginCall& call, const at::Tensor& norms) {
  using Traits = detail::MarginTraits<FuncOptions>;
  detail::MarginInputs in;
  in.norms = norms;
  size_t expected = 0;
  if constexpr (Traits::kRowInput == detail::RowInput::norm_statistics) expected = 2;
  if constexpr (Traits::kRowInput == detail::RowInput::curriculum) expected = 1;
  TORCH_CHECK(call.statistics.size() == expected, "angular: the ", call.margin, " margin reads ", expected,
              " running statistics (",
              expected == 2   ? "norm_mean, norm_std"
              : expected == 1 ? "t"
                              : "none",
              "), got ", call.statistics.size());
  if (expected == 2) {
    in.norm_mean = call.statistics[0];
    in.norm_std = call.statistics[1];
  } else if (expected == 1) {
    in.t = call.statistics[0];
  }
  return in;
}

/// The margin cross-entropy of cosines [B, C·K] (with `norms` [B] where the margin reads them).
inline at::Tensor cosine_loss(const MarginCall& call, const at::Tensor& cos, const at::Tensor& norms) {
  return with_margin_named(call.margin, [&](auto options) -> at::Tensor {
    using FuncOptions = decltype(options);
    using Traits = detail::MarginTraits<FuncOptions>;
    TORCH_CHECK(Traits::kNormalized, "angular: the ", call.margin,
                " margin has no loss over cosines (its logits are the raw products): use "
                "linear_margin_cross_entropy");
    const bool reads_norms =
        Traits::kRowInput == detail::RowInput::norms || Traits::kRowInput == detail::RowInput::norm_statistics;
    TORCH_CHECK(reads_norms == norms.defined(), "angular: the ", call.margin, " margin ",
                reads_norms ? "reads the features' norms: pass norms" : "reads no norms: pass norms=None");
    return detail::cosine_margin_loss(cos, call.target, options_of<FuncOptions>(call),
                                      margin_inputs<FuncOptions>(call, norms));
  });
}

/// The margin cross-entropy of features [B, D] and class vectors `weight` [C·K, D].
inline at::Tensor feature_loss(const MarginCall& call, const at::Tensor& features, const at::Tensor& weight) {
  return with_margin_named(call.margin, [&](auto options) -> at::Tensor {
    using FuncOptions = decltype(options);
    return detail::feature_margin_loss(features, weight, call.target, options_of<FuncOptions>(call),
                                       margin_inputs<FuncOptions>(call, at::Tensor()));
  });
}

/// The loss and, where asked, the gradients of inputs a and b (b may be undefined) for the
/// upstream gradient `upstream` (undefined: one per loss element). Autograd runs inside, on
/// detached inputs, whatever the dispatcher's state on the way in: the operators' kernels sit
/// below the Autograd key, yet angular's functional layer records its own graph.
struct LossAndGradients {
  at::Tensor loss, grad_a, grad_b;
};

template <class Loss>
LossAndGradients loss_and_gradients(Loss&& loss_of, const at::Tensor& a, const at::Tensor& b,
                                    std::array<bool, 2> wanted, const at::Tensor& upstream) {
  c10::impl::LocalDispatchKeySet keys = c10::impl::tls_local_dispatch_key_set();
  keys.excluded_ = keys.excluded_ - c10::autograd_dispatch_keyset_with_ADInplaceOrView;
  c10::impl::ForceDispatchKeyGuard with_autograd(keys);
  at::AutoGradMode grad_mode(wanted[0] || wanted[1]);

  const auto input = [](const at::Tensor& t, bool grad) { return t.defined() ? t.detach().requires_grad_(grad) : t; };
  const at::Tensor x = input(a, wanted[0]), y = input(b, wanted[1] && b.defined());
  LossAndGradients out;
  const at::Tensor loss = loss_of(x, y);
  out.loss = loss.detach();
  std::vector<at::Tensor> inputs;
  if (wanted[0]) inputs.push_back(x);
  if (wanted[1] && y.defined()) inputs.push_back(y);
  if (inputs.empty()) return out;
  std::vector<at::Tensor> upstreams;
  if (upstream.defined())
    upstreams.push_back(upstream.to(loss.scalar_type()));
  else
    upstreams.push_back(at::ones_like(loss));
  const auto grads = torch::autograd::grad({loss}, inputs, upstreams, /*retain_graph=*/false,
                                           /*create_graph=*/false, /*allow_unused=*/true);
  const auto contiguous_or_zeros = [](const at::Tensor& g, const at::Tensor& like) {
    return g.defined() ? g.contiguous() : at::zeros_like(like, at::MemoryFormat::Contiguous);
  };
  size_t i = 0;
  if (wanted[0]) out.grad_a = contiguous_or_zeros(grads[i++], a);
  if (wanted[1] && y.defined()) out.grad_b = contiguous_or_zeros(grads[i++], b);
  return out;
}

}  // namespace angular::ops
