// AngleStats::update on [B = 4096, D = 512, C = 1000] against one normalisation plus one
// index_add_ of the batch, in the features' float32 and in the float64 that AngleStats
// accumulates in.

#include <angular/metrics.hpp>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

namespace {

constexpr int64_t kMetricsBatch = 4096, kMetricsDim = 512, kMetricsClasses = 1000;

void BM_metrics_update(benchmark::State& state) {
  torch::manual_seed(0);
  const at::Tensor features = torch::randn({kMetricsBatch, kMetricsDim});
  const at::Tensor labels = torch::randint(kMetricsClasses, {kMetricsBatch}, torch::kLong);
  angular::metrics::AngleStats stats(kMetricsClasses, kMetricsDim);
  for (auto _ : state) {
    stats.update(features, labels);
    benchmark::DoNotOptimize(stats.sums().data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * kMetricsBatch * kMetricsDim);
}

void BM_metrics_normalize_index_add(benchmark::State& state) {
  torch::manual_seed(0);
  const at::Tensor features = torch::randn({kMetricsBatch, kMetricsDim});
  const at::Tensor labels = torch::randint(kMetricsClasses, {kMetricsBatch}, torch::kLong);
  at::Tensor sums = torch::zeros({kMetricsClasses, kMetricsDim});
  for (auto _ : state) {
    sums.index_add_(0, labels, torch::nn::functional::normalize(features));
    benchmark::DoNotOptimize(sums.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * kMetricsBatch * kMetricsDim);
}

/// The same in float64, which AngleStats accumulates in (so that streaming is exact).
void BM_metrics_normalize_index_add_f64(benchmark::State& state) {
  torch::manual_seed(0);
  const at::Tensor features = torch::randn({kMetricsBatch, kMetricsDim});
  const at::Tensor labels = torch::randint(kMetricsClasses, {kMetricsBatch}, torch::kLong);
  at::Tensor sums = torch::zeros({kMetricsClasses, kMetricsDim}, torch::kDouble);
  for (auto _ : state) {
    sums.index_add_(0, labels, torch::nn::functional::normalize(features.to(torch::kDouble)));
    benchmark::DoNotOptimize(sums.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * kMetricsBatch * kMetricsDim);
}

}  // namespace

BENCHMARK(BM_metrics_update)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_metrics_normalize_index_add)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_metrics_normalize_index_add_f64)->Unit(benchmark::kMillisecond)->UseRealTime();
