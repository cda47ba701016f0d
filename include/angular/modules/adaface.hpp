#pragma once
// AdaFaceLoss: class vectors W, the running statistics of the feature norms (buffers
// norm_mean and norm_std, moved in training mode like BatchNorm's) and AdaFace over
// cos(W_j, x_i).

#include <angular/detail/module_base.hpp>
#include <angular/functional/adaface.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class AdaFaceLossImpl : public detail::LossModuleBase<AdaFaceLossImpl, AdaFaceLossOptions> {
 public:
  AdaFaceLossImpl(int64_t num_classes, int64_t embedding_dim)
      : AdaFaceLossImpl(AdaFaceLossOptions(num_classes, embedding_dim)) {}
  explicit AdaFaceLossImpl(AdaFaceLossOptions options) : LossModuleBase(std::move(options)) { reset(); }

  /// Running mean and standard deviation of the feature norms, [1] each; they start where
  /// AdaFace's authors start them (20 and 100).
  at::Tensor norm_mean, norm_std;

  void reset() override {
    reset_class_vectors("AdaFaceLossOptions");
    detail::adaface_params(options);
    detail::check_momentum(options.momentum());
    norm_mean = register_buffer("norm_mean", at::full({1}, 20.0));
    norm_std = register_buffer("norm_std", at::full({1}, 100.0));
  }

  /// The loss of features [B, D] with labels [B] (int64); no [B, C] tensor. In training mode
  /// the running statistics first take this batch's (its rows not ignored), as AdaFace's
  /// training step does; eval mode only reads them. Inputs are checked before anything moves.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& target) {
    const auto [x, w] = features_and_weight(features);
    const auto func_options = with_module_cross_entropy(
        functional::AdaFaceLossFuncOptions().scale(options.scale()).margin(options.margin()).h(options.h()));
    const auto spec = detail::cross_entropy_spec(func_options);
    detail::check_feature_loss_inputs(x, w, target, spec, options.chunk_rows());
    const detail::MarginParams params = detail::adaface_params(options);
    detail::check_momentum(options.momentum());
    const at::Tensor norms = at::linalg_vector_norm(x.detach(), 2, {1}, false, detail::compute_dtype(x));
    if (is_training())
      detail::update_adaface_statistics_(norm_mean, norm_std, norms, target != options.ignore_index(),
                                         options.momentum());
    return detail::linear_margin_cross_entropy(
        x, w, target, detail::MarginKind::adaface, params,
        detail::adaface_margins(norms, norm_mean, norm_std, options.margin(), options.h()), spec,
        {true, options.chunk_rows()});
  }

  /// Logits s·cos θ [B, C] for prediction (no margin): argmax is the class.
  at::Tensor logits(const at::Tensor& features) const { return cosines(features) * options.scale(); }

  void pretty_print(std::ostream& stream) const override {
    stream << "angular::AdaFaceLoss(num_classes=" << options.num_classes()
           << ", embedding_dim=" << options.embedding_dim() << ", scale=" << options.scale()
           << ", margin=" << options.margin() << ", h=" << options.h() << ", momentum=" << options.momentum() << ")";
  }
};

TORCH_MODULE(AdaFaceLoss);

}  // namespace angular
