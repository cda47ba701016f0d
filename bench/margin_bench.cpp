// Fused vs composite margin cross-entropy, forward + backward on cos [B, C], in one binary:
//   BM_<loss>_<impl>/<B>/<C>        CPU (wall time)
//   BM_<loss>_<impl>_cuda/<B>/<C>   CUDA (CUDA events, registered when a GPU is present)
// items = B·C cosines; bytes = 8·B·C, the least traffic of any implementation (read cos
// once, write grad once, fp32). kept_bytes = memory the forward leaves alive for backward.

#include "cuda.hpp"
#include "memory.hpp"

#include <angular/loss.hpp>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <functional>
#include <string>

namespace {

namespace F = angular::functional;
namespace D = angular::detail;
using Loss = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;

const double kArcK = 4.0, kScale = 64.0, kMargin = 0.5;

Loss arc_fused() {
  return [](const at::Tensor& cos, const at::Tensor& y) {
    return F::arc_loss(cos, y, F::ArcLossFuncOptions().k(kArcK));
  };
}
Loss arc_composite() {
  return [](const at::Tensor& cos, const at::Tensor& y) {
    return D::cross_entropy(D::arc_logits(cos, kArcK), y, {});
  };
}
Loss arcface_fused() {
  return [](const at::Tensor& cos, const at::Tensor& y) {
    return F::arcface_loss(cos, y, F::ArcFaceLossFuncOptions().scale(kScale).margin(kMargin));
  };
}
Loss arcface_composite() {
  return [](const at::Tensor& cos, const at::Tensor& y) {
    return D::cross_entropy(D::arcface_logits(cos, y, kScale, kMargin, -100), y, {});
  };
}

void set_counters(benchmark::State& state, int64_t rows, int64_t classes, int64_t kept) {
  const int64_t elements = rows * classes;
  state.SetItemsProcessed(state.iterations() * elements);
  state.SetBytesProcessed(state.iterations() * elements * 8);
  state.counters["kept_bytes"] = static_cast<double>(kept);
  state.counters["kept_per_BC"] = static_cast<double>(kept) / static_cast<double>(elements);
}

void run_cpu(benchmark::State& state, const Loss& loss) {
  auto& memory = bench::CountingCpuAllocator::install();
  const int64_t rows = state.range(0), classes = state.range(1);
  torch::manual_seed(0);
  at::Tensor cos = (at::rand({rows, classes}) * 2 - 1).requires_grad_(true);
  const at::Tensor y = at::randint(classes, {rows}, at::kLong);
  int64_t kept = 0;
  for (auto _ : state) {
    const int64_t before = memory.live_bytes();
    at::Tensor value = loss(cos, y);
    kept = memory.live_bytes() - before;
    value.backward();
    benchmark::DoNotOptimize(cos.grad().data_ptr());
    cos.mutable_grad() = at::Tensor();
  }
  set_counters(state, rows, classes, kept);
}

#ifdef ANGULAR_HAVE_CUDA_BENCH
void run_cuda(benchmark::State& state, const Loss& loss) {
  const int64_t rows = state.range(0), classes = state.range(1);
  const auto options = at::TensorOptions().device(at::kCUDA);
  torch::manual_seed(0);
  at::Tensor cos = (at::rand({rows, classes}, options) * 2 - 1).requires_grad_(true);
  const at::Tensor y = at::randint(classes, {rows}, options.dtype(at::kLong));
  int64_t kept = 0, peak = 0;
  for (auto _ : state) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    const auto device = at::cuda::current_device();
    const auto before = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
    c10::cuda::CUDACachingAllocator::resetPeakStats(device);
    start.record();
    at::Tensor value = loss(cos, y);
    const auto after_forward = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
    value.backward();
    stop.record();
    stop.synchronize();
    state.SetIterationTime(start.elapsed_time(stop) / 1000.0);
    const auto idx = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    kept = after_forward.allocated_bytes[idx].current - before.allocated_bytes[idx].current;
    peak = c10::cuda::CUDACachingAllocator::getDeviceStats(device).allocated_bytes[idx].peak -
           before.allocated_bytes[idx].current;
    cos.mutable_grad() = at::Tensor();
  }
  set_counters(state, rows, classes, kept);
  state.counters["peak_extra_bytes"] = static_cast<double>(peak);
}
#endif

void register_cpu(const std::string& name, Loss loss) {
  auto* b = benchmark::RegisterBenchmark(name.c_str(), [loss](benchmark::State& s) { run_cpu(s, loss); });
  for (int64_t classes : {10, 1000, 10000, 100000}) b->Args({256, classes});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

void register_linear_benchmarks();  // linear_bench.cpp

int main(int argc, char** argv) {
  register_cpu("BM_arc_fused", arc_fused());
  register_cpu("BM_arc_composite", arc_composite());
  register_cpu("BM_arcface_fused", arcface_fused());
  register_cpu("BM_arcface_composite", arcface_composite());
#ifdef ANGULAR_HAVE_CUDA_BENCH
  if (torch::cuda::is_available()) {
    const std::vector<std::pair<std::string, Loss>> cuda = {
        {"BM_arc_fused_cuda", arc_fused()}, {"BM_arc_composite_cuda", arc_composite()},
        {"BM_arcface_fused_cuda", arcface_fused()}, {"BM_arcface_composite_cuda", arcface_composite()}};
    for (const auto& [name, loss] : cuda) {
      auto* b = benchmark::RegisterBenchmark(name.c_str(),
                                             [loss = loss](benchmark::State& s) { run_cuda(s, loss); });
      for (int64_t classes : {1000, 10000, 100000, 1000000}) b->Args({512, classes});
      b->Unit(benchmark::kMicrosecond)->UseManualTime();
    }
  }
#endif
  register_linear_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
