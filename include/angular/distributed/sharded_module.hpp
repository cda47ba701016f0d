#pragma once
// ShardedMarginLoss: a rank's shard of the class vectors as a module over
// functional::sharded_margin_loss, with AdaFace's and CurricularFace's running statistics
// moved in training mode from the whole gathered batch, so that they stay equal on every rank
// (and equal to the single-process module's).

#include <angular/distributed/sharded_loss.hpp>

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <cmath>

namespace angular::distributed {

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
    const detail::ShardedMargin m = detail::sharded_margin(options.margin(), options.num_classes());
    const int64_t dim = options.embedding_dim(), K = m.params.sub_centers;
    const double bound = 1.0 / std::sqrt(static_cast<double>(dim));  // torch::nn::Linear's
    weight = register_parameter("weight", at::empty({classes().count * K, dim}).uniform_(-bound, bound));
    if (m.kind == detail::MarginKind::adaface) {
      norm_mean = register_buffer("norm_mean", at::full({1}, 20.0));
      norm_std = register_buffer("norm_std", at::full({1}, 100.0));
    }
    if (m.kind == detail::MarginKind::curricularface) t = register_buffer("t", at::zeros({1}));
  }

  /// The classes whose vectors this rank holds.
  ClassRange classes() const {
    return class_range(options.num_classes(), options.group()->getRank(), options.group()->getSize());
  }

  /// The loss of the whole batch gathered from every rank (see functional::sharded_margin_loss)
  /// for this rank's features [b, D] and labels [b]; every rank calls it.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& target) {
    const detail::ShardedMargin m = detail::sharded_margin(options.margin(), options.num_classes());
    const bool stateful = m.kind == detail::MarginKind::adaface || m.kind == detail::MarginKind::curricularface;
    if (is_training() && stateful) update_statistics(m, features, target);
    return functional::sharded_margin_loss(features, weight.to(features.scalar_type()), target, options.group(),
                                           options.num_classes(), options.margin(),
                                           functional::ShardedLossFuncOptions()
                                               .chunk_classes(options.chunk_classes())
                                               .norm_mean(norm_mean)
                                               .norm_std(norm_std)
                                               .t(t));
  }

  void pretty_print(std::ostream& stream) const override {
    stream << "angular::distributed::ShardedMarginLoss(num_classes=" << options.num_classes()
           << ", embedding_dim=" << options.embedding_dim() << ", classes=[" << classes().offset << ", "
           << classes().offset + classes().count << "), ranks=" << options.group()->getSize() << ")";
  }

 private:
  /// The statistics take the gathered batch's rows not ignored, before the loss reads them (as
  /// the single-process modules do): one more gather of the norms (AdaFace) or of the features
  /// and the labels' cosines (CurricularFace).
  void update_statistics(const detail::ShardedMargin& m, const at::Tensor& features, const at::Tensor& target) {
    at::NoGradGuard no_grad;
    const auto& group = options.group();
    detail::check_label_tensor(target, "target", features, "features");
    const auto dtype = detail::compute_dtype(features);
    const detail::RowLayout layout =
        detail::row_layout(detail::all_gather_values(group, {features.size(0)}, features.device()).select(1, 0));
    const at::Tensor all_target = detail::all_gather_rows(group, target.contiguous(), layout);
    detail::check_labels(all_target, "target (gathered from every rank)", all_target, "itself", options.num_classes(),
                         m.spec.ignore_index);
    const at::Tensor kept = all_target != m.spec.ignore_index;
    if (m.kind == detail::MarginKind::adaface) {
      const at::Tensor norms = at::linalg_vector_norm(features.detach(), 2, {1}, false, dtype);
      detail::update_adaface_statistics_(norm_mean, norm_std, detail::all_gather_rows(group, norms, layout), kept,
                                         options.momentum());
      return;
    }
    detail::ShardedSpec spec;
    spec.group = group;
    spec.classes = classes();
    spec.params = m.params;
    spec.spec = m.spec;
    const at::Tensor x = detail::all_gather_rows(group, features.detach().to(dtype).contiguous(), layout);
    const at::Tensor label_cosines = detail::shared_label_cosines(spec, x, weight.detach().to(dtype), all_target);
    detail::update_curriculum_(t, label_cosines, kept, options.momentum());
  }
};

TORCH_MODULE(ShardedMarginLoss);

}  // namespace angular::distributed
