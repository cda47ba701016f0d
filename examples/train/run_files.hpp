#pragma once
// The files of a run folder, each written to a temporary file and renamed into place, so a
// crash never leaves half a file:
//   metrics.csv        one row per epoch (EpochRow)
//   steps.csv          every optimizer step's batch loss and accuracy
//   histograms.csv     target-angle histograms of the test set per epoch (paper Fig. 7)
//   test_features.csv  the last epoch's test features, up to 200 per class
//   summary.json       the run's result and options
//   checkpoint.pt      the state after the last completed epoch, with data parallel the ranks'
//                      shards beside it (checkpoint.hpp)

#include "evaluate.hpp"
#include "run_formats.hpp"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace train {

/// Has `write` fill a temporary file beside `path`, then renames it to `path`: readers see
/// the old file or the new one, never half of one.
void write_atomically(const std::filesystem::path& path, const std::function<void(const std::string&)>& write);
void write_atomically(const std::filesystem::path& path, const std::string& text);

/// One optimizer step: the loss and accuracy of its batch.
struct StepRecord {
  int64_t epoch, step;  // step counts from 1 within the epoch
  double loss, accuracy;
};

/// A CSV whose rows start with their epoch, kept in memory and rewritten whole after each
/// epoch. On resume, the rows of the epochs already done are read back once.
class EpochLog {
 public:
  EpochLog(std::filesystem::path path, std::string header) : path_(std::move(path)), header_(std::move(header)) {}
  /// Keeps the file's rows of epochs <= `epochs_done` (none with 0).
  void resume(int64_t epochs_done);
  void append(const std::string& rows);  // rows of one epoch, each ending in '\n'
 private:
  std::filesystem::path path_;
  std::string header_, rows_;
};

/// A run folder: where a Trainer's results go, and what --resume reads back.
class RunFolder {
 public:
  explicit RunFolder(const std::filesystem::path& dir);  // creates it
  /// Continuing after `epochs_done`: the metrics of those epochs; the logs keep just theirs.
  std::vector<EpochRow> resume(int64_t epochs_done);

  void write_metrics(const std::vector<EpochRow>& rows) const;
  void write_steps(const std::vector<StepRecord>& steps);
  /// Appends the epoch's histograms and replaces the test features by this epoch's.
  void write_evaluation(int64_t epoch, const Evaluation& evaluation);
  void write_summary(const nlohmann::json& summary) const;
  /// summary.json as written, or null where there is none.
  nlohmann::json read_summary() const;

 private:
  std::filesystem::path dir_;
  EpochLog steps_, histograms_;
};

}  // namespace train
