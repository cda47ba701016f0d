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
  torch::Device device = torch::kCPU;  // where the group's collectives take their tensors

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

/// Every rank's `rows` [b_r, ...] on every rank, concatenated in rank order: [Σ b_r, ...].
torch::Tensor gather_to_all(const DataParallel& dp, const torch::Tensor& rows);

/// The class of the highest score per row over every rank's classes: each rank gives the best
/// score of its own classes, `score` [B] (double; −inf where it has none), and that class's
/// global index, `index` [B] (int64). The highest score wins and, among equal ones, the lowest
/// class, as argmax takes the first of equal values. Two [B] all-reduces (max, then min);
/// every rank calls it and gets the same [B] int64.
torch::Tensor global_argmax(const DataParallel& dp, const torch::Tensor& score, const torch::Tensor& index);

/// The error of the lowest rank that has one, as every rank sees it ("" where none has):
/// `error` is this rank's ("" for none), at most kErrorBytes of it travel. Lets a rank that
/// finds a bad file stop every rank with its message instead of leaving them waiting in the
/// next collective. Every rank calls it.
constexpr int64_t kErrorBytes = 1024;
std::string first_error(const DataParallel& dp, const std::string& error);

}  // namespace train
