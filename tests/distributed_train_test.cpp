// The data-parallel trainer: its ResNet step on 2 and 3 processes against one process in
// float64 (a worker of this program), and angular-train itself started as 1, 2 or 3 ranks with
// torchrun's variables on the real Fashion-MNIST: the same steps as one process with twice the
// batch, resumption with the same world size only, and a failing rank ending the others.

#include <torch/torch.h>
#include <nlohmann/json.hpp>

// After LibTorch, whose logging would otherwise define CHECK over Catch's.
#include <catch2/catch.hpp>

#include "support/ranks.hpp"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using angular::test::run_ranks;

/// A new empty folder (mkdtemp: LibTorch's wheel exports its own std::filesystem::remove_all,
/// which crashes when called from this compiler's code).
struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "angular-data-parallel-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
};

/// `ranks` processes of angular-train (torchrun's variables; 1: WORLD_SIZE=1, one process) on the
/// first 250 training and 200 test images, each with `batch` images per step, writing to `out`,
/// with the arguments `extra` (the epochs at least).
angular::test::RanksOutcome train(int ranks, int64_t batch, const fs::path& out,
                                  const std::vector<std::string>& extra = {"--epochs", "1"}) {
  std::vector<std::string> args{"--loss",    "arcface", "--train-limit", "250", "--test-limit", "200",
                                "--lr",      "0.01",    "--threads",     "1",   "--seed",       "5",
                                "--batch-size", std::to_string(batch), "--out", out.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_ranks(ANGULAR_TRAIN_EXE, "", ranks, std::chrono::seconds(240), args);
}

/// A column of steps.csv (2: the loss, 3: the accuracy), in order.
std::vector<double> steps_column(const fs::path& out, int column) {
  std::ifstream in(out / "steps.csv");
  std::string line, field;
  std::getline(in, line);  // the header
  std::vector<double> values;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    for (int c = 0; c <= column; ++c) std::getline(fields, field, ',');
    values.push_back(std::stod(field));
  }
  return values;
}

std::vector<double> step_losses(const fs::path& out) { return steps_column(out, 2); }

nlohmann::json summary(const fs::path& out) { return nlohmann::json::parse(std::ifstream(out / "summary.json")); }

}  // namespace

TEST_CASE("a data-parallel ResNet step equals one process's on the whole batch (float64)", "[distributed][train]") {
  for (int ranks : {2, 3}) {
    INFO(ranks << " processes");
    CHECK(run_ranks("/proc/self/exe", "data_parallel_resnet_equals_single", ranks, std::chrono::seconds(120))
              .all_passed());
  }
}

TEST_CASE("angular-train on 2 processes takes the steps of 1 process with twice the batch", "[distributed][train]") {
  TempDir dir;
  REQUIRE(train(1, 16, dir.path / "one").all_passed());
  REQUIRE(train(2, 8, dir.path / "two").all_passed());
  const std::vector<double> one = step_losses(dir.path / "one"), two = step_losses(dir.path / "two");
  // 250 images in global batches of 16: 16 steps, the last of 10 images (5 on each rank).
  REQUIRE(one.size() == 16);
  REQUIRE(two.size() == 16);
  // The first two steps agree to float32 rounding; later ones drift apart as float32 BatchNorm
  // amplifies rounding in nearly constant channels (the float64 test above is exact).
  // The accuracies are those of the sharded head's predictions, gathered over the ranks.
  const std::vector<double> one_accuracy = steps_column(dir.path / "one", 3),
                            two_accuracy = steps_column(dir.path / "two", 3);
  for (size_t step = 0; step < 2; ++step) {
    INFO("step " << step + 1);
    CHECK(two[step] == Approx(one[step]).epsilon(1e-5));
    CHECK(two_accuracy[step] == one_accuracy[step]);
  }
  CHECK(summary(dir.path / "two")["options"]["processes"] == 2);
  CHECK(summary(dir.path / "one")["options"]["processes"] == 1);
  CHECK(summary(dir.path / "two")["test_accuracy"].get<double>() > 0);
}

TEST_CASE("a data-parallel run resumes with the same world size and refuses another", "[distributed][train]") {
  TempDir dir;
  const fs::path whole = dir.path / "whole", resumed = dir.path / "resumed";
  REQUIRE(train(2, 8, whole, {"--epochs", "2"}).all_passed());
  REQUIRE(train(2, 8, resumed, {"--epochs", "2", "--stop-after", "1"}).all_passed());
  REQUIRE(step_losses(resumed).size() == 16);
  REQUIRE(train(2, 8, resumed, {"--epochs", "2", "--resume"}).all_passed());
  const std::vector<double> a = step_losses(whole), b = step_losses(resumed);
  REQUIRE(a.size() == 32);
  REQUIRE(b.size() == 32);
  // Every rank's model, shard, optimizer and statistics come back: epoch 2 repeats exactly.
  for (size_t step = 16; step < 32; ++step) {
    INFO("step " << step + 1);
    CHECK(b[step] == Approx(a[step]).epsilon(1e-6));
  }
  const std::string checkpoint_before = [&] {
    std::ifstream in(resumed / "checkpoint.pt", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  // Another world size: every rank exits 1 and the checkpoint is left as it was.
  CHECK((train(1, 16, resumed, {"--epochs", "3", "--resume"}).status == std::vector<int>{1}));
  CHECK((train(3, 8, resumed, {"--epochs", "3", "--resume"}).status == std::vector<int>{1, 1, 1}));
  std::ifstream in(resumed / "checkpoint.pt", std::ios::binary);
  CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == checkpoint_before);
}

TEST_CASE("a rank of angular-train that fails ends the others with an error, not a hang", "[distributed][train]") {
  TempDir dir;
  // Rank 1 cannot read its data after the rendezvous; rank 0 then loses it in its first
  // collective and exits 1 too, well inside the time bound.
  const auto outcome = run_ranks(ANGULAR_TRAIN_EXE, "", 2, std::chrono::seconds(120), [&](int rank) {
    std::vector<std::string> args{"--loss", "arcface", "--train-limit", "64", "--test-limit", "64", "--epochs", "1",
                                  "--threads", "1", "--timeout", "60", "--out", (dir.path / "run").string()};
    if (rank == 1) args.insert(args.end(), {"--data", (dir.path / "no-such-folder").string()});
    return args;
  });
  CHECK_FALSE(outcome.timed_out);
  CHECK((outcome.status == std::vector<int>{1, 1}));
}
