// The data-parallel trainer: its ResNet step on 2 and 3 processes against one process in
// float64 and its sharded head's evaluation against the single-process head's (workers of this
// program), and angular-train itself started as 1, 2 or 3 ranks with torchrun's variables on
// the real Fashion-MNIST: the same steps as one process with twice the batch, resumption with
// the same or another number of ranks, the whole head exported, a checkpoint of one shard per
// rank, damaged shards refused, class
// sampling, no process holding every class's vectors, and a failing rank ending the others.

#include <torch/torch.h>
#include <nlohmann/json.hpp>

// After LibTorch, whose logging would otherwise define CHECK over Catch's.
#include <catch2/catch.hpp>

#include "support/distributed_workers.hpp"
#include "support/fashion_mnist_files.hpp"
#include "support/ranks.hpp"

#include <angular/loss.hpp>
#include <train/checkpoint.hpp>
#include <train/run_formats.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
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
/// With `logs`, each rank's output goes to logs/rank<r>.txt.
angular::test::RanksOutcome run_train(int ranks, int64_t batch, const fs::path& out,
                                  const std::vector<std::string>& extra = {"--epochs", "1"},
                                  const fs::path& logs = {}) {
  std::vector<std::string> args{"--loss",    "arcface", "--train-limit", "250", "--test-limit", "200",
                                "--lr",      "0.01",    "--threads",     "1",   "--seed",       "5",
                                "--batch-size", std::to_string(batch), "--out", out.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  if (logs.empty()) return run_ranks(ANGULAR_TRAIN_EXE, "", ranks, std::chrono::seconds(240), args);
  fs::create_directories(logs);
  std::vector<std::string> shell{"-c", "exec \"$0\" \"$@\" >\"" + logs.string() + "/rank$RANK.txt\" 2>&1",
                                 ANGULAR_TRAIN_EXE};
  shell.insert(shell.end(), args.begin(), args.end());
  return run_ranks("/bin/sh", "", ranks, std::chrono::seconds(240), shell);
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

/// The 32 step losses of two-epoch runs of 2 ranks of 8 images: `resumed` (stopped after epoch 1
/// and resumed) repeats `whole`'s epoch 2, as every rank's state came back.
void check_epoch_2_repeats(const fs::path& whole, const fs::path& resumed) {
  const std::vector<double> a = step_losses(whole), b = step_losses(resumed);
  REQUIRE(a.size() == 32);
  REQUIRE(b.size() == 32);
  for (size_t step = 16; step < 32; ++step) {
    INFO("step " << step + 1);
    CHECK(b[step] == Approx(a[step]).epsilon(1e-6));
  }
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

/// A copy of the files of the run folder `from` in a new folder `to`.
void copy_run(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) fs::copy_file(entry.path(), to / entry.path().filename());
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

/// The lines each rank of `ranks` printed into logs/rank<r>.txt.
std::vector<std::vector<std::string>> rank_lines(const fs::path& logs, int ranks) {
  std::vector<std::vector<std::string>> out(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    std::ifstream in(logs / ("rank" + std::to_string(r) + ".txt"));
    for (std::string line; std::getline(in, line);) out[static_cast<size_t>(r)].push_back(line);
  }
  return out;
}

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
  REQUIRE(run_train(1, 16, dir.path / "one").all_passed());
  REQUIRE(run_train(2, 8, dir.path / "two").all_passed());
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

TEST_CASE("a data-parallel run resumes with the same world size, and one process is refused its checkpoint",
          "[distributed][train]") {
  TempDir dir;
  const fs::path whole = dir.path / "whole", resumed = dir.path / "resumed";
  REQUIRE(run_train(2, 8, whole, {"--epochs", "2"}).all_passed());
  REQUIRE(run_train(2, 8, resumed, {"--epochs", "2", "--stop-after", "1"}).all_passed());
  REQUIRE(step_losses(resumed).size() == 16);
  REQUIRE(run_train(2, 8, resumed, {"--epochs", "2", "--resume"}).all_passed());
  // Every rank's model, shard, optimizer and statistics come back: epoch 2 repeats exactly.
  check_epoch_2_repeats(whole, resumed);
  const std::string checkpoint_before = [&] {
    std::ifstream in(resumed / "checkpoint.pt", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  // One process (its head is not sharded): it exits 1 and the checkpoint is left as it was.
  CHECK((run_train(1, 16, resumed, {"--epochs", "3", "--resume"}).status == std::vector<int>{1}));
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

TEST_CASE("the sharded head's predictions and evaluation equal the single-process head's", "[distributed][train]") {
  for (int ranks : {2, 3}) {
    INFO(ranks << " processes");
    CHECK(run_ranks("/proc/self/exe", "sharded_evaluation_equals_single", ranks, std::chrono::seconds(120))
              .all_passed());
  }
}

TEST_CASE("angular-train with --sample-rate on 2 processes checkpoints per rank, resumes as if uninterrupted, "
          "and refuses a missing or damaged shard",
          "[distributed][train]") {
  TempDir dir;
  const fs::path whole = dir.path / "whole", resumed = dir.path / "resumed", epoch1 = dir.path / "epoch1";
  const std::vector<std::string> run{"--epochs", "2", "--sample-rate", "0.5"};
  REQUIRE(run_train(2, 8, whole, run).all_passed());
  REQUIRE(run_train(2, 8, resumed, with(run, {"--stop-after", "1"})).all_passed());
  for (int64_t r = 0; r < 2; ++r) {
    // Each rank's shard holds its class sampler's generator.
    const std::string bytes = read_bytes(resumed / train::shard_name(1, r, 2));
    const std::string_view archive = train::unframe_checkpoint(bytes, "shard");
    torch::serialize::InputArchive shard;
    shard.load_from(archive.data(), archive.size());
    torch::Tensor sampler;
    CHECK(shard.try_read("class_sampler", sampler));
    CHECK(sampler.numel() > 0);
  }
  copy_run(resumed, epoch1);
  REQUIRE(run_train(2, 8, resumed, with(run, {"--resume"})).all_passed());
  check_epoch_2_repeats(whole, resumed);
  CHECK(summary(resumed)["test_accuracy"] == summary(whole)["test_accuracy"]);
  CHECK(summary(resumed)["options"]["sample_rate"] == 0.5);
  // The manifest names epoch 2's shards; epoch 1's are gone.
  for (int64_t r = 0; r < 2; ++r) {
    CHECK(fs::exists(resumed / train::shard_name(2, r, 2)));
    CHECK_FALSE(fs::exists(resumed / train::shard_name(1, r, 2)));
  }

  // Damaged copies of the epoch-1 checkpoint: every rank exits 1 with one line naming the file.
  int attempt = 0;
  const auto refused = [&](const std::string& what, const std::string& file, const std::string& message,
                           const std::function<void(const fs::path&)>& damage) {
    INFO(what);
    const fs::path run_dir = dir.path / ("damaged" + std::to_string(attempt)),
                   logs = dir.path / ("logs" + std::to_string(attempt++));
    copy_run(epoch1, run_dir);
    damage(run_dir);
    const auto outcome = run_train(2, 8, run_dir, with(run, {"--resume"}), logs);
    CHECK((outcome.status == std::vector<int>{1, 1}));
    for (const auto& lines : rank_lines(logs, 2)) {
      REQUIRE(lines.size() == 1);
      CHECK_THAT(lines[0], Catch::StartsWith("angular-train: error: " + (run_dir / file).string() + ": ") &&
                               Catch::Contains(message));
    }
  };
  const std::string shard0 = train::shard_name(1, 0, 2), shard1 = train::shard_name(1, 1, 2);
  refused("a missing shard", shard1, "missing (checkpoint.pt names it as rank 1's shard)",
          [&](const fs::path& d) { fs::remove(d / shard1); });
  refused("a truncated shard", shard0, "bytes, checkpoint.pt says", [&](const fs::path& d) {
    const std::string bytes = read_bytes(d / shard0);
    write_bytes(d / shard0, bytes.substr(0, bytes.size() - 100));
  });
  refused("a bit flipped in a shard", shard1, "corrupt (its CRC-32 does not match)", [&](const fs::path& d) {
    std::string bytes = read_bytes(d / shard1);
    bytes[bytes.size() / 2] ^= 0x10;
    write_bytes(d / shard1, bytes);
  });
  refused("another epoch's shard", shard1, "not the shard checkpoint.pt names", [&](const fs::path& d) {
    fs::remove(d / shard1);
    fs::copy_file(resumed / train::shard_name(2, 1, 2), d / shard1);
  });
}

TEST_CASE("no process of a data-parallel angular-train allocates every class's vectors", "[distributed][train]") {
  TempDir dir;
  fs::create_directories(dir.path / "data");
  angular::test::write_tiny_fashion_mnist(dir.path / "data", 32);
  // W: 10 classes x 4000 sub-centers x 1024 dimensions in float32, 164 MB, a multiple of any
  // other tensor of a run on this tiny data.
  const int64_t w_bytes = int64_t{10} * 4000 * 1024 * 4;
  const auto args = [&](const std::string& name, int64_t batch) {
    return std::vector<std::string>{"--data", (dir.path / "data").string(), "--loss", "subcenter-arcface",
                                    "--sub-centers", "4000", "--embedding-dim", "1024", "--epochs", "1",
                                    "--batch-size", std::to_string(batch), "--threads", "1",
                                    "--out", (dir.path / name).string()};
  };
  // The largest allocation and the peak of each rank.
  const auto allocations = [&](const std::string& name, int ranks) {
    const fs::path records = dir.path / (name + "-allocations");
    fs::create_directories(records);
    ::setenv(angular::test::kAllocationsVariable, records.c_str(), 1);
    const auto outcome =
        run_ranks("/proc/self/exe", "angular-train", ranks, std::chrono::seconds(300), args(name, 32 / ranks / 2));
    ::unsetenv(angular::test::kAllocationsVariable);
    REQUIRE(outcome.all_passed());
    std::vector<std::pair<int64_t, int64_t>> out;
    for (int r = 0; r < ranks; ++r) {
      std::ifstream in(records / ("rank" + std::to_string(r)));
      int64_t largest = 0, peak = 0;
      REQUIRE(in >> largest >> peak);
      out.emplace_back(largest, peak);
    }
    return out;
  };
  // One process holds W whole: the record shows it.
  const auto one = allocations("one", 1);
  CHECK(one[0].first >= w_bytes);
  // Two: each allocates its half (seen, so a whole W would be too), never W. (The peaks are
  // not compared: the sharded backward's temporaries of the shard's size outweigh W.)
  for (const auto& [largest, peak] : allocations("two", 2)) {
    INFO("largest allocation " << largest << " bytes, peak " << peak << " bytes; W " << w_bytes);
    CHECK(largest >= w_bytes / 2);
    CHECK(largest < w_bytes);
  }
}

TEST_CASE("a data-parallel checkpoint resumes on another number of ranks as on its own, and exports the whole head",
          "[distributed][train]") {
  TempDir dir;
  // 2 ranks of 12 images and 3 of 8 take the same steps (a global batch of 24; synchronised
  // BatchNorm and the sharded head): resumed on the other number of ranks, the checkpoint's run
  // goes on as resumed on its own, to float32 rounding for the first steps (later ones drift
  // apart, as BatchNorm amplifies rounding; see the test of 1 and 2 processes above). A head or
  // momentum re-split wrongly would change them at once.
  const auto batch = [](int ranks) { return ranks == 2 ? 12 : 8; };
  for (const auto& [saved, resumed] : {std::pair{2, 3}, std::pair{3, 2}}) {
    INFO(saved << " ranks resumed on " << resumed);
    const fs::path stopped = dir.path / ("stopped" + std::to_string(saved)),
                   own = dir.path / ("own" + std::to_string(saved)), other = dir.path / ("other" + std::to_string(saved));
    REQUIRE(run_train(saved, batch(saved), stopped, {"--epochs", "2", "--stop-after", "1"}).all_passed());
    copy_run(stopped, own);
    copy_run(stopped, other);
    REQUIRE(run_train(saved, batch(saved), own, {"--epochs", "2", "--resume"}).all_passed());
    REQUIRE(run_train(resumed, batch(resumed), other, {"--epochs", "2", "--resume"}).all_passed());
    const std::vector<double> a = step_losses(own), b = step_losses(other);
    REQUIRE(a.size() == 22);  // 250 images in global batches of 24: 11 steps per epoch
    REQUIRE(b.size() == 22);
    for (size_t step = 11; step < 13; ++step) {
      INFO("step " << step + 1);
      CHECK(b[step] == Approx(a[step]).epsilon(1e-5));
    }
    CHECK(summary(other)["options"]["processes"] == resumed);
  }

  // The whole head of the 3-rank checkpoint in one file: its shards' class vectors in rank order,
  // which the single-process module loads.
  const fs::path stopped = dir.path / "stopped3", head = dir.path / "head.pt";
  REQUIRE(run_ranks(ANGULAR_TRAIN_EXE, "", 1, std::chrono::seconds(60),
                    {"--export-head", head.string(), "--out", stopped.string()})
              .all_passed());
  std::vector<torch::Tensor> shards;
  for (int64_t r = 0; r < 3; ++r) {
    const std::string bytes = read_bytes(stopped / train::shard_name(1, r, 3));
    const std::string_view archive = train::unframe_checkpoint(bytes, "shard");
    torch::serialize::InputArchive shard, loss;
    shard.load_from(archive.data(), archive.size());
    torch::Tensor rows;
    REQUIRE(shard.try_read("loss", loss));
    REQUIRE(loss.try_read("weight", rows));
    shards.push_back(rows);
  }
  const torch::Tensor whole = torch::cat(shards);
  CHECK(whole.size(0) == 10);
  angular::ArcFaceLoss single(angular::ArcFaceLossOptions(10, whole.size(1)));
  torch::load(single, head.string());
  CHECK(torch::equal(single->weight, whole));
}
