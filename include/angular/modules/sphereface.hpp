#pragma once
// SphereFaceLoss: class vectors W (their directions) and A-Softmax over ‖x_i‖ and
// cos(W_j, x_i).

#include <angular/detail/module_base.hpp>
#include <angular/functional/sphereface.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class SphereFaceLossImpl : public detail::LossModuleBase<SphereFaceLossImpl, SphereFaceLossOptions> {
 public:
  SphereFaceLossImpl(int64_t num_classes, int64_t embedding_dim)
      : SphereFaceLossImpl(SphereFaceLossOptions(num_classes, embedding_dim)) {}
  explicit SphereFaceLossImpl(SphereFaceLossOptions options) : LossModuleBase(std::move(options)) { reset(); }

  void reset() override {
    reset_class_vectors("SphereFaceLossOptions");
    detail::sphereface_params(options);
  }

  /// The loss of features [B, D] with labels [B] (int64); no [B, C] tensor. For the paper's
  /// annealing set options.lambda() before each step (sphereface_lambda gives its schedule).
  at::Tensor forward(const at::Tensor& features, const at::Tensor& target) {
    const auto [x, w] = features_and_weight(features);
    return functional::linear_sphereface_loss(
        x, w, target,
        with_module_cross_entropy(
            functional::SphereFaceLossFuncOptions().margin(options.margin()).lambda(options.lambda())));
  }

  /// Logits ‖x‖·cos θ [B, C] for prediction (no margin): argmax is the class.
  at::Tensor logits(const at::Tensor& features) const {
    const at::Tensor c = cosines(features);
    return c * detail::feature_norms(features.to(c.scalar_type())).unsqueeze(1);
  }

  void pretty_print(std::ostream& stream) const override {
    stream << "angular::SphereFaceLoss(num_classes=" << options.num_classes()
           << ", embedding_dim=" << options.embedding_dim() << ", margin=" << options.margin()
           << ", lambda=" << options.lambda() << ")";
  }
};

TORCH_MODULE(SphereFaceLoss);

}  // namespace angular
