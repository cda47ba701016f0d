#pragma once
// ShardedMarginLoss: a rank's shard of the class vectors as a module over the sharded loss,
// with AdaFace's and CurricularFace's running statistics moved in training mode from the
// whole gathered batch (the loss's own gather), so that they stay equal on every rank (and
// equal to the single-process module's).

#include <angular/distributed/sharded_loss.hpp>

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <cmath>
#include <optional>
#include <vector>

namespace angular::detail {

/// The running statistics that `margin`'s modules keep (its table entry's kStatistics).
inline std::vector<Statistic> statistics_of(const distributed::Margin& margin) {
  return std::visit(
      [](const auto& o) {
        const auto& kept = MarginTraits<std::decay_t<decltype(o)>>::kStatistics;
        return std::vector<Statistic>(kept.begin(), kept.end());
      },
      margin);
}

/// A sharded module's step: this rank's inputs checked and the batch of every rank gathered
/// (into `*gathered` where given); with a `momentum` (training mode) the margin's running
/// statistics in `options` (AdaFace's norm_mean and norm_std, CurricularFace's t) then take the
/// gathered batch's rows not ignored, in place, alike on every rank; then the loss.
inline at::Tensor sharded_module_step(const at::Tensor& features, const at::Tensor& weight_shard,
                                      const at::Tensor& target, const distributed::ProcessGroupPtr& group,
                                      int64_t num_classes, const distributed::Margin& margin,
                                      const distributed::functional::ShardedLossFuncOptions& options,
                                      std::optional<double> momentum, GatheredBatch* gathered = nullptr) {
  const ShardedMargin m = sharded_margin(margin, num_classes);
  if (momentum) check_momentum(*momentum);
  const GatheredBatch batch =
      checked_batch(features, weight_shard, target, group, num_classes, m, options.chunk_classes());
  if (gathered != nullptr) *gathered = {batch.features.detach(), batch.target, batch.layout};
  if (momentum && !statistics_of(margin).empty()) {
    at::NoGradGuard no_grad;
    const at::Tensor x = batch.features.detach().to(compute_dtype(batch.features));
    const at::Tensor kept = batch.target != m.spec.ignore_index;
    at::Tensor norm_mean = options.norm_mean(), norm_std = options.norm_std(), t = options.t();
    if (m.kind == MarginKind::adaface) {
      check_statistic(norm_mean, "norm_mean", x, "features");
      check_statistic(norm_std, "norm_std", x, "features");
      update_adaface_statistics_(norm_mean, norm_std, at::linalg_vector_norm(x, 2, {1}), kept, *momentum);
    } else if (m.kind == MarginKind::curricularface) {
      check_statistic(t, "t", x, "features");
      const ShardedSpec spec = sharded_spec(group, num_classes, m, options.chunk_classes());
      update_curriculum_(t, shared_label_cosines(spec, x, weight_shard.detach().to(x.scalar_type()), batch.target),
                         kept, *momentum);
    }
  }
  return sharded_loss_of_batch(batch, weight_shard, group, num_classes, margin, m, options);
}

}  // namespace angular::detail

namespace angular::distributed {

/// The batch of every rank as a sharded loss gathered it: features [B, D], labels [B], and
/// where each rank's rows lie (layout.rows, layout.offsets).
using GatheredBatch = detail::GatheredBatch;

struct ShardedMarginLossOptions {
  ShardedMarginLossOptions(int64_t num_classes, int64_t embedding_dim, ProcessGroupPtr group,
                           Margin margin = angular::functional::ArcFaceLossFuncOptions())
      : num_classes_(num_classes),
        embedding_dim_(embedding_dim),
        group_(std::move(group)),
        margin_(std::move(margin)) {}

  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(int64_t, embedding_dim);
  TORCH_ARG(ProcessGroupPtr, group);
  /// The margin and its cross-entropy settings (see distributed::Margin).
  TORCH_ARG(Margin, margin);
  /// Classes per chunk; 0 (default) sizes them by kDefaultWorkspaceBytes.
  TORCH_ARG(int64_t, chunk_classes) = 0;
  /// Momentum of AdaFace's and CurricularFace's running statistics, in (0, 1].
  TORCH_ARG(double, momentum) = 0.01;
  /// PartialFC's class sampling in training mode (see ShardedLossFuncOptions::sample_rate): 1
  /// (default) keeps every class, the exact loss; evaluation mode keeps every class.
  TORCH_ARG(double, sample_rate) = 1.0;
  /// The CPU generator the sampled classes are drawn from; undefined: the default one.
  TORCH_ARG(at::Generator, generator) = at::Generator();
};

class ShardedMarginLossImpl : public torch::nn::Cloneable<ShardedMarginLossImpl> {
 public:
  explicit ShardedMarginLossImpl(ShardedMarginLossOptions options) : options(std::move(options)) { reset(); }

  ShardedMarginLossOptions options;
  /// This rank's class vectors [C_r·K, D], classes [classes().offset, + classes().count).
  at::Tensor weight;
  /// AdaFace: the feature norm's running mean and std (20 and 100 at first); CurricularFace: t.
  at::Tensor norm_mean, norm_std, t;

  void reset() override {
    TORCH_CHECK(options.group(), "angular: ShardedMarginLossOptions has no process group");
    detail::check_module_sizes("ShardedMarginLossOptions", options.num_classes(), options.embedding_dim());
    detail::check_momentum(options.momentum());
    detail::check_class_sampling({options.sample_rate(), options.generator(), {}});
    const detail::ShardedMargin m = detail::sharded_margin(options.margin(), options.num_classes());
    const int64_t dim = options.embedding_dim(), K = m.params.sub_centers;
    const double bound = 1.0 / std::sqrt(static_cast<double>(dim));  // torch::nn::Linear's
    weight = register_parameter("weight", at::empty({classes().count * K, dim}).uniform_(-bound, bound));
    detail::MarginInputs buffers;
    for (const detail::Statistic& s : detail::statistics_of(options.margin()))
      buffers.statistic(s.name) = register_buffer(s.name, at::full({1}, s.start));
    norm_mean = buffers.norm_mean;
    norm_std = buffers.norm_std;
    t = buffers.t;
  }

  /// The classes whose vectors this rank holds.
  ClassRange classes() const {
    return class_range(options.num_classes(), options.group()->getRank(), options.group()->getSize());
  }

  /// The loss of the whole batch gathered from every rank (see functional::sharded_margin_loss)
  /// for this rank's features [b, D] and labels [b]; every rank calls it. In training mode
  /// AdaFace's and CurricularFace's statistics first take the gathered batch's rows not ignored
  /// (as the single-process modules do), once the inputs are checked.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& target) {
    return detail::sharded_module_step(features, weight.to(features.scalar_type()), target, options.group(),
                                       options.num_classes(), options.margin(),
                                       functional::ShardedLossFuncOptions()
                                           .chunk_classes(options.chunk_classes())
                                           .norm_mean(norm_mean)
                                           .norm_std(norm_std)
                                           .t(t)
                                           .sample_rate(is_training() ? options.sample_rate() : 1.0)
                                           .generator(options.generator())
                                           .sampled_classes(sampled_classes_),
                                       is_training() ? std::optional<double>(options.momentum()) : std::nullopt,
                                       &last_batch_);
  }

  /// The batch of every rank that the last forward gathered (features detached), for metrics
  /// over the whole batch without gathering it again; undefined tensors before the first forward.
  const GatheredBatch& last_batch() const { return last_batch_; }

  /// The classes (global indices) this rank kept in the last sampled forward: the positives,
  /// then the drawn ones, each ascending; empty before one.
  const at::Tensor& sampled_classes() const { return sampled_classes_; }

  void pretty_print(std::ostream& stream) const override {
    stream << "angular::distributed::ShardedMarginLoss(num_classes=" << options.num_classes()
           << ", embedding_dim=" << options.embedding_dim() << ", classes=[" << classes().offset << ", "
           << classes().offset + classes().count << "), ranks=" << options.group()->getSize() << ")";
  }

 private:
  GatheredBatch last_batch_;
  at::Tensor sampled_classes_ = at::empty({0}, at::kLong);
};

TORCH_MODULE(ShardedMarginLoss);

}  // namespace angular::distributed
