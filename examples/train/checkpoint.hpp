#pragma once
// The checkpoint of a run folder, written after every epoch, from which --resume continues:
//   checkpoint.pt   one process: the epoch, the loss's settings and the training state.
//                   Data parallel: the manifest of the ranks' shards — the epoch, the loss's
//                   settings, the world size N, and each shard's file name, length and CRC-32
//   checkpoint-epoch<E>-rank<r>-of-<N>.pt
//                   data parallel: rank r's training state after epoch E (its model replica,
//                   its shard of the class vectors, its optimizer state and its class
//                   sampler's generator), with E, r and N; it resumes on another number of
//                   ranks (the head re-split by class_range), and export_head writes the
//                   whole head as one file
// Every file is CRC-framed (run_formats.hpp) and written atomically. Each rank writes its own
// shard, so no process gathers the state of the others; the manifest is written once every
// shard is, and a shard is removed once a manifest names the next: a crash at any moment
// leaves a checkpoint that resumes. The run folder is shared by the ranks (one machine, or a
// shared file system).

#include "data_parallel.hpp"

#include <torch/torch.h>

#include <filesystem>
#include <string>

namespace train {

/// What a checkpoint saves of a rank and --resume restores.
struct TrainingState {
  torch::nn::Module& model;
  torch::nn::Module& loss;
  torch::optim::Optimizer& optimizer;
  at::Generator sampler;  // the class sampler's generator; undefined where a run has none
};

/// The checkpoint (one process) or its manifest (data parallel) of the run folder `dir`.
inline std::filesystem::path checkpoint_path(const std::filesystem::path& dir) { return dir / "checkpoint.pt"; }

/// The file name of rank `rank`'s shard of the checkpoint after epoch `epoch` of a run of
/// `world_size` ranks.
std::string shard_name(int64_t epoch, int64_t rank, int64_t world_size);

/// Writes the checkpoint after `epoch` into `dir`: one process, checkpoint.pt; data parallel,
/// each rank its shard, then rank 0 the manifest, then each rank removes its shard of the
/// epoch before. `loss_settings` is the loss's description (LossHead::description). A rank
/// that cannot write stops every rank with its error. Every rank calls it.
void save_checkpoint(const std::filesystem::path& dir, int64_t epoch, const std::string& loss_settings,
                     const TrainingState& state, const DataParallel& dp);

/// Whether `dir` has a checkpoint to resume: checkpoint.pt is there (for any rank, so that the
/// ranks agree; one that cannot read it then stops them all). Every rank calls it.
bool has_checkpoint(const std::filesystem::path& dir, const DataParallel& dp);

/// Loads this rank's state from the checkpoint in `dir` (tensors onto `device`) into `state`,
/// whose parameters and buffers must have the checkpoint's shapes, after checking that it is of
/// a loss of `loss_settings`, and, data parallel, that every shard the manifest names is there
/// with its length, and those read intact (CRC-32) and the ones named. A data-parallel
/// checkpoint resumes on any number of ranks >= 2: on another one, the sharded head's class
/// vectors and their momentum are re-split by class_range, the shards read one at a time.
/// Returns the epoch it holds (>= 1). A bad file on any rank is a DataError naming it on every
/// rank. Every rank calls it.
int64_t load_checkpoint(const std::filesystem::path& dir, torch::Device device, const TrainingState& state,
                        const std::string& loss_settings, const DataParallel& dp);

/// Writes the whole sharded head of the data-parallel checkpoint in `dir` as one LibTorch
/// archive at `path` — `weight` [C·K, D] and the margin's running statistics, what
/// torch::load gives the single-process loss module — reading one shard at a time into it.
void export_head(const std::filesystem::path& dir, const std::filesystem::path& path);

}  // namespace train
