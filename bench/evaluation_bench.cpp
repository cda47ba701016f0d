// Retrieval of N embeddings (D = 128, 1000 classes of N/1000, float32) against themselves:
//   BM_retrieval/N               retrieval_metrics (leave-one-out): P@1, R-precision, MAP@R,
//                                recall@k, MRR, in chunks of references
//   BM_retrieval_products/N      the same blocked products alone, nothing kept: the floor
//   BM_retrieval_matmul_topk/N   the plain way: the [N, N] similarity matrix, the diagonal
//                                masked, topk(R) per row (the neighbours only, no metric)
// peak_extra_bytes: the CPU allocator's peak during the call beyond what was live before.

#include "memory.hpp"

#include <angular/evaluation.hpp>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <limits>

namespace {

constexpr int64_t kEvaluationDim = 128, kEvaluationClasses = 1000;

/// Class centres on the unit sphere plus Gaussian noise of norm about 1.7.
struct Embeddings {
  at::Tensor x, labels;
};

Embeddings make_embeddings(int64_t n) {
  torch::manual_seed(0);
  const at::Tensor centres = torch::nn::functional::normalize(torch::randn({kEvaluationClasses, kEvaluationDim}));
  const at::Tensor labels = torch::arange(n, torch::kLong) % kEvaluationClasses;
  return {centres.index_select(0, labels) + 0.15 * torch::randn({n, kEvaluationDim}), labels};
}

template <class F>
void run(benchmark::State& state, const F& body) {
  auto& memory = bench::CountingCpuAllocator::install();
  const Embeddings e = make_embeddings(state.range(0));
  int64_t peak_extra = 0;
  for (auto _ : state) {
    const int64_t live = memory.live_bytes();
    memory.reset_peak();
    body(state, e);
    peak_extra = memory.peak_bytes() - live;
  }
  state.counters["peak_extra_bytes"] = static_cast<double>(peak_extra);
  state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(0));
}

void BM_retrieval(benchmark::State& state) {
  run(state, [](benchmark::State& s, const Embeddings& e) {
    const auto m = angular::evaluation::retrieval_metrics(e.x, e.labels);
    s.counters["p_at_1"] = m.precision_at_1;
    s.counters["map_at_r"] = m.map_at_r;
  });
}

void BM_retrieval_products(benchmark::State& state) {
  run(state, [](benchmark::State&, const Embeddings& e) {
    const at::Tensor unit = torch::nn::functional::normalize(e.x);
    struct None {};
    angular::detail::cpu::for_each_similarity_block<float, None>(
        unit, unit, 2048, [](None&, int64_t, int64_t) {},
        [](None&, int64_t, int64_t, const float* sims, int64_t, int64_t) { benchmark::DoNotOptimize(sims); },
        [](None&, int64_t, int64_t) {});
  });
}

void BM_retrieval_matmul_topk(benchmark::State& state) {
  run(state, [](benchmark::State&, const Embeddings& e) {
    const at::Tensor unit = torch::nn::functional::normalize(e.x);
    at::Tensor sims = at::mm(unit, unit.t());
    sims.diagonal().fill_(-std::numeric_limits<float>::infinity());
    const int64_t relevant = e.x.size(0) / kEvaluationClasses - 1;
    const auto top = sims.topk(relevant, /*dim=*/1);
    benchmark::DoNotOptimize(std::get<1>(top).data_ptr());
  });
}

}  // namespace

// [N, N] float32 is 1.6 GB at N = 20 000, 10 GB at 50 000 and 40 GB at 100 000: the plain way
// stops at 50 000 on a 24 GiB machine.
BENCHMARK(BM_retrieval)->Arg(20000)->Arg(50000)->Arg(100000)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_retrieval_products)->Arg(20000)->Arg(50000)->Arg(100000)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_retrieval_matmul_topk)->Arg(20000)->Arg(50000)->Unit(benchmark::kSecond)->UseRealTime();
