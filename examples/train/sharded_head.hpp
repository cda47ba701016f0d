#pragma once
// The loss head of a data-parallel run: the head make_loss builds, its class vectors split by
// classes over the ranks (angular::distributed::ShardedMarginLoss). No rank ever holds the
// vectors of every class: each draws its own at the start, predicts over its own, and the
// ranks agree on the predicted class by all-reducing each one's best.

#include "data_parallel.hpp"
#include "loss_head.hpp"

#include <torch/torch.h>
#include <angular/distributed.hpp>

#include <memory>

namespace train {

/// This rank's part of a data-parallel run's head.
struct HeadShard {
  std::shared_ptr<angular::distributed::ShardedMarginLossImpl> module;
  MarginSpec spec;

  angular::distributed::ClassRange classes() const { return module->classes(); }
  /// This rank's class vectors [C_r·K, D], detached.
  torch::Tensor weight() const { return module->weight.detach(); }
};

/// This rank's shard of the head make_loss would build for `config`, starting from the vectors
/// the single-process head starts from: the default generator's next C·K·D draws are streamed
/// through in chunks (as many as that head's initialisation takes, in its order), and this
/// rank keeps its rows. Class sampling (rate < 1) draws from `sampler`.
HeadShard make_head_shard(const RunConfig& config, int64_t classes, int64_t dim, const DataParallel& dp,
                          double sample_rate, const at::Generator& sampler);

/// The shard as the head the trainer steps (loss and module; no predict or class_vectors: see
/// shard_predictions and evaluate_sharded).
LossHead as_loss_head(const HeadShard& shard);

/// The classes predicted for `features` [B, D] (the same on every rank) by every rank's class
/// vectors, as the single-process head's argmax of its logits gives them: each rank's best of
/// its own classes' logits, then the best over the ranks, the lowest class among equal logits.
/// Every rank calls it; [B] int64.
torch::Tensor shard_predictions(const HeadShard& shard, const DataParallel& dp, const torch::Tensor& features);

/// The correct predictions (0-dim int64) in the batch that the shard's last forward gathered
/// from every rank: the same count on every rank, no features gathered again.
torch::Tensor gathered_batch_correct(const HeadShard& shard, const DataParallel& dp);

}  // namespace train
