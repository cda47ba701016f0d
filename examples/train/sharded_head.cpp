#include "sharded_head.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <variant>

namespace train {

namespace ad = angular::distributed;

namespace {

/// Fills `rows` [n, D] with the rows [first, first + n) of a [total, D] tensor that
/// uniform_(−bound, bound) would fill from the default generator, drawing all `total` rows in
/// chunks of about 2^20 numbers: uniform_ draws one number per element in order, so the chunks
/// draw what the whole tensor would and leave the generator where it would.
void draw_uniform_rows(const torch::Tensor& rows, int64_t first, int64_t total, double bound) {
  const int64_t dim = rows.size(1);
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(dim, 1));
  for (int64_t begin = 0; begin < total; begin += chunk) {
    const int64_t end = std::min(total, begin + chunk);
    const torch::Tensor drawn = torch::empty({end - begin, dim}).uniform_(-bound, bound);
    const int64_t lo = std::max(begin, first), hi = std::min(end, first + rows.size(0));
    if (lo < hi) rows.narrow(0, lo - first, hi - lo).copy_(drawn.narrow(0, lo - begin, hi - lo));
  }
}

/// The single-process module's logits() [B, C_r] over this rank's classes: the best
/// sub-center's cosine under the margin's logit for prediction (the plain product for the
/// modified softmax), computed as that module computes them, so that their argmax and ties are
/// its own.
torch::Tensor shard_logits(const HeadShard& shard, const torch::Tensor& features) {
  const torch::Tensor w = shard.weight();
  return std::visit(
      [&](const auto& margin) -> torch::Tensor {
        using Margin = std::decay_t<decltype(margin)>;
        namespace F = angular::functional;
        if constexpr (std::is_same_v<Margin, F::SoftmaxLossFuncOptions>) {
          return F::linear_logits(features, w);
        } else {
          const int64_t K = shard.spec.vectors_per_class;
          torch::Tensor c = F::cosine_matrix(features, w);
          if (K > 1) c = std::get<0>(c.view({c.size(0), c.size(1) / K, K}).max(2));
          if constexpr (std::is_same_v<Margin, F::ArcLossFuncOptions>) {
            return F::arc_logits(c, margin.k().value_or(angular::default_arc_k(shard.module->options.num_classes())));
          } else if constexpr (std::is_same_v<Margin, F::SphereFaceLossFuncOptions>) {
            return c * features.to(c.scalar_type()).norm(2, 1).clamp_min(1e-12).unsqueeze(1);  // F::normalize's floor
          } else {
            return c * margin.scale();
          }
        }
      },
      shard.spec.margin);
}

}  // namespace

HeadShard make_head_shard(const RunConfig& config, int64_t classes, int64_t dim, const DataParallel& dp,
                          double sample_rate, const at::Generator& sampler) {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  // Where the single-process head would start drawing its vectors; margin_spec and the module's
  // constructor draw numbers of their own, which the streamed draws below replace.
  const torch::Tensor start = generator.get_state();
  MarginSpec spec = margin_spec(config, classes, dim);
  auto module = std::make_shared<ad::ShardedMarginLossImpl>(
      ad::ShardedMarginLossOptions(classes, dim, dp.group, spec.margin).sample_rate(sample_rate).generator(sampler));
  generator.set_state(start);
  const int64_t K = spec.vectors_per_class;
  {
    torch::NoGradGuard no_grad;
    // The single-process modules' initialisation, torch::nn::Linear's: U(−1/√D, 1/√D).
    draw_uniform_rows(module->weight, module->classes().offset * K, classes * K,
                      1.0 / std::sqrt(static_cast<double>(dim)));
  }
  return {module, std::move(spec)};
}

LossHead as_loss_head(const HeadShard& shard) {
  const auto module = shard.module;
  return {module,
          [module](const torch::Tensor& f, const torch::Tensor& y) { return module->forward(f, y); },
          nullptr,
          nullptr,
          shard.spec.margin,
          shard.spec.description};
}

torch::Tensor shard_predictions(const HeadShard& shard, const DataParallel& dp, const torch::Tensor& features) {
  torch::NoGradGuard no_grad;
  const auto classes = shard.classes();
  const int64_t rows = features.size(0);
  const auto on_device = torch::TensorOptions().device(features.device());
  torch::Tensor best = torch::full({rows}, -std::numeric_limits<double>::infinity(), on_device.dtype(torch::kDouble));
  torch::Tensor index = torch::full({rows}, std::numeric_limits<int64_t>::max(), on_device.dtype(torch::kLong));
  if (classes.count > 0) {
    const torch::Tensor logits = shard_logits(shard, features);
    const torch::Tensor argmax = logits.argmax(1);
    best = logits.gather(1, argmax.unsqueeze(1)).squeeze(1).to(torch::kDouble);
    index = argmax + classes.offset;
  }
  return global_argmax(dp, best, index);
}

torch::Tensor gathered_batch_correct(const HeadShard& shard, const DataParallel& dp) {
  const auto& batch = shard.module->last_batch();
  TORCH_CHECK(batch.features.defined(), "the sharded head has no gathered batch before its first forward");
  return shard_predictions(shard, dp, batch.features).eq(batch.target).sum();
}

}  // namespace train
