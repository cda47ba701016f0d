#pragma once
// CombinedMarginLoss: class vectors W and the combined margin over cos(W_j, x_i).

#include <angular/detail/module_base.hpp>
#include <angular/functional/combined.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class CombinedMarginLossImpl : public detail::LossModuleBase<CombinedMarginLossImpl, CombinedMarginLossOptions> {
 public:
  CombinedMarginLossImpl(int64_t num_classes, int64_t embedding_dim)
      : CombinedMarginLossImpl(CombinedMarginLossOptions(num_classes, embedding_dim)) {}
  explicit CombinedMarginLossImpl(CombinedMarginLossOptions options) : LossModuleBase(std::move(options)) {
    reset();
  }

  void reset() override {
    reset_class_vectors("CombinedMarginLossOptions");
    detail::combined_params(options);
  }

  /// The loss of features [B, D] with labels [B] (int64); no [B, C] tensor.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& target) {
    const auto [x, w] = features_and_weight(features);
    return functional::linear_combined_margin_loss(x, w, target, with_module_cross_entropy(func_options()));
  }

  /// Logits s·cos θ [B, C] for prediction (no margin): argmax is the class.
  at::Tensor logits(const at::Tensor& features) const { return cosines(features) * options.scale(); }

  void pretty_print(std::ostream& stream) const override {
    stream << "angular::CombinedMarginLoss(num_classes=" << options.num_classes()
           << ", embedding_dim=" << options.embedding_dim() << ", scale=" << options.scale() << ", m1=" << options.m1()
           << ", m2=" << options.m2() << ", m3=" << options.m3() << ")";
  }

 private:
  functional::CombinedMarginLossFuncOptions func_options() const {
    return functional::CombinedMarginLossFuncOptions().scale(options.scale()).m1(options.m1()).m2(options.m2()).m3(
        options.m3());
  }
};

TORCH_MODULE(CombinedMarginLoss);

}  // namespace angular
