#pragma once
// The margin losses with their class vectors split across the ranks of a c10d process group
// (model parallel, as insightface's PartialFC without sampling): rank r holds the classes
// class_range(C, r, N) of W. The loss is that of the whole batch gathered from every rank, the
// same number on every rank; `weight`'s gradient is that loss's exact gradient on the rank's
// shard, and the features' gradient that of the rank's own rows. Per step the ranks exchange
// the features and labels (an all-gather), three [B_global] vectors (two all-reduces; a third
// for CurricularFace's label cosines) and the features' gradient (a reduce-scatter): nothing
// [B, C]-sized. Call backward on every rank, as the loss is one loss.

#include <angular/detail/distributed/gather.hpp>
#include <angular/detail/distributed/sharded_cross_entropy.hpp>
#include <angular/detail/distributed/sharded_fused.hpp>
#include <angular/detail/distributed/sharded_sampling.hpp>
#include <angular/loss.hpp>

#include <variant>

namespace angular::distributed {

using ClassRange = detail::ClassRange;

/// The classes [offset, offset + count) that rank `rank` of `world_size` holds: C / N each, the
/// first C % N ranks one more.
inline ClassRange class_range(int64_t num_classes, int64_t rank, int64_t world_size) {
  TORCH_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "angular: rank ", rank,
              " is not a rank of a group of ", world_size);
  return detail::class_range(num_classes, rank, world_size);
}

/// The margin of a sharded loss, with its cross-entropy settings (reduction, ignore_index,
/// label_smoothing, weight [C] over all classes): the functional options of the loss it
/// shards (a module's func_options() gives them). Their chunk_rows is not used
/// (ShardedLossFuncOptions::chunk_classes is).
using Margin = AnyMargin;

namespace functional {

/// Options of `distributed::functional::sharded_margin_loss`.
struct ShardedLossFuncOptions {
  /// Classes per chunk of the rank's shard; 0 (default) sizes chunks by kDefaultWorkspaceBytes.
  TORCH_ARG(int64_t, chunk_classes) = 0;
  /// AdaFace's running statistics of the feature norm (one element each), read only.
  TORCH_ARG(at::Tensor, norm_mean) = at::Tensor();
  TORCH_ARG(at::Tensor, norm_std) = at::Tensor();
  /// CurricularFace's curriculum weight t (one element), read only.
  TORCH_ARG(at::Tensor, t) = at::Tensor();
  /// PartialFC's class sampling, in (0, 1]: below 1 each rank keeps the classes of its shard
  /// that label a sample of the gathered batch and draws others uniformly, without
  /// replacement, until it keeps max(positives, ceil(sample_rate·C_r)); the loss is over the
  /// kept classes of all ranks (their label smoothing and class weights too; the margin's
  /// numbers stay those of all C), and the shard's other rows get a zero gradient. 1 (default):
  /// every class, the exact loss, nothing drawn.
  TORCH_ARG(double, sample_rate) = 1.0;
  /// The CPU generator each rank draws from (undefined: the default one); seeded alike on
  /// every rank, a run repeats exactly.
  TORCH_ARG(at::Generator, generator) = at::Generator();
  /// An int64 CPU tensor that each sampled call sets to this rank's kept classes (global
  /// indices: the positives, then the drawn ones, each ascending).
  TORCH_ARG(at::Tensor, sampled_classes) = at::Tensor();
  /// A tensor that each call sets to the loss of every row of the gathered batch [B] (detached,
  /// in rank order, 0 where ignored), whatever the reduction: for what a caller reports beside
  /// the loss it differentiates (insightface's probability clamp).
  TORCH_ARG(at::Tensor, row_losses) = at::Tensor();
};

}  // namespace functional
}  // namespace angular::distributed

namespace angular::detail {

/// The kind, parameters and cross-entropy settings of a sharded margin over C classes.
struct ShardedMargin {
  MarginKind kind = MarginKind::arcface;
  MarginParams params;
  bool normalize = true;
  CrossEntropySpec spec;
};

inline ShardedMargin sharded_margin(const distributed::Margin& margin, int64_t classes) {
  return std::visit(
      [classes](const auto& o) -> ShardedMargin {
        using Traits = MarginTraits<std::decay_t<decltype(o)>>;
        TORCH_CHECK(o.sample_rate() == 1.0, "angular: a sharded loss samples classes by ShardedLossFuncOptions::"
                    "sample_rate (ShardedMarginLossOptions::sample_rate), not by its margin's options, got the "
                    "margin's sample_rate = ", o.sample_rate());
        return {Traits::kKind, Traits::params(o, classes), Traits::kNormalized, cross_entropy_spec(o)};
      },
      margin);
}

/// The margin's per-row parameters [B, P] for the gathered features, from the statistics
/// (AdaFace, CurricularFace); empty for the others (SphereFace's norms come with the logits).
inline at::Tensor sharded_row_params(const distributed::Margin& margin, const at::Tensor& features,
                                     const distributed::functional::ShardedLossFuncOptions& options) {
  const auto dtype = compute_dtype(features);
  MarginInputs in;
  in.norm_mean = options.norm_mean();
  in.norm_std = options.norm_std();
  in.t = options.t();
  const at::Tensor row_params = std::visit(
      [&](const auto& o) {
        using Traits = MarginTraits<std::decay_t<decltype(o)>>;
        if constexpr (Traits::kRowInput == RowInput::norm_statistics) in.norms = detached_norms(features);
        if constexpr (Traits::kRowInput == RowInput::norms) return at::Tensor();
        else return Traits::row_params(o, in, features, "features");
      },
      margin);
  return row_params.defined() ? row_params.to(dtype) : at::empty({0}, features.options().dtype(dtype));
}

/// `shard` (called `name`) holds this rank's K vectors per class of its classes, [C_r·K, D],
/// in the features' dtype and on their device.
inline void check_shard(const at::Tensor& shard, const char* name, const at::Tensor& features,
                        const distributed::ProcessGroupPtr& group, int64_t num_classes, int64_t K) {
  const int64_t rank = group->getRank(), ranks = group->getSize();
  const ClassRange classes = class_range(num_classes, rank, ranks);
  check_floating_matrix(shard, name);
  TORCH_CHECK(features.scalar_type() == shard.scalar_type() && features.device() == shard.device(),
              "angular: features are ", features.scalar_type(), " on ", features.device(), " but ", name, " is ",
              shard.scalar_type(), " on ", shard.device());
  TORCH_CHECK(shard.size(0) == classes.count * K && shard.size(1) == features.size(1), "angular: rank ", rank,
              " of ", ranks, " holds classes [", classes.offset, ", ", classes.offset + classes.count, ") of ",
              num_classes, ", so ", name, " must be [", classes.count * K, ", ", features.size(1), "], got ",
              shard.sizes());
}

/// The batch of every rank: features [B, D] (their gradient flows back to the ranks' rows) and
/// labels [B], checked on every rank alike, so that a bad label or D anywhere is an error
/// everywhere and no rank is left waiting.
struct GatheredBatch {
  at::Tensor features, target;
  distributed::RowLayout layout;
};

inline GatheredBatch gather_batch(const distributed::ProcessGroupPtr& group, const at::Tensor& features, const at::Tensor& target,
                                  int64_t num_classes, int64_t ignore_index) {
  const int64_t rank = group->getRank();
  // Every rank learns every rank's batch size and D before anything is gathered.
  const at::Tensor sizes = distributed::all_gather_values(group, {features.size(0), features.size(1)}, features.device());
  for (int64_t r = 0; r < group->getSize(); ++r)
    TORCH_CHECK(sizes[r][1].item<int64_t>() == features.size(1), "angular: features have D = ", features.size(1),
                " on rank ", rank, " but D = ", sizes[r][1].item<int64_t>(), " on rank ", r);
  GatheredBatch batch;
  batch.layout = distributed::row_layout(sizes.select(1, 0).contiguous());
  batch.target = distributed::all_gather_rows(group, target.contiguous(), batch.layout);
  check_labels(batch.target, "target (gathered from every rank)", batch.target, "itself", num_classes, ignore_index);
  batch.features = GatherRows::apply(features, group, batch.layout);
  return batch;
}

/// The sharded cross-entropy's settings for this rank.
inline ShardedSpec sharded_spec(const distributed::ProcessGroupPtr& group, int64_t num_classes, const ShardedMargin& m,
                                int64_t chunk_classes, const at::Tensor& row_losses = at::Tensor()) {
  ShardedSpec spec;
  spec.group = group;
  spec.num_classes = num_classes;
  spec.classes = class_range(num_classes, group->getRank(), group->getSize());
  spec.margin = m.kind;
  spec.params = m.params;
  spec.normalize = m.normalize;
  spec.spec = m.spec;
  spec.chunk_classes = chunk_classes;
  spec.row_losses = row_losses;
  return spec;
}

/// This rank's inputs of a sharded loss checked, then the batch of every rank.
inline GatheredBatch checked_batch(const at::Tensor& features, const at::Tensor& weight_shard, const at::Tensor& target,
                                   const distributed::ProcessGroupPtr& group, int64_t num_classes, const ShardedMargin& m,
                                   int64_t chunk_classes) {
  TORCH_CHECK(group, "angular: the sharded loss needs a process group, got none");
  check_floating_matrix(features, "features");
  check_shard(weight_shard, "weight_shard", features, group, num_classes, m.params.sub_centers);
  TORCH_CHECK(chunk_classes >= 0, "angular: chunk_classes must be >= 1, or 0 for automatic, got ", chunk_classes);
  check_label_tensor(target, "target", features, "features");
  check_cross_entropy_spec(m.spec, features, num_classes);
  return gather_batch(group, features, target, num_classes, m.spec.ignore_index);
}

/// The sharded loss of a batch from checked_batch: reduced, or with kNone this rank's samples'.
inline at::Tensor sharded_loss_of_batch(const GatheredBatch& batch, const at::Tensor& weight_shard,
                                        const distributed::ProcessGroupPtr& group, int64_t num_classes,
                                        const distributed::Margin& margin, const ShardedMargin& m,
                                        const distributed::functional::ShardedLossFuncOptions& options) {
  const ShardedSpec spec = sharded_spec(group, num_classes, m, options.chunk_classes(), options.row_losses());
  const at::Tensor row_params = sharded_row_params(margin, batch.features, options);
  const ClassSampling sampling{options.sample_rate(), options.generator(), options.sampled_classes()};
  check_class_sampling(sampling);
  at::Tensor loss;
  if (sampling.active()) {
    const SampledShard kept = sample_shard(spec, weight_shard, batch.target, sampling);
    loss = sharded_cross_entropy(batch.features, kept.weight, kept.target, row_params, kept.spec);
  } else {
    loss = sharded_cross_entropy(batch.features, weight_shard, batch.target, row_params, spec);
  }
  return m.spec.reduction == at::Reduction::None ? OwnRows::apply(loss, group, batch.layout) : loss;
}

}  // namespace angular::detail

namespace angular::distributed::functional {

/// The loss of the whole batch gathered over `group` for this rank's features [b, D] and
/// labels [b] (int64, in [0, num_classes) or ignore_index), with this rank's class vectors
/// `weight_shard` [C_r·K, D] (C_r = class_range(num_classes, rank, N).count, K sub-centers).
/// Every rank must call it (and backward on its result) with the same margin and options.
/// Labels out of range on any rank are an error on every rank.
inline at::Tensor sharded_margin_loss(const at::Tensor& features, const at::Tensor& weight_shard,
                                      const at::Tensor& target, const distributed::ProcessGroupPtr& group, int64_t num_classes,
                                      const Margin& margin, const ShardedLossFuncOptions& options = {}) {
  const detail::ShardedMargin m = detail::sharded_margin(margin, num_classes);
  const detail::GatheredBatch batch =
      detail::checked_batch(features, weight_shard, target, group, num_classes, m, options.chunk_classes());
  return detail::sharded_loss_of_batch(batch, weight_shard, group, num_classes, margin, m, options);
}

}  // namespace angular::distributed::functional
