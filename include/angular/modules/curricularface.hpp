#pragma once
// CurricularFaceLoss: class vectors W, the curriculum weight t (buffer, the running mean of
// the label cosines, moved in training mode) and CurricularFace over cos(W_j, x_i).

#include <angular/detail/module_base.hpp>
#include <angular/functional/curricularface.hpp>

#include <torch/nn/pimpl.h>

namespace angular {

class CurricularFaceLossImpl : public detail::LossModuleBase<CurricularFaceLossImpl, CurricularFaceLossOptions> {
 public:
  CurricularFaceLossImpl(int64_t num_classes, int64_t embedding_dim)
      : CurricularFaceLossImpl(CurricularFaceLossOptions(num_classes, embedding_dim)) {}
  explicit CurricularFaceLossImpl(CurricularFaceLossOptions options) : LossModuleBase(std::move(options)) {
    reset();
  }

  /// The curriculum weight t, [1], starting at 0.
  at::Tensor t;

  void reset() override {
    reset_class_vectors("CurricularFaceLossOptions");
    detail::curricularface_params(options);
    detail::check_momentum(options.momentum());
    t = register_buffer("t", at::zeros({1}));
  }

  /// The loss of features [B, D] with labels [B] (int64); no [B, C] tensor. In training mode
  /// t first takes this batch's mean label cosine (its rows not ignored), as CurricularFace's
  /// forward does; eval mode only reads it. Inputs are checked before anything moves.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& target) {
    const auto [x, w] = features_and_weight(features);
    const auto spec =
        detail::cross_entropy_spec(with_module_cross_entropy(functional::CurricularFaceLossFuncOptions()));
    detail::check_feature_loss_inputs(x, w, target, spec, options.chunk_rows());
    const detail::MarginParams params = detail::curricularface_params(options);
    detail::check_momentum(options.momentum());
    if (is_training()) {
      const auto [labels, kept] = detail::indexable_target(target, options.ignore_index());
      const auto dtype = detail::compute_dtype(x);
      at::NoGradGuard no_grad;
      const at::Tensor label_vectors =
          detail::l2_normalize_rows(w.detach().index_select(0, detail::clamp_labels(labels, w.size(0))).to(dtype));
      detail::update_curriculum_(t, (detail::l2_normalize_rows(x.detach().to(dtype)) * label_vectors).sum(1), kept,
                                 options.momentum());
    }
    return detail::linear_margin_cross_entropy(x, w, target, detail::MarginKind::curricularface, params,
                                               detail::curriculum_rows(t, x.size(0)), spec,
                                               {true, options.chunk_rows()});
  }

  /// Logits s·cos θ [B, C] for prediction (no margin): argmax is the class.
  at::Tensor logits(const at::Tensor& features) const { return cosines(features) * options.scale(); }

  void pretty_print(std::ostream& stream) const override {
    stream << "angular::CurricularFaceLoss(num_classes=" << options.num_classes()
           << ", embedding_dim=" << options.embedding_dim() << ", scale=" << options.scale()
           << ", margin=" << options.margin() << ", momentum=" << options.momentum() << ")";
  }
};

TORCH_MODULE(CurricularFaceLoss);

}  // namespace angular
