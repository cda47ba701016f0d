// The class-sharded losses on 2, 3 and 4 processes: each test case starts this program as
// the ranks of a group (tests/support/ranks.hpp), which run a worker of
// tests/distributed_ranks.cpp and exit 0 when its checks pass.

#include "support/distributed_workers.hpp"

#include <angular/distributed.hpp>

// After LibTorch, whose logging would otherwise define CHECK over Catch's.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "support/ranks.hpp"

#include <iostream>

namespace {

namespace dist = angular::distributed;
using angular::test::run_ranks;

std::string self_path;

}  // namespace

TEST_CASE("class ranges split C classes over N ranks, the first C % N one more", "[distributed]") {
  std::vector<int64_t> offsets, counts;
  for (int64_t r = 0; r < 4; ++r) {
    const auto range = dist::class_range(11, r, 4);
    offsets.push_back(range.offset), counts.push_back(range.count);
  }
  CHECK((offsets == std::vector<int64_t>{0, 3, 6, 9}));
  CHECK((counts == std::vector<int64_t>{3, 3, 3, 2}));
  CHECK(dist::class_range(2, 3, 4).count == 0);
  CHECK(dist::class_range(2, 3, 4).offset == 2);
  CHECK_THROWS_WITH(dist::class_range(10, 4, 4), Catch::Contains("rank 4"));
}

TEST_CASE("sharded losses on 2, 3 and 4 processes equal the single-process loss and gradients", "[distributed]") {
  for (int ranks : {2, 3, 4}) {
    INFO(ranks << " processes");
    CHECK(run_ranks(self_path, "sharded_equals_single", ranks, std::chrono::seconds(240)).all_passed());
  }
}

TEST_CASE("the fused sharded rows equal the composite sharded path in every dtype, C < N, empty ranks", "[distributed]") {
  for (int ranks : {3, 4}) {
    INFO(ranks << " processes");
    CHECK(run_ranks(self_path, "fused_equals_composite", ranks, std::chrono::seconds(240)).all_passed());
  }
}

TEST_CASE("the sharded module over two training steps equals the single-process module", "[distributed]") {
  CHECK(run_ranks(self_path, "module_equals_single", 3, std::chrono::seconds(120)).all_passed());
}

TEST_CASE("the center loss with sharded vectors and centers equals the single-process one", "[distributed]") {
  for (int ranks : {2, 4}) {
    INFO(ranks << " processes");
    CHECK(run_ranks(self_path, "center_equals_single", ranks, std::chrono::seconds(120)).all_passed());
  }
}

TEST_CASE("a sharded step sends the gathered rows, two [B] all-reduces and one reduce-scatter", "[distributed]") {
  CHECK(run_ranks(self_path, "communication", 3, std::chrono::seconds(120)).all_passed());
}

TEST_CASE("a bad label or D on one rank is an error on every rank, a NaN feature a NaN loss", "[distributed]") {
  CHECK(run_ranks(self_path, "bad_input_everywhere", 3, std::chrono::seconds(120)).all_passed());
}

TEST_CASE("sampled classes: the loss over the kept classes, positives kept, one seed one draw", "[distributed]") {
  for (int ranks : {2, 3, 4}) {
    INFO(ranks << " processes");
    CHECK(run_ranks(self_path, "sampled_equals_kept_classes", ranks, std::chrono::seconds(300)).all_passed());
  }
}

TEST_CASE("sample_rate 1 is bitwise the exact sharded loss and draws nothing", "[distributed]") {
  CHECK(run_ranks(self_path, "unsampled_is_exact", 2, std::chrono::seconds(120)).all_passed());
}

TEST_CASE("a loss's graph does not keep its process group alive and its backward then says why", "[distributed]") {
  CHECK(run_ranks(self_path, "group_not_kept_by_graph", 2, std::chrono::seconds(120)).all_passed());
}

TEST_CASE("a rank that dies ends the others with an error, not a hang", "[distributed]") {
  const auto outcome = run_ranks(self_path, "dead_rank", 3, std::chrono::seconds(90));
  CHECK_FALSE(outcome.timed_out);
  CHECK((outcome.status == std::vector<int>{3, 3, 9}));
}

int main(int argc, char** argv) {
  self_path = "/proc/self/exe";
  if (const char* worker = std::getenv(angular::test::kWorkerVariable)) {
#ifdef ANGULAR_WITH_TRAINER
    if (std::string(worker) == "angular-train") return angular::test::train_recording_allocations(argc, argv);
#endif
    try {
      return angular::test::run_distributed_worker(worker);
    } catch (const std::exception& e) {
      std::cerr << "worker " << worker << ": " << e.what() << "\n";
      return 1;
    }
  }
  return Catch::Session().run(argc, argv);
}
