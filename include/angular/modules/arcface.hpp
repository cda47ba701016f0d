#pragma once
// ArcFaceLoss: class vectors W and ArcFace over cos(W_j, x_i).

#include <angular/detail/module_base.hpp>
#include <angular/functional/arcface.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class ArcFaceLossImpl : public detail::LossModuleBase<ArcFaceLossImpl, ArcFaceLossOptions> {
 public:
  ArcFaceLossImpl(int64_t num_classes, int64_t embedding_dim)
      : ArcFaceLossImpl(ArcFaceLossOptions(num_classes, embedding_dim)) {}
  explicit ArcFaceLossImpl(ArcFaceLossOptions options) : LossModuleBase(std::move(options)) {
    reset();
  }

  void reset() override {
    reset_class_vectors("ArcFaceLossOptions");
    detail::check_arcface_scale_margin(options.scale(), options.margin());
  }

  /// The loss of features [B, D] with labels [B] (int64), by functional::linear_arcface_loss:
  /// no [B, C] tensor.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& target) {
    const auto [x, w] = features_and_weight(features);
    return functional::linear_arcface_loss(
        x, w, target,
        with_module_cross_entropy(
            functional::ArcFaceLossFuncOptions()
                .scale(options.scale())
                .margin(options.margin())
                .exact_gradient(options.exact_gradient())));
  }

  /// Logits s·cos θ [B, C] for prediction (no margin): argmax is the class.
  at::Tensor logits(const at::Tensor& features) const { return cosines(features) * options.scale(); }

  void pretty_print(std::ostream& stream) const override {
    stream << "angular::ArcFaceLoss(num_classes=" << options.num_classes()
           << ", embedding_dim=" << options.embedding_dim() << ", scale=" << options.scale()
           << ", margin=" << options.margin() << ")";
  }
};

TORCH_MODULE(ArcFaceLoss);

}  // namespace angular
