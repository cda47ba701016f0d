#pragma once
// The reference trainer: a CIFAR-style ResNet and one of angular's losses, SGD (no Nesterov,
// weight decay 5e-4) on the one-cycle policy, the angle metrics every epoch, an atomic
// checkpoint after every epoch and resumption from it. Under torchrun (or its variables set by
// hand) the ranks train data-parallel: each takes its part of every global batch of
// batch_size × WORLD_SIZE images, the batch normalisations and the loss are those of the
// whole global batch (the class vectors split by classes over the ranks, none holding all of
// them), each rank writes its shard of the checkpoint and rank 0 the rest of the run folder.

#include "checkpoint.hpp"
#include "data.hpp"
#include "data_parallel.hpp"
#include "evaluate.hpp"
#include "foreach_sgd.hpp"
#include "loss_head.hpp"
#include "options.hpp"
#include "resnet.hpp"
#include "run_files.hpp"
#include "schedule.hpp"
#include "sharded_head.hpp"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

namespace train {

/// A non-finite loss stopped the run; the last checkpoint is the last good epoch.
struct Diverged : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RunResult {
  std::vector<EpochRow> rows;  // the test fields only where `written`
  nlohmann::json summary;
  bool written = true;  // this process wrote the run folder (rank 0 of a data-parallel run)
};

class Trainer {
 public:
  /// Resolves the defaults of `options`, loads the data and builds model, loss and optimizer.
  explicit Trainer(const Options& options);
  Trainer(const Trainer&) = delete;  // options_ refers into config_
  Trainer& operator=(const Trainer&) = delete;

  /// Trains the epochs not yet done (all of them, or those after the checkpoint with
  /// --resume), evaluating and writing the run folder after each.
  RunResult run();

 private:
  /// One epoch of optimizer steps; the row's test fields are left for the evaluation.
  EpochRow train_epoch(int64_t epoch, std::vector<StepRecord>& steps);
  /// The evaluation on the test set, on the process that writes (others: nullopt); every rank
  /// calls it.
  std::optional<Evaluation> evaluate_epoch();
  /// Resumes from the run folder's checkpoint, if --resume and there is one: the rows of the
  /// epochs done (on the process that writes), and the first epoch to run.
  int64_t resume(std::optional<RunFolder>& folder, std::vector<EpochRow>& rows);
  void set_schedule(int64_t step);
  nlohmann::json summary(const EpochRow& last, double wall_seconds) const;
  void note_few_steps() const;

  RunConfig config_;
  const Options& options_ = config_.options;
  torch::Device device_;
  DataParallel dp_;
  Splits data_;
  Normalizer normalize_;
  ResNet model_{nullptr};
  std::optional<HeadShard> shard_;  // data-parallel: this rank's part of the head
  LossHead head_;                   // the loss trained: the single-process head, or shard_'s
  at::Generator sampler_;           // data-parallel: the generator of shard_'s class sampling
  std::unique_ptr<ForeachSGD> optimizer_;
  int64_t steps_per_epoch_ = 0;
  OneCycle schedule_{1, 0.1};
  std::vector<double> train_seconds_;  // training time of each epoch this invocation ran
};

}  // namespace train
