#pragma once
// What the loss modules share: their options, the class vectors `weight` [C, D] and the
// optional per-class loss weights, registered so that to(), clone() and save/load see them.

#include <angular/detail/checks.hpp>
#include <angular/detail/reference.hpp>

#include <torch/nn/cloneable.h>

#include <cmath>
#include <optional>
#include <ostream>
#include <string>
#include <utility>

namespace angular::detail {

/// One setting as pretty_print shows it.
template <class T>
void print_setting(std::ostream& stream, const char* name, const T& value) {
  stream << ", " << name << "=";
  if constexpr (std::is_same_v<T, bool>) stream << (value ? "true" : "false");
  else stream << value;
}

/// "angular::Name(num_classes=C, embedding_dim=D, setting=value, ...)".
template <class Options>
void print_module(std::ostream& stream, const char* name, const Options& options) {
  stream << "angular::" << name << "(num_classes=" << options.num_classes()
         << ", embedding_dim=" << options.embedding_dim();
  options.for_each_setting([&](const char* setting, const auto& value) { print_setting(stream, setting, value); });
  stream << ")";
}

template <class Derived, class Options>
class LossModuleBase : public torch::nn::Cloneable<Derived> {
 public:
  using ModuleOptions = Options;
  using FuncOptions = typename Options::FuncOptions;

  explicit LossModuleBase(Options options) : options(std::move(options)) {}

  Options options;
  /// Class vectors [C, D]; the normalised losses use their direction only.
  at::Tensor weight;
  /// Per-class loss weights [C] (buffer "class_weight"), or undefined.
  at::Tensor class_weight;

  /// Cosines [B, C] between features [B, D] and the class vectors (any loss: the angles the
  /// paper's metrics are about).
  at::Tensor cosines(const at::Tensor& features) const {
    check_features(features, weight, "weight");
    const auto dtype = compute_dtype(features, weight);
    return cosine_matrix(features.to(dtype), weight.to(dtype));
  }

  /// The module's options as its functional loss takes them, with the registered class weights.
  /// Sampled classes (sample_rate < 1) in training mode only: evaluation sees every class.
  FuncOptions func_options() const {
    return func_options_of(options).weight(class_weight).sample_rate(this->is_training() ? options.sample_rate() : 1.0);
  }

 protected:
  /// Features [B, D] and the class vectors in one dtype, the wider of the two, for the
  /// features-level losses (which take one dtype).
  std::pair<at::Tensor, at::Tensor> features_and_weight(const at::Tensor& features) const {
    check_features(features, weight, "weight");
    const auto dtype = at::promote_types(features.scalar_type(), weight.scalar_type());
    return {features.to(dtype), weight.to(dtype)};
  }

  /// Validates the sizes and registers `weight` [C·vectors_per_class, D], initialised like
  /// torch::nn::Linear's (U(−1/√D, 1/√D)), and `class_weight`.
  void reset_class_vectors(const std::string& options_name, int64_t vectors_per_class = 1) {
    const int64_t classes = options.num_classes(), dim = options.embedding_dim();
    check_module_sizes(options_name.c_str(), classes, dim);
    const double bound = 1.0 / std::sqrt(static_cast<double>(dim));
    weight = this->register_parameter("weight",
                                      at::empty({classes * vectors_per_class, dim}).uniform_(-bound, bound));
    class_weight = at::Tensor();
    if (options.weight().defined()) {
      check_cross_entropy_spec(cross_entropy_spec(options), options.weight(), classes);
      class_weight = this->register_buffer("class_weight", options.weight().clone());
    }
  }
};

}  // namespace angular::detail
