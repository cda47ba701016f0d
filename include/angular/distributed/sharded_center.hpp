#pragma once
// The center loss with class vectors and centers split the same way over the ranks: the
// modified softmax's sharded cross-entropy plus λ·½‖x_i − c_{y_i}‖², each sample's center
// term computed by the rank that holds its label's center; one more all-reduce of [B] makes the
// whole batch's loss the same on every rank.

#include <angular/distributed/sharded_loss.hpp>
#include <angular/functional/center.hpp>

namespace angular::detail {

/// Per sample of the gathered batch, ½‖x_i − c_{y_i}‖² where this rank holds c_{y_i}, else 0 [B].
inline at::Tensor owned_center_terms(const at::Tensor& x, const at::Tensor& centers_shard, const at::Tensor& target,
                                     const ClassRange& classes, int64_t ignore_index) {
  const at::Tensor labels = local_labels(target, classes.offset, classes.count, ignore_index);
  const at::Tensor owned = (labels >= 0).to(x.scalar_type());
  if (classes.count == 0) return at::zeros({x.size(0)}, x.options());
  const at::Tensor c = centers_shard.to(x.scalar_type()).index_select(0, labels.clamp_min(0));
  return 0.5 * (x - c).pow(2).sum(1) * owned;
}

/// `local` [B] of this rank plus every other rank's, with the gradient of `local` only: the
/// sum's value on every rank, and each rank's backward through its own part.
inline at::Tensor sum_over_ranks(const distributed::ProcessGroupPtr& group, const at::Tensor& local) {
  at::Tensor total = local.detach().clone();
  distributed::all_reduce_(group, total, c10d::ReduceOp::SUM);
  return local + (total - local.detach());
}

}  // namespace angular::detail

namespace angular::distributed::functional {

/// The center loss of the whole batch gathered over `group`: CE(x Wᵀ, y) over the sharded
/// class vectors `weight_shard` [C_r, D] plus λ·½‖x_i − c_{y_i}‖² with this rank's
/// `centers_shard` [C_r, D], the center term reduced like the cross-entropy (class weights and
/// smoothing apply to the CE only), as functional::center_loss of the concatenated batch.
inline at::Tensor sharded_center_loss(const at::Tensor& features, const at::Tensor& weight_shard,
                                      const at::Tensor& centers_shard, const at::Tensor& target,
                                      const distributed::ProcessGroupPtr& group, int64_t num_classes,
                                      const angular::functional::CenterLossFuncOptions& options = {},
                                      const ShardedLossFuncOptions& sharded = {}) {
  TORCH_CHECK(group, "angular: the sharded loss needs a process group, got none");
  detail::check_floating_matrix(features, "features");
  detail::check_shard(centers_shard, "centers_shard", features, group, num_classes, 1);
  detail::check_center_lambda(options.lambda());
  const detail::ShardedMargin m = detail::sharded_margin(
      detail::with_cross_entropy_args(angular::functional::SoftmaxLossFuncOptions(), options), num_classes);
  const detail::GatheredBatch batch =
      detail::checked_batch(features, weight_shard, target, group, num_classes, m, sharded.chunk_classes());
  const detail::ShardedSpec spec = detail::sharded_spec(group, num_classes, m, sharded.chunk_classes());
  const at::Tensor ce = detail::sharded_cross_entropy(batch.features, weight_shard, batch.target,
                                                      at::empty({0}, features.options()), spec);

  const at::Tensor x = batch.features.to(detail::compute_dtype(features));
  const at::Tensor terms = detail::sum_over_ranks(  // [B]
      group, detail::owned_center_terms(x, centers_shard, batch.target, spec.classes, m.spec.ignore_index));
  if (m.spec.reduction == at::Reduction::None)
    return detail::OwnRows::apply(ce + options.lambda() * terms, group, batch.layout);
  if (m.spec.reduction == at::Reduction::Sum) return ce + options.lambda() * terms.sum();
  return ce + options.lambda() * terms.sum() / (batch.target != m.spec.ignore_index).sum();
}

/// Wen et al.'s center update (functional::update_centers_) of this rank's centers from the
/// whole batch gathered over `group`: every rank calls it with its features [b, D] and labels.
inline void update_sharded_centers_(at::Tensor& centers_shard, const at::Tensor& features, const at::Tensor& target,
                                    const distributed::ProcessGroupPtr& group, int64_t num_classes, double alpha,
                                    int64_t ignore_index = -100) {
  TORCH_CHECK(group, "angular: the sharded update needs a process group, got none");
  detail::check_label_tensor(target, "target", features, "features");
  detail::check_shard(centers_shard, "centers_shard", features, group, num_classes, 1);
  at::NoGradGuard no_grad;
  const detail::GatheredBatch batch =
      detail::gather_batch(group, features.detach(), target, num_classes, ignore_index);
  const ClassRange classes = class_range(num_classes, group->getRank(), group->getSize());
  // Samples whose label is elsewhere count as ignored here.
  const at::Tensor labels = detail::local_labels(batch.target, classes.offset, classes.count, ignore_index);
  if (classes.count > 0) detail::move_centers_(centers_shard, batch.features, labels, alpha, -1);
}

}  // namespace angular::distributed::functional
