#pragma once
// The center loss (Wen et al. 2016): CE(x Wᵀ, y) + λ · mean_i ½‖x_i − c_{y_i}‖², and the
// alpha rule that moves the centers.

#include <angular/detail/margin_traits.hpp>
#include <angular/functional/softmax.hpp>
#include <angular/options/center.hpp>

#include <ATen/core/grad_mode.h>

namespace angular::detail {

/// The center term's weight λ >= 0.
inline void check_center_lambda(double lambda) {
  check_hyperparameter("lambda", lambda, lambda >= 0, "a finite number >= 0");
}

/// The center learning rate α of the alpha rule, in (0, 1].
inline void check_center_alpha(double alpha) { check_hyperparameter("alpha", alpha, alpha > 0 && alpha <= 1, "in (0, 1]"); }

/// The alpha rule's step Δc [C, D] (centers' dtype) of features, centers and target already
/// validated (CenterLoss checks them once per step in the loss: a second check would copy the
/// labels to the host again): Δc_j = Σ_{i: y_i = j} (c_j − x_i) / (1 + n_j).
inline at::Tensor center_step(const at::Tensor& centers, const at::Tensor& features, const at::Tensor& target,
                              int64_t ignore_index) {
  at::NoGradGuard no_grad;
  // Ignored samples count with weight 0 (under label 0) rather than being selected out: no
  // data-dependent shapes, so a GPU update never waits for the device. So does a label out of
  // range, which on a device the loss's check reports only later.
  const auto [target_labels, not_ignored] = indexable_target(target, ignore_index);
  const at::Tensor kept = not_ignored.logical_and((target >= 0).logical_and_(target < centers.size(0)));
  const at::Tensor labels = clamp_labels(target_labels, centers.size(0));
  const at::Tensor offsets =  // c_{y_i} − x_i, and 0 (whatever the features) for ignored samples
      (centers.index_select(0, labels) - features.to(centers.scalar_type()))
          .masked_fill_(kept.logical_not().unsqueeze(1), 0);
  const at::Tensor counts = at::zeros({centers.size(0)}, centers.options())
                                .index_add_(0, labels, kept.to(centers.scalar_type()));
  return at::zeros_like(centers).index_add_(0, labels, offsets) / (1 + counts).unsqueeze(1);
}

/// The alpha rule in place: c ← c − alpha·Δc (see center_step).
inline void move_centers_(at::Tensor& centers, const at::Tensor& features, const at::Tensor& target,
                          double alpha, int64_t ignore_index) {
  check_center_alpha(alpha);
  at::NoGradGuard no_grad;
  centers.sub_(alpha * center_step(centers, features, target, ignore_index));
}

}  // namespace angular::detail

namespace angular::functional {

/// Center loss of features [B, D], class vectors `weight` [C, D], `centers` [C, D] and
/// labels [B]. The center term is reduced like the cross-entropy (per sample for kNone, mean
/// over non-ignored samples for kMean); class weights and smoothing apply to the CE only.
inline at::Tensor center_loss(const at::Tensor& features, const at::Tensor& weight,
                              const at::Tensor& centers, const at::Tensor& target,
                              const CenterLossFuncOptions& options = {}) {
  const auto spec = detail::cross_entropy_spec(options);
  detail::check_feature_loss_inputs(features, weight, target, spec, options.chunk_rows());
  detail::check_features(features, centers, "centers");
  TORCH_CHECK(centers.size(0) == weight.size(0), "angular: centers must be [", weight.size(0), ", ",
              weight.size(1), "] like weight, got shape ", centers.sizes());
  detail::check_center_lambda(options.lambda());
  const auto dtype = detail::compute_dtype(features);
  const auto softmax = detail::with_cross_entropy_args(SoftmaxLossFuncOptions(), options);
  const at::Tensor ce =
      detail::sampled_linear_loss(detail::checked_linear_problem(features, weight, target, softmax, spec), softmax);
  return ce + options.lambda() * detail::center_term(features.to(dtype), centers.to(dtype), target,
                                                     spec.reduction, spec.ignore_index);
}

/// Wen et al.'s center update, in place and outside autograd:
///   Δc_j = Σ_{i: y_i = j} (c_j − x_i) / (1 + n_j),  c_j ← c_j − alpha · Δc_j.
/// Samples labelled ignore_index are skipped.
inline void update_centers_(at::Tensor& centers, const at::Tensor& features,
                            const at::Tensor& target, double alpha, int64_t ignore_index = -100) {
  detail::check_features(features, centers, "centers");
  detail::check_labels(target, "target", features, "features", centers.size(0), ignore_index);
  detail::move_centers_(centers, features, target, alpha, ignore_index);
}

/// center_loss with the module's options (lambda and the cross-entropy settings).
inline at::Tensor center_loss(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& centers,
                              const at::Tensor& target, const CenterLossOptions& options) {
  return center_loss(features, weight, centers, target, detail::func_options_of(options));
}

}  // namespace angular::functional
