#pragma once
// ArcLoss: class vectors W and the paper's angular loss over cos(W_j, x_i).

#include <angular/detail/module_base.hpp>
#include <angular/functional/arc.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class ArcLossImpl : public detail::LossModuleBase<ArcLossImpl, ArcLossOptions> {
 public:
  ArcLossImpl(int64_t num_classes, int64_t embedding_dim)
      : ArcLossImpl(ArcLossOptions(num_classes, embedding_dim)) {}
  explicit ArcLossImpl(ArcLossOptions options) : LossModuleBase(std::move(options)) { reset(); }

  void reset() override {
    reset_class_vectors("ArcLossOptions");
    detail::check_arc_k(options.k());
  }

  /// The loss of features [B, D] with labels [B] (int64), by functional::linear_arc_loss:
  /// no [B, C] tensor.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& target) {
    const auto [x, w] = features_and_weight(features);
    return functional::linear_arc_loss(
        x, w, target, with_module_cross_entropy(functional::ArcLossFuncOptions().k(options.k())));
  }

  /// Logits k (π/2 − θ) [B, C] for prediction: argmax is the class.
  at::Tensor logits(const at::Tensor& features) const {
    return functional::arc_logits(cosines(features), options.k());
  }

  void pretty_print(std::ostream& stream) const override {
    stream << "angular::ArcLoss(num_classes=" << options.num_classes()
           << ", embedding_dim=" << options.embedding_dim() << ", k=" << options.k() << ")";
  }
};

TORCH_MODULE(ArcLoss);

}  // namespace angular
