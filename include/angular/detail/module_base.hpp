#pragma once
// What the four loss modules share: their options, the class vectors `weight` [C, D] and the
// optional per-class loss weights, registered so that to(), clone() and save/load see them.

#include <angular/detail/checks.hpp>
#include <angular/detail/reference.hpp>

#include <torch/nn/cloneable.h>

#include <cmath>
#include <utility>

namespace angular::detail {

template <class Derived, class Options>
class LossModuleBase : public torch::nn::Cloneable<Derived> {
 public:
  explicit LossModuleBase(Options options) : options(std::move(options)) {}

  Options options;
  /// Class vectors [C, D]; the normalised losses use their direction only.
  at::Tensor weight;
  /// Per-class loss weights [C] (buffer "class_weight"), or undefined.
  at::Tensor class_weight;

  /// Cosines [B, C] between features [B, D] and the class vectors (any of the four losses:
  /// the angles the paper's metrics are about).
  at::Tensor cosines(const at::Tensor& features) const {
    check_features(features, weight, "weight");
    const auto dtype = compute_dtype(features, weight);
    return cosine_matrix(features.to(dtype), weight.to(dtype));
  }

  /// Features [B, D] and the class vectors in one dtype, the wider of the two, for the
  /// features-level losses (which take one dtype).
  std::pair<at::Tensor, at::Tensor> features_and_weight(const at::Tensor& features) const {
    check_features(features, weight, "weight");
    const auto dtype = at::promote_types(features.scalar_type(), weight.scalar_type());
    return {features.to(dtype), weight.to(dtype)};
  }

 protected:
  /// Validates the sizes and registers `weight` [C·vectors_per_class, D], initialised like
  /// torch::nn::Linear's (U(−1/√D, 1/√D)), and `class_weight`.
  void reset_class_vectors(const char* options_name, int64_t vectors_per_class = 1) {
    const int64_t classes = options.num_classes(), dim = options.embedding_dim();
    check_module_sizes(options_name, classes, dim);
    const double bound = 1.0 / std::sqrt(static_cast<double>(dim));
    weight = this->register_parameter("weight",
                                      at::empty({classes * vectors_per_class, dim}).uniform_(-bound, bound));
    class_weight = at::Tensor();
    if (options.weight().defined()) {
      check_cross_entropy_spec(cross_entropy_spec(options), options.weight(), classes);
      class_weight = this->register_buffer("class_weight", options.weight().clone());
    }
  }

  /// The cross-entropy settings of the module's options, with the registered class weights.
  template <class FuncOptions>
  FuncOptions with_module_cross_entropy(FuncOptions func_options) const {
    return with_cross_entropy_args(std::move(func_options), options).weight(class_weight);
  }
};

}  // namespace angular::detail
