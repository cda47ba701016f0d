#pragma once
// Data-parallel training over c10d, as torchrun launches it: the ranks of a process group, each
// with a replica of the backbone and a shard of the classes' vectors. Every global batch is cut
// into contiguous per-rank parts; the loss is that of the whole global batch (the sharded
// head's), so the backbone's gradients are summed over the ranks, not averaged.

#include <torch/torch.h>
#include <angular/distributed.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace train {

struct DataParallel {
  angular::distributed::ProcessGroupPtr group;  // null: a run of one process
  int64_t rank = 0, size = 1;

  bool active() const { return static_cast<bool>(group); }
  /// Rank 0 writes the run folder and reports; the others only compute.
  bool writes() const { return rank == 0; }
};

/// The group of torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT;
/// see angular::distributed::launch_environment) for tensors on `device`, or one process
/// where WORLD_SIZE is unset or 1. Collectives fail after `timeout` instead of hanging.
DataParallel join_ranks(torch::Device device, std::chrono::seconds timeout);

/// The rows [offset, offset + count) of a global batch of `rows` that this rank takes:
/// rows / N each, the first rows % N ranks one more.
angular::distributed::ClassRange share_of(const DataParallel& dp, int64_t rows);

/// Sums `parameters`' gradients over the ranks in one flat all-reduce (undefined ones as zeros).
void sum_gradients(const DataParallel& dp, const std::vector<torch::Tensor>& parameters);

/// Sums a tensor over the ranks in place.
void sum_over_ranks(const DataParallel& dp, torch::Tensor& t);

/// Every rank's `rows` [b_r, ...] on rank 0, in rank order (an empty list on the other ranks).
std::vector<torch::Tensor> gather_to_root(const DataParallel& dp, const torch::Tensor& rows);

/// `bytes` of every rank on rank 0, in rank order (an empty list on the other ranks).
std::vector<std::string> gather_to_root(const DataParallel& dp, const std::string& bytes);

/// The classes predicted for this rank's `features` [b, D] by the class vectors of every rank,
/// each holding `weight_shard` [C_r·K, D] of classes [offset, offset + C_r): the argmax over all
/// classes of the best sub-center's cosine (or dot product where `cosine` is false), as the
/// single-process heads' logits give it. Every rank calls it.
torch::Tensor sharded_predictions(const DataParallel& dp, const torch::Tensor& features,
                                  const torch::Tensor& weight_shard, int64_t offset, int64_t vectors_per_class,
                                  bool cosine);

}  // namespace train
