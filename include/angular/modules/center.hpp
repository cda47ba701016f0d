#pragma once
// CenterLoss: the modified softmax loss plus λ · ½‖x − c_y‖² towards learned class centers.

#include <angular/detail/module_base.hpp>
#include <angular/functional/center.hpp>

#include <torch/nn/pimpl.h>

#include <ostream>

namespace angular {

inline std::ostream& operator<<(std::ostream& stream, CenterUpdate update) {
  return stream << (update == CenterUpdate::sgd ? "sgd" : "alpha");
}

class CenterLossImpl : public detail::LossModuleBase<CenterLossImpl, CenterLossOptions> {
 public:
  CenterLossImpl(int64_t num_classes, int64_t embedding_dim)
      : CenterLossImpl(CenterLossOptions(num_classes, embedding_dim)) {}
  explicit CenterLossImpl(CenterLossOptions options) : LossModuleBase(std::move(options)) { reset(); }

  /// Class centers [C, D], starting at zero: a buffer moved by the alpha rule, or a
  /// Parameter for the optimizer with CenterUpdate::sgd. Saved and loaded with the module.
  at::Tensor centers;

  void reset() override {
    reset_class_vectors("CenterLossOptions");
    detail::check_center_lambda(options.lambda());
    detail::check_center_alpha(options.alpha());
    const at::Tensor zeros = at::zeros({options.num_classes(), options.embedding_dim()});
    centers = options.update() == CenterUpdate::sgd ? register_parameter("centers", zeros)
                                                    : register_buffer("centers", zeros);
  }

  /// The loss of features [B, D] with labels [B] (int64). In training mode with the alpha
  /// rule this call is the training step's center update: the loss uses the centers as they
  /// were, then they move towards this batch's features. Eval mode never moves them.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& target) {
    const auto [x, w] = features_and_weight(features);
    at::Tensor loss = functional::center_loss(x, w, centers, target, func_options());
    if (is_training() && options.update() == CenterUpdate::alpha) {
      // center_loss has validated features, centers and target.
      detail::move_centers_(centers, features.detach(), target, options.alpha(), options.ignore_index());
    }
    return loss;
  }

  /// Logits x Wᵀ [B, C] for prediction.
  at::Tensor logits(const at::Tensor& features) const { return functional::linear_logits(features, weight); }

  void pretty_print(std::ostream& stream) const override { detail::print_module(stream, "CenterLoss", options); }
};

TORCH_MODULE(CenterLoss);

}  // namespace angular
