// What a rank of the distributed tests runs beside the equalities (distributed_ranks.cpp):
// what crosses processes in one step, and bad input or a dead rank on one rank ending every
// rank with an error. A worker returns 0 when its checks pass.

#include "support/distributed_workers.hpp"
#include "support/sharded_problem.hpp"

#include <cstdlib>
#include <iostream>
#include <limits>

namespace {

using namespace angular::test::sharded;

// The flat collectives that angular calls, by their names in this LibTorch.
#if ANGULAR_TORCH_2_15_OR_NEWER
#define COUNTED_ALL_GATHER all_gather_single
#define COUNTED_REDUCE_SCATTER reduce_scatter_single
#else
#define COUNTED_ALL_GATHER _allgather_base
#define COUNTED_REDUCE_SCATTER _reduce_scatter_base
#endif

/// The group's collectives, counted (kind and elements) before they run on the real group.
class CountingGroup : public c10d::ProcessGroup {
 public:
  explicit CountingGroup(dist::ProcessGroupPtr inner)
      : ProcessGroup(inner->getRank(), inner->getSize()), inner_(std::move(inner)) {}
  std::vector<std::pair<std::string, int64_t>> calls;

  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                           const c10d::AllreduceOptions& options) override {
    calls.emplace_back("all_reduce", tensors[0].numel());
    return inner_->allreduce(tensors, options);
  }
  c10::intrusive_ptr<c10d::Work> COUNTED_ALL_GATHER(at::Tensor& output, at::Tensor& input,
                                                    const c10d::AllgatherOptions& options) override {
    calls.emplace_back("all_gather", output.numel());
    return inner_->COUNTED_ALL_GATHER(output, input, options);
  }
  c10::intrusive_ptr<c10d::Work> COUNTED_REDUCE_SCATTER(at::Tensor& output, at::Tensor& input,
                                                        const c10d::ReduceScatterOptions& options) override {
    calls.emplace_back("reduce_scatter", input.numel());
    return inner_->COUNTED_REDUCE_SCATTER(output, input, options);
  }

 private:
  dist::ProcessGroupPtr inner_;
};

/// What crosses processes in one step: sizes, labels and features gathered, two [B] all-reduces
/// (the second of three vectors), the features' gradient reduce-scattered.
int communication(const dist::ProcessGroupPtr& group) {
  const int64_t rank = group->getRank(), ranks = group->getSize();
  auto counting = c10::make_intrusive<CountingGroup>(group);
  const Problem p = make_problem(ranks, 1, at::kFloat);
  const int64_t padded = 2 + ranks - 1, total = p.x.size(0);
  const dist::ClassRange classes = dist::class_range(kClasses, rank, ranks);
  int64_t row_offset = 0;
  for (int64_t r = 0; r < rank; ++r) row_offset += p.rows[r];
  const at::Tensor x = p.x.narrow(0, row_offset, p.rows[rank]).clone().requires_grad_();
  const at::Tensor w = p.w.narrow(0, classes.offset, classes.count).clone().requires_grad_();
  dist::functional::sharded_margin_loss(x, w, p.y.narrow(0, row_offset, p.rows[rank]), counting, kClasses,
                                        F::ArcFaceLossFuncOptions().scale(8), {})
      .backward();
  const std::vector<std::pair<std::string, int64_t>> expected{
      {"all_gather", 2 * ranks},          {"all_gather", padded * ranks},
      {"all_gather", padded * ranks * kDim}, {"all_reduce", total},
      {"all_reduce", 3 * total},         {"reduce_scatter", padded * ranks * kDim}};
  if (counting->calls == expected) return 0;
  for (const auto& [kind, n] : counting->calls) std::cerr << "rank " << rank << ": " << kind << " of " << n << "\n";
  return 1;
}

/// A bad label on the last rank only, then a D that differs on the last rank: every rank
/// raises the error (none is left waiting); a NaN feature there: every rank's loss is NaN.
int bad_input_everywhere(const dist::ProcessGroupPtr& group) {
  const int64_t rank = group->getRank(), ranks = group->getSize();
  const dist::ClassRange classes = dist::class_range(kClasses, rank, ranks);
  auto expect_error = [&](const at::Tensor& x, const at::Tensor& y, const char* words) {
    try {
      dist::functional::sharded_margin_loss(x, torch::randn({classes.count, x.size(1)}), y, group, kClasses,
                                            F::ArcFaceLossFuncOptions());
    } catch (const c10::Error& e) {
      if (std::string(e.what_without_backtrace()).find(words) != std::string::npos) return true;
      std::cerr << "rank " << rank << ": unexpected error " << e.what_without_backtrace() << "\n";
      return false;
    }
    std::cerr << "rank " << rank << ": no error where one was expected (" << words << ")\n";
    return false;
  };
  const bool last = rank == ranks - 1;
  const at::Tensor labels = torch::tensor({int64_t{1}, last ? kClasses : int64_t{2}}, torch::kLong);
  const bool label_error = expect_error(torch::randn({2, kDim}), labels, "out of range");
  const bool dim_error =
      expect_error(torch::randn({2, last ? kDim + 1 : kDim}), torch::tensor({1, 2}, torch::kLong), "D =");
  // A NaN feature on the last rank makes the loss NaN on every rank, never a finite number.
  at::Tensor x = torch::randn({2, kDim});
  if (last) x[1][0] = std::numeric_limits<float>::quiet_NaN();
  const bool nan_loss = dist::functional::sharded_margin_loss(x, torch::randn({classes.count, kDim}),
                                                              torch::tensor({int64_t{1}, int64_t{2}}), group,
                                                              kClasses, F::ArcFaceLossFuncOptions())
                            .isnan()
                            .item<bool>();
  if (!nan_loss) std::cerr << "rank " << rank << ": a NaN feature gave a finite loss\n";
  return label_error && dim_error && nan_loss ? 0 : 1;
}

/// The last rank dies before the first collective: every other rank ends with an error
/// (exit 3) within the group's timeout instead of waiting.
int dead_rank(const dist::ProcessGroupPtr& group) {
  if (group->getRank() == group->getSize() - 1) std::_Exit(9);
  try {
    const dist::ClassRange classes = dist::class_range(kClasses, group->getRank(), group->getSize());
    dist::functional::sharded_margin_loss(torch::randn({2, kDim}), torch::randn({classes.count, kDim}),
                                          torch::tensor({1, 2}, torch::kLong), group, kClasses,
                                          F::ArcFaceLossFuncOptions());
  } catch (const std::exception& e) {
    std::cerr << "rank " << group->getRank() << " stopped: " << std::string(e.what()).substr(0, 200) << "\n";
    return 3;
  }
  return 0;
}

/// A loss's graph holds its group weakly: the group is not kept alive by a loss tensor that
/// outlives it (at interpreter shutdown its destruction aborts the process), and the backward
/// then stops with angular's message on every rank. Both kinds of saved group: the gathered
/// rows' (mean) and the spec's (per-row losses, whose gradient the backward computes).
int group_not_kept_by_graph(const dist::ProcessGroupPtr& group) {
  const int64_t rank = group->getRank(), ranks = group->getSize();
  const dist::ClassRange classes = dist::class_range(kClasses, rank, ranks);
  int failures = 0;
  for (const bool per_row : {false, true}) {
    auto own = c10::make_intrusive<CountingGroup>(group);  // a group that only this loop holds
    const at::Tensor x = torch::randn({2, kDim}, torch::requires_grad());
    at::Tensor loss = dist::functional::sharded_margin_loss(
        x, torch::randn({classes.count, kDim}, torch::requires_grad()), torch::tensor({1, 2}, torch::kLong), own,
        kClasses, per_row ? F::ArcFaceLossFuncOptions().reduction(torch::kNone) : F::ArcFaceLossFuncOptions());
    if (own.use_count() != 1) {
      std::cerr << "rank " << rank << ": the graph holds " << own.use_count() - 1 << " references to the group\n";
      ++failures;
    }
    own.reset();
    try {
      loss.sum().backward();
      std::cerr << "rank " << rank << ": a backward without its group ran\n";
      ++failures;
    } catch (const c10::Error& e) {
      if (std::string(e.what_without_backtrace()).find("destroyed before its backward") == std::string::npos) {
        std::cerr << "rank " << rank << ": unexpected error " << e.what_without_backtrace() << "\n";
        ++failures;
      }
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

namespace angular::test {

int communication_worker(const ProcessGroupPtr& group) { return communication(group); }
int bad_input_everywhere_worker(const ProcessGroupPtr& group) { return bad_input_everywhere(group); }
int dead_rank_worker(const ProcessGroupPtr& group) { return dead_rank(group); }
int group_not_kept_by_graph_worker(const ProcessGroupPtr& group) { return group_not_kept_by_graph(group); }

}  // namespace angular::test
