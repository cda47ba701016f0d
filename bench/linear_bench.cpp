// The features-level losses, forward + backward of x [B, D = 512] and W [C, D], in one binary:
//   BM_linear_<loss>_fused/<B>/<C>        linear_arc_loss / linear_arcface_loss
//   BM_linear_<loss>_module_path/<B>/<C>  what the modules did before: normalise both, x̂ Ŵᵀ,
//                                         the fused kernel over the [B, C] cosines
//   BM_linear_products/<B>/<C>            the floor: x̂ Wᵀ, Gᵀ x̂ and G W alone, into
//                                         preallocated outputs
// at B = 256 and C = 10⁴, 10⁵, 10⁶ and (but for the module path) 4·10⁶, and with _cuda (CUDA
// events, B = 512, float32 and bfloat16) where a GPU is present.
// peak_extra_bytes: the most bytes live at once during the step beyond what it started with
// and what it leaves (the gradients of x and W).

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

constexpr int64_t kLinearDim = 512;

/// One training step's loss work on (x, W, y): forward and backward.
using Step = std::function<void(const at::Tensor& x, const at::Tensor& w, const at::Tensor& y)>;

Step fused_arc() {
  return [](const at::Tensor& x, const at::Tensor& w, const at::Tensor& y) {
    F::linear_arc_loss(x, w, y, F::ArcLossFuncOptions().k(kArcK)).backward();
  };
}
Step fused_arcface() {
  return [](const at::Tensor& x, const at::Tensor& w, const at::Tensor& y) {
    F::linear_arcface_loss(x, w, y, F::ArcFaceLossFuncOptions().scale(kScale).margin(kMargin)).backward();
  };
}
Step module_path_arc() {
  return [](const at::Tensor& x, const at::Tensor& w, const at::Tensor& y) {
    F::arc_loss(D::cosine_matrix(x, w), y, F::ArcLossFuncOptions().k(kArcK)).backward();
  };
}
Step module_path_arcface() {
  return [](const at::Tensor& x, const at::Tensor& w, const at::Tensor& y) {
    F::arcface_loss(D::cosine_matrix(x, w), y, F::ArcFaceLossFuncOptions().scale(kScale).margin(kMargin))
        .backward();
  };
}

/// The three products alone, into outputs allocated once (the cost of none but the products).
struct Products {
  at::Tensor logits, grad_features, grad_weight;
  void operator()(const at::Tensor& x, const at::Tensor& w) {
    at::NoGradGuard no_grad;
    if (!logits.defined()) {
      logits = at::empty({x.size(0), w.size(0)}, x.options());
      grad_features = at::empty_like(x);
      grad_weight = at::empty_like(w);
    }
    at::mm_out(logits, x, w.t());
    at::mm_out(grad_weight, logits.t(), x);
    at::mm_out(grad_features, logits, w);
  }
};

struct Inputs {
  at::Tensor x, w, y;
};

Inputs make_inputs(int64_t rows, int64_t classes, const at::TensorOptions& options) {
  torch::manual_seed(0);
  return {at::randn({rows, kLinearDim}, options).requires_grad_(true),
          at::randn({classes, kLinearDim}, options).requires_grad_(true),
          at::randint(classes, {rows}, options.dtype(at::kLong))};
}

void clear_grads(Inputs& in) {
  in.x.mutable_grad() = at::Tensor();
  in.w.mutable_grad() = at::Tensor();
}

void set_linear_counters(benchmark::State& state, int64_t rows, int64_t classes, int64_t peak_extra) {
  state.SetItemsProcessed(state.iterations() * rows * classes);
  state.counters["flops_3mm"] = benchmark::Counter(static_cast<double>(6 * rows * classes * kLinearDim),
                                                   benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_extra_bytes"] = static_cast<double>(peak_extra);
}

void run_cpu(benchmark::State& state, const Step& step, bool products_only) {
  auto& memory = bench::CountingCpuAllocator::install();
  const int64_t rows = state.range(0), classes = state.range(1);
  Inputs in = make_inputs(rows, classes, at::TensorOptions());
  Products products;
  // One step untimed: the timed ones find the memory in the state a training loop leaves it
  // (the products' outputs allocated, a freed gradient's buffer kept).
  if (products_only) products(in.x, in.w);
  else step(in.x, in.w, in.y);
  clear_grads(in);
  int64_t peak_extra = 0;
  for (auto _ : state) {
    memory.reset_peak();
    if (products_only) products(in.x, in.w);
    else step(in.x, in.w, in.y);
    peak_extra = memory.peak_bytes() - memory.live_bytes();
    clear_grads(in);
  }
  angular::release_gradient_buffers();  // the next benchmark's memory (at C = 4·10⁶, 20 of 24 GB)
  set_linear_counters(state, rows, classes, peak_extra);
}

/// C = 10⁴ … 10⁶, and 4·10⁶ where `largest` (W and ∂W 16 GB; not the module path's [B, C]s).
void register_cpu(const std::string& name, const Step& step, bool products_only = false, bool largest = true) {
  auto* b = benchmark::RegisterBenchmark(name.c_str(), [step, products_only](benchmark::State& s) {
    run_cpu(s, step, products_only);
  });
  for (int64_t classes : {10000, 100000, 1000000}) b->Args({256, classes});
  if (largest) b->Args({256, 4000000});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

#ifdef ANGULAR_HAVE_CUDA_BENCH
void run_cuda(benchmark::State& state, const Step& step, bool products_only, at::ScalarType dtype) {
  const int64_t rows = state.range(0), classes = state.range(1);
  Inputs in = make_inputs(rows, classes, at::TensorOptions().device(at::kCUDA).dtype(dtype));
  Products products;
  const auto device = at::cuda::current_device();
  const auto aggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  int64_t peak_extra = 0;
  for (auto _ : state) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    c10::cuda::CUDACachingAllocator::resetPeakStats(device);
    start.record();
    if (products_only) products(in.x, in.w);
    else step(in.x, in.w, in.y);
    stop.record();
    stop.synchronize();
    state.SetIterationTime(start.elapsed_time(stop) / 1000.0);
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
    peak_extra = stats.allocated_bytes[aggregate].peak - stats.allocated_bytes[aggregate].current;
    clear_grads(in);
  }
  set_linear_counters(state, rows, classes, peak_extra);
}

void register_cuda(const std::string& name, const Step& step, bool products_only = false) {
  for (const auto& [suffix, dtype] : {std::pair{"", at::kFloat}, std::pair{"_bf16", at::kBFloat16}}) {
    auto* b = benchmark::RegisterBenchmark((name + "_cuda" + suffix).c_str(),
                                           [step, products_only, dtype = dtype](benchmark::State& s) {
                                             run_cuda(s, step, products_only, dtype);
                                           });
    for (int64_t classes : {10000, 100000, 1000000}) b->Args({512, classes});
    b->Unit(benchmark::kMillisecond)->UseManualTime();
  }
}
#endif

}  // namespace

void register_linear_benchmarks() {
  register_cpu("BM_linear_arc_fused", fused_arc());
  register_cpu("BM_linear_arcface_fused", fused_arcface());
  register_cpu("BM_linear_arc_module_path", module_path_arc(), false, /*largest=*/false);
  register_cpu("BM_linear_arcface_module_path", module_path_arcface(), false, /*largest=*/false);
  register_cpu("BM_linear_products", {}, /*products_only=*/true);
#ifdef ANGULAR_HAVE_CUDA_BENCH
  if (torch::cuda::is_available()) {
    register_cuda("BM_linear_arc_fused", fused_arc());
    register_cuda("BM_linear_arcface_fused", fused_arcface());
    register_cuda("BM_linear_arcface_module_path", module_path_arcface());
    register_cuda("BM_linear_products", {}, /*products_only=*/true);
  }
#endif
}
