// The class-sharded loss at scale: N processes on this machine, each holding C/N class vectors,
// time forward + backward steps of sharded ArcFace and report their peak memory. The baseline,
// timed in the same processes, is the step's three bare products on the shard (x Wᵀ, gᵀ x, g W).
//
//   angular_sharded_bench [classes=2000000] [dim=512] [ranks=4] [rows_per_rank=16] [steps=3] [sample_rate=1]

#include "memory.hpp"

#include <angular/distributed.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include "../tests/support/ranks.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

namespace dist = angular::distributed;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int worker(int64_t classes, int64_t dim, int64_t rows, int steps, double sample_rate) {
  torch::set_num_threads(1);
  auto& allocator = bench::CountingCpuAllocator::install();
  const auto group = dist::init_process_group(*dist::launch_environment(), c10::kCPU, std::chrono::minutes(10));
  const int64_t rank = group->getRank(), ranks = group->getSize();
  const dist::ClassRange range = dist::class_range(classes, rank, ranks);
  torch::manual_seed(rank);
  const double bound = 1.0 / std::sqrt(static_cast<double>(dim));
  const at::Tensor w = torch::empty({range.count, dim}).uniform_(-bound, bound).requires_grad_();
  const at::Tensor x = torch::randn({rows, dim}).requires_grad_();
  const at::Tensor y = torch::randint(0, classes, {rows}, torch::kLong);

  const at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(1);
  std::vector<double> step_times, product_times;
  int64_t step_peak = 0;  // bytes live at once during a step, W included
  at::Tensor logits, grad_w, grad_x;  // the baseline's outputs
  for (int step = 0; step < steps; ++step) {
    w.mutable_grad() = at::Tensor();
    x.mutable_grad() = at::Tensor();
    allocator.reset_peak();
    auto start = std::chrono::steady_clock::now();
    dist::functional::sharded_margin_loss(x, w, y, group, classes, angular::functional::ArcFaceLossFuncOptions(),
                                          dist::functional::ShardedLossFuncOptions().sample_rate(sample_rate).generator(
                                              generator))
        .backward();
    step_times.push_back(seconds_since(start));
    const int64_t baseline_bytes =
        logits.defined() ? static_cast<int64_t>(logits.nbytes() + grad_w.nbytes() + grad_x.nbytes()) : 0;
    step_peak = std::max(step_peak, allocator.peak_bytes() - baseline_bytes);
    // The baseline: the three products of a step on the gathered batch's shape, no margin, into
    // outputs allocated once (as the features-level benchmark's).
    const at::Tensor xg = torch::randn({rows * ranks, dim});
    if (!logits.defined()) {
      logits = at::empty({rows * ranks, range.count});
      grad_w = at::empty_like(w);
      grad_x = at::empty_like(xg);
    }
    start = std::chrono::steady_clock::now();
    at::mm_out(logits, xg, w.detach().t());
    at::mm_out(grad_w, logits.t(), xg);
    at::mm_out(grad_x, logits, w.detach());
    product_times.push_back(seconds_since(start));
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("rank %lld of %lld: classes [%lld, %lld), step %.3f s (median of %d; min %.3f, max %.3f), "
              "bare products %.3f s, ratio %.2f; step peak (allocator) %.2f GiB, W shard %.2f GiB, max RSS %.2f GiB\n",
              static_cast<long long>(rank), static_cast<long long>(ranks), static_cast<long long>(range.offset),
              static_cast<long long>(range.offset + range.count), median(step_times), steps,
              *std::min_element(step_times.begin(), step_times.end()),
              *std::max_element(step_times.begin(), step_times.end()), median(product_times),
              median(step_times) / median(product_times), step_peak / 1073741824.0,
              w.nbytes() / 1073741824.0, usage.ru_maxrss / 1048576.0);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto arg = [&](int i, int64_t fallback) { return argc > i ? std::stoll(argv[i]) : fallback; };
  const int64_t classes = arg(1, 2000000), dim = arg(2, 512), ranks = arg(3, 4), rows = arg(4, 16);
  const int steps = static_cast<int>(arg(5, 3));
  const double sample_rate = argc > 6 ? std::stod(argv[6]) : 1.0;
  if (std::getenv(angular::test::kWorkerVariable)) return worker(classes, dim, rows, steps, sample_rate);
  std::printf("sharded ArcFace: C = %lld, D = %lld, %lld processes, %lld rows each (B = %lld), float32, "
              "sample rate %g\n",
              static_cast<long long>(classes), static_cast<long long>(dim), static_cast<long long>(ranks),
              static_cast<long long>(rows), static_cast<long long>(rows * ranks), sample_rate);
  std::fflush(stdout);
  std::vector<std::string> args(argv + 1, argv + argc);
  const auto outcome = angular::test::run_ranks("/proc/self/exe", "bench", static_cast<int>(ranks),
                                                std::chrono::minutes(30), args);
  return outcome.all_passed() ? 0 : 1;
}
