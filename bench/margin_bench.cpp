// Fused vs composite margin cross-entropy, forward + backward on cos [B, C], in one binary:
//   BM_<loss>_<impl>/<B>/<C>        CPU (wall time); sub-center ArcFace has 3 cosines per class
//   BM_<loss>_<impl>_cuda/<B>/<C>   CUDA (CUDA events, registered when a GPU is present)
// items = B·C cosines; bytes = 8·B·C, the least traffic of any implementation (read cos
// once, write grad once, fp32). kept_bytes = memory the forward leaves alive for backward.

#include "cuda.hpp"
#include "memory.hpp"
#include "settings.hpp"

#include <angular/loss.hpp>
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <functional>
#include <string>

namespace {

using namespace bench;  // the margins' settings

namespace F = angular::functional;
namespace D = angular::detail;
using Loss = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;



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

constexpr int64_t kSubCenters = 3;

Loss subcenter_arcface_fused() {
  return [](const at::Tensor& cos, const at::Tensor& y) {
    return F::subcenter_arcface_loss(
        cos, y, F::SubCenterArcFaceLossFuncOptions().sub_centers(kSubCenters).scale(kScale).margin(kMargin));
  };
}
Loss subcenter_arcface_composite() {
  return [](const at::Tensor& cos, const at::Tensor& y) {
    return D::cross_entropy(D::arcface_logits(D::class_cosines(cos, kSubCenters), y, kScale, kMargin, -100), y, {});
  };
}

/// AdaFace's inputs besides the cosines: feature norms spread over [10, 30] and statistics.
struct AdaFaceInputs {
  at::Tensor norms, mean, std;
  explicit AdaFaceInputs(int64_t rows)
      : norms(at::linspace(10, 30, rows)), mean(at::full({1}, 20.0)), std(at::full({1}, 5.0)) {}
};
Loss adaface_fused() {
  return [](const at::Tensor& cos, const at::Tensor& y) {
    const AdaFaceInputs in(cos.size(0));
    return F::adaface_loss(cos, in.norms, y, in.mean, in.std);
  };
}
Loss adaface_composite() {
  return [](const at::Tensor& cos, const at::Tensor& y) {
    const AdaFaceInputs in(cos.size(0));
    const at::Tensor margins = D::adaface_margins(in.norms, in.mean, in.std, 0.4, 0.333);
    return D::cross_entropy(D::adaface_logits(cos, y, margins, kScale, -100), y, {});
  };
}

void set_counters(benchmark::State& state, int64_t rows, int64_t classes, int64_t kept) {
  const int64_t elements = rows * classes;
  state.SetItemsProcessed(state.iterations() * elements);
  state.SetBytesProcessed(state.iterations() * elements * 8);
  state.counters["kept_bytes"] = static_cast<double>(kept);
  state.counters["kept_per_BC"] = static_cast<double>(kept) / static_cast<double>(elements);
}

/// cos [B, C·columns_per_class] (K sub-centers per class: C·K cosines per row).
void run_cpu(benchmark::State& state, const Loss& loss, int64_t columns_per_class) {
  auto& memory = bench::CountingCpuAllocator::install();
  const int64_t rows = state.range(0), classes = state.range(1);
  torch::manual_seed(0);
  at::Tensor cos = (at::rand({rows, classes * columns_per_class}) * 2 - 1).requires_grad_(true);
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
  set_counters(state, rows, classes * columns_per_class, kept);
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

void register_cpu(const std::string& name, Loss loss, int64_t columns_per_class = 1) {
  auto* b = benchmark::RegisterBenchmark(
      name.c_str(), [loss, columns_per_class](benchmark::State& s) { run_cpu(s, loss, columns_per_class); });
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
  register_cpu("BM_subcenter_arcface_fused", subcenter_arcface_fused(), kSubCenters);
  register_cpu("BM_subcenter_arcface_composite", subcenter_arcface_composite(), kSubCenters);
  register_cpu("BM_adaface_fused", adaface_fused());
  register_cpu("BM_adaface_composite", adaface_composite());
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
