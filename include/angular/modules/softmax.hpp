#pragma once
// SoftmaxLoss: the modified softmax loss, a bias-free linear classifier with cross-entropy.

#include <angular/detail/module_base.hpp>
#include <angular/functional/softmax.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class SoftmaxLossImpl : public detail::LossModuleBase<SoftmaxLossImpl, SoftmaxLossOptions> {
 public:
  SoftmaxLossImpl(int64_t num_classes, int64_t embedding_dim)
      : SoftmaxLossImpl(SoftmaxLossOptions(num_classes, embedding_dim)) {}
  explicit SoftmaxLossImpl(SoftmaxLossOptions options) : LossModuleBase(std::move(options)) {
    reset();
  }

  void reset() override { reset_class_vectors("SoftmaxLossOptions"); }

  /// The loss of features [B, D] with labels [B] (int64); no [B, C] tensor.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& target) {
    const auto [x, w] = features_and_weight(features);
    return functional::softmax_loss(x, w, target,
                                    with_module_cross_entropy(functional::SoftmaxLossFuncOptions()));
  }

  /// Logits x Wᵀ [B, C] for prediction.
  at::Tensor logits(const at::Tensor& features) const {
    return functional::linear_logits(features, weight);
  }

  void pretty_print(std::ostream& stream) const override {
    stream << "angular::SoftmaxLoss(num_classes=" << options.num_classes()
           << ", embedding_dim=" << options.embedding_dim() << ")";
  }
};

TORCH_MODULE(SoftmaxLoss);

}  // namespace angular
