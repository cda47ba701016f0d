#pragma once
// A margin cross-entropy named at run time, as the dispatcher operators (angular_ops.cpp) take
// it: the margin by its table name ("arcface", ...), its settings as one float64 tensor in the
// order of its options' settings (a tensor, so that torch.compile does not specialise a graph on
// their values), the cross-entropy arguments; turned into the problem that angular's C++
// functional layer builds (detail/margin_loss.hpp), checks included.

#include <angular/loss.hpp>

#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace angular::ops {

/// A margin and its arguments besides the differentiable tensors.
struct MarginCall {
  std::string margin;  // a MarginTraits kName
  std::vector<double> settings;
  at::Tensor target;
  std::vector<at::Tensor> statistics;  // in the order of the margin's kStatistics
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

/// The values of a settings tensor: 1-D, floating, on the CPU (read there, never waited for).
inline std::vector<double> setting_values(const at::Tensor& settings) {
  TORCH_CHECK(settings.dim() == 1 && at::isFloatingType(settings.scalar_type()),
              "angular: settings must be a 1-D floating tensor (float64), got ", settings.scalar_type(), " of shape ",
              settings.sizes());
  const at::Tensor values = settings.to(at::kCPU, at::kDouble).contiguous();
  const double* data = values.data_ptr<double>();
  return std::vector<double>(data, data + values.numel());
}

/// The number of settings of an options type.
template <class Options>
size_t setting_count() {
  size_t n = 0;
  Options::for_each_setting_doc([&](const char*, const char*) { ++n; });
  return n;
}

/// `Options` with the settings `values`, in the order of its for_each_setting: NaN is an unset
/// optional (Arc's automatic k), a bool is nonzero, an integer must be whole.
template <class Options>
Options with_settings(Options options, const std::vector<double>& values, const char* loss) {
  TORCH_CHECK(values.size() == setting_count<Options>(), "angular: the ", loss, " loss has ", setting_count<Options>(),
              " settings, got ", values.size(), " values");
  size_t i = 0;
  options.for_each_setting([&](const char* name, auto& value) {
    const double v = values[i++];
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, std::optional<double>>) {
      value = std::isnan(v) ? std::nullopt : std::optional<double>(v);
    } else if constexpr (std::is_same_v<T, bool>) {
      value = v != 0;
    } else if constexpr (std::is_integral_v<T>) {
      TORCH_CHECK(std::floor(v) == v, "angular: ", name, " must be an integer, got ", v);
      value = static_cast<T>(v);
    } else {
      value = v;
    }
  });
  return options;
}

/// `FuncOptions` with the call's settings and cross-entropy arguments.
template <class FuncOptions>
FuncOptions options_of(const MarginCall& call) {
  FuncOptions options = with_settings(FuncOptions{}, call.settings, call.margin.c_str());
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

/// The per-row inputs of a margin from the call's `norms` (or undefined) and statistics, which
/// come in the order of its kStatistics.
template <class FuncOptions>
detail::MarginInputs margin_inputs(const MarginCall& call, const at::Tensor& norms) {
  using Traits = detail::MarginTraits<FuncOptions>;
  std::string names;
  for (const detail::Statistic& s : Traits::kStatistics) names += (names.empty() ? "" : ", ") + std::string(s.name);
  TORCH_CHECK(call.statistics.size() == Traits::kStatistics.size(), "angular: the ", call.margin, " margin reads ",
              Traits::kStatistics.size(), " running statistics (", names.empty() ? "none" : names, "), got ",
              call.statistics.size());
  detail::MarginInputs in;
  in.norms = norms;
  for (size_t i = 0; i < call.statistics.size(); ++i) in.statistic(Traits::kStatistics[i].name) = call.statistics[i];
  return in;
}

/// Where a margin reads the feature norms over cosines, as an input.
template <class Traits>
constexpr bool reads_norms() {
  return Traits::kRowInput == detail::RowInput::norms || Traits::kRowInput == detail::RowInput::norm_statistics;
}

/// The checked problem of cosines [B, C·K] (with `norms` [B] where the margin reads them).
inline detail::CosineProblem cosine_problem(const MarginCall& call, const at::Tensor& cos, const at::Tensor& norms) {
  return with_margin_named(call.margin, [&](auto options) -> detail::CosineProblem {
    using FuncOptions = decltype(options);
    using Traits = detail::MarginTraits<FuncOptions>;
    TORCH_CHECK(Traits::kNormalized, "angular: the ", call.margin,
                " margin has no loss over cosines (its logits are the raw products): use "
                "linear_margin_cross_entropy");
    TORCH_CHECK(reads_norms<Traits>() == norms.defined(), "angular: the ", call.margin, " margin ",
                reads_norms<Traits>() ? "reads the features' norms: pass norms" : "reads no norms: pass norms=None");
    return detail::cosine_problem(cos, call.target, options_of<FuncOptions>(call),
                                  margin_inputs<FuncOptions>(call, norms));
  });
}

/// The checked problem of features [B, D] and class vectors `weight` [C·K, D].
inline detail::LinearProblem linear_problem(const MarginCall& call, const at::Tensor& features,
                                            const at::Tensor& weight) {
  return with_margin_named(call.margin, [&](auto options) -> detail::LinearProblem {
    using FuncOptions = decltype(options);
    return detail::linear_problem(features, weight, call.target, options_of<FuncOptions>(call),
                                  margin_inputs<FuncOptions>(call, at::Tensor()));
  });
}

}  // namespace angular::ops
