#pragma once
// The loss head of a data-parallel run: the head make_loss builds, its class vectors split by
// classes over the ranks (angular::distributed::ShardedMarginLoss), and, for the evaluation on
// rank 0, that single-process head again holding every rank's shard.

#include "data_parallel.hpp"
#include "loss_head.hpp"

#include <torch/torch.h>
#include <angular/distributed.hpp>

#include <stdexcept>
#include <variant>

namespace train {

/// This rank's shard of `full`'s class vectors (and its statistics' starting values) as a
/// ShardedMarginLoss head: every rank starts where the single-process run starts.
inline LossHead shard_loss(const LossHead& full, const DataParallel& dp, int64_t classes) {
  if (!full.margin)
    throw std::invalid_argument(
        "data-parallel runs shard the margin losses and the modified softmax; --loss center has no sharded head in "
        "angular-train");
  // The others' logits grow with the cosine.
  const bool cosine = !std::holds_alternative<angular::functional::SoftmaxLossFuncOptions>(*full.margin);
  const torch::Tensor weight = full.module->named_parameters()["weight"].detach();
  const int64_t vectors_per_class = weight.size(0) / classes;
  auto impl = std::make_shared<angular::distributed::ShardedMarginLossImpl>(
      angular::distributed::ShardedMarginLossOptions(classes, weight.size(1), dp.group, *full.margin));
  const auto range = impl->classes();
  {
    torch::NoGradGuard no_grad;
    impl->weight.copy_(weight.narrow(0, range.offset * vectors_per_class, range.count * vectors_per_class));
  }
  return {impl, [impl](const torch::Tensor& f, const torch::Tensor& y) { return impl->forward(f, y); },
          [impl, dp, range, vectors_per_class, cosine](const torch::Tensor& f) {
            return sharded_predictions(dp, f, impl->weight.detach(), range.offset, vectors_per_class, cosine);
          },
          nullptr, full.margin, full.description};
}

/// Puts every rank's class vectors, and the statistics every rank holds alike, into `full` on
/// rank 0. Every rank calls it.
inline void gather_shards(const LossHead& sharded, const LossHead& full, const DataParallel& dp) {
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> shards = gather_to_root(dp, sharded.module->named_parameters()["weight"].detach());
  if (!dp.writes()) return;
  full.module->named_parameters()["weight"].copy_(torch::cat(shards));
  auto buffers = full.module->named_buffers();
  for (const auto& b : sharded.module->named_buffers()) buffers[b.key()].copy_(b.value());
}

}  // namespace train
