#pragma once
// The module of any margin in the table (detail/margin_traits.hpp): the class vectors `weight`,
// the running statistics of the margins that keep them, forward() on the features-level path,
// logits() for prediction and pretty_print(). A margin's module is a class that names itself:
//   class ArcFaceLossImpl : public detail::MarginModule<ArcFaceLossImpl, ArcFaceLossOptions> {
//    public:
//     using MarginModule::MarginModule;
//   };
//   TORCH_MODULE(ArcFaceLoss);

#include <angular/detail/margin_loss.hpp>
#include <angular/detail/module_base.hpp>

#include <ATen/core/grad_mode.h>

#include <string>

namespace angular::detail {

/// A training step's move of the running statistics of the margin of `Traits`: AdaFace's
/// norm_mean and norm_std from the batch's feature norms `norms` (detached), CurricularFace's
/// t from its label cosines of features x and class vectors w; rows labelled ignore_index
/// take no part. Inputs are checked by the caller.
template <class Traits>
void update_margin_statistics_(at::Tensor& norm_mean, at::Tensor& norm_std, at::Tensor& t, const at::Tensor& x,
                               const at::Tensor& w, const at::Tensor& target, const at::Tensor& norms,
                               int64_t ignore_index, double momentum) {
  if constexpr (Traits::kRowInput == RowInput::norm_statistics) {
    update_adaface_statistics_(norm_mean, norm_std, norms, target != ignore_index, momentum);
  } else if constexpr (Traits::kRowInput == RowInput::curriculum) {
    const auto [labels, kept] = indexable_target(target, ignore_index);
    const auto dtype = compute_dtype(x);
    at::NoGradGuard no_grad;
    const at::Tensor label_vectors =
        l2_normalize_rows(w.detach().index_select(0, clamp_labels(labels, w.size(0))).to(dtype));
    update_curriculum_(t, (l2_normalize_rows(x.detach().to(dtype)) * label_vectors).sum(1), kept, momentum);
  }
}

/// The logits without margin [B, C] of features [B, D] and class vectors `weight` [C·K, D]
/// for prediction: argmax is the class.
template <class FuncOptions>
at::Tensor prediction_logits(const FuncOptions& options, const at::Tensor& features, const at::Tensor& weight) {
  using Traits = MarginTraits<FuncOptions>;
  check_features(features, weight, "weight");
  if constexpr (!Traits::kNormalized) {
    return linear_logits(features, weight);
  } else {
    const auto dtype = compute_dtype(features, weight);
    const at::Tensor cos = cosine_matrix(features.to(dtype), weight.to(dtype));
    return Traits::logits(options, class_cosines(cos, Traits::sub_centers(options)), features);
  }
}

/// The checks a module's training step runs before its running statistics move: the inputs,
/// the margin's settings and the momentum. Returns the cross-entropy settings.
template <class FuncOptions>
CrossEntropySpec check_statistics_step(const at::Tensor& x, const at::Tensor& w, const at::Tensor& target,
                                       const FuncOptions& options, double momentum) {
  using Traits = MarginTraits<FuncOptions>;
  const CrossEntropySpec spec = cross_entropy_spec(options);
  check_feature_loss_inputs(x, w, target, spec, options.chunk_rows(), Traits::sub_centers(options));
  Traits::params(options, w.size(0) / Traits::sub_centers(options));
  check_momentum(momentum);
  return spec;
}

/// A training step of a margin's running statistics in place (see update_margin_statistics_).
template <class Traits>
void step_statistics_(MarginInputs& in, const at::Tensor& x, const at::Tensor& w, const at::Tensor& target,
                      int64_t ignore_index, double momentum) {
  update_margin_statistics_<Traits>(in.norm_mean, in.norm_std, in.t, x, w, target, in.norms, ignore_index, momentum);
}

template <class Derived, class Options>
class MarginModule : public LossModuleBase<Derived, Options> {
  using Traits = MarginTraits<typename Options::FuncOptions>;
  static constexpr bool kKeepsStatistics =
      Traits::kRowInput == RowInput::norm_statistics || Traits::kRowInput == RowInput::curriculum;

 public:
  MarginModule(int64_t num_classes, int64_t embedding_dim) : MarginModule(Options(num_classes, embedding_dim)) {}
  explicit MarginModule(Options options) : LossModuleBase<Derived, Options>(std::move(options)) { reset(); }

  /// The running statistics of the margins that keep them (the table's kStatistics): AdaFace's
  /// norm_mean and norm_std, [1] each; CurricularFace's t, [1]. Buffers, moved in training mode;
  /// undefined for the other margins.
  at::Tensor norm_mean, norm_std, t;

  void reset() override {
    const auto settings = func_options_of(this->options);
    Traits::params(settings, this->options.num_classes());
    check_class_sampling(class_sampling(settings));
    if constexpr (kKeepsStatistics) check_momentum(this->options.momentum());
    this->reset_class_vectors(c10::str(Traits::kModule, "Options"), Traits::sub_centers(settings));
    MarginInputs buffers;
    for (const Statistic& s : Traits::kStatistics)
      buffers.statistic(s.name) = this->register_buffer(s.name, at::full({1}, s.start));
    norm_mean = buffers.norm_mean;
    norm_std = buffers.norm_std;
    t = buffers.t;
  }

  /// The loss of features [B, D] with labels [B] (int64), on the features-level path: no
  /// [B, C] tensor. In training mode AdaFace's and CurricularFace's statistics first take this
  /// batch's rows not ignored, as their authors' training steps do; eval mode only reads them.
  /// Inputs are checked before anything moves.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& target) {
    const auto [x, w] = this->features_and_weight(features);
    const auto options = this->func_options();
    if constexpr (!kKeepsStatistics) {
      return feature_margin_loss(x, w, target, options);
    } else {
      const CrossEntropySpec spec = check_statistics_step(x, w, target, options, this->options.momentum());
      MarginInputs in;
      in.norm_mean = norm_mean;
      in.norm_std = norm_std;
      in.t = t;
      if constexpr (Traits::kRowInput == RowInput::norm_statistics) in.norms = detached_norms(x);
      if (this->is_training()) step_statistics_<Traits>(in, x, w, target, spec.ignore_index, this->options.momentum());
      return sampled_linear_loss(checked_linear_problem(x, w, target, options, spec, in), options);
    }
  }

  /// Logits without margin [B, C] for prediction: argmax is the class.
  at::Tensor logits(const at::Tensor& features) const {
    return prediction_logits(this->func_options(), features, this->weight);
  }

  void pretty_print(std::ostream& stream) const override { print_module(stream, Traits::kModule, this->options); }
};

}  // namespace angular::detail
