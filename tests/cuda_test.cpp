// The fused CUDA kernels (linked through angular::cuda) against the float64 reference on the
// CPU. Without a GPU the binary says so and exits 77, which CTest reports as skipped.

#define CATCH_CONFIG_RUNNER
#include "support/linear.hpp"
#include "support/margins.hpp"

#include <ATen/cuda/CUDAContext.h>
#include <angular/evaluation.hpp>
#include <angular/metrics.hpp>
#include <c10/cuda/CUDACachingAllocator.h>

#include <cstdio>
#include <limits>

using namespace testing;

namespace {

const auto kCuda = at::TensorOptions().device(at::kCUDA);

/// The CUDA kernels against the float64 CPU reference, as kernels_test.cpp checks the CPU's.
void check_cuda(const Margin& margin, const at::Tensor& cos, const at::Tensor& y,
                const CrossEntropyCase& c, at::ScalarType dtype = at::kFloat) {
  check_against_reference(margin, cos, y, c, dtype, at::kCUDA);
}

}  // namespace

TEST_CASE("CUDA tensors take the fused CUDA kernel", "[cuda]") {
  CHECK(angular::kernel_path(at::zeros({2, 3}, kCuda)) == angular::KernelPath::fused_cuda);
}

TEST_CASE("without the fused kernels a CUDA tensor takes the composite path, with one warning", "[cuda]") {
  const angular::detail::RowKernels installed = angular::detail::cuda_row_kernels();
  struct Restore {
    angular::detail::RowKernels kernels;
    ~Restore() { angular::detail::cuda_row_kernels() = kernels; }
  } restore{installed};
  const at::Tensor cos = uniform({8, 50}, -1, 1, 11).to(kCuda);
  const at::Tensor y = labels(8, 50, 5).to(kCuda);
  CapturedWarnings captured;
  c10::WarningUtils::WarningHandlerGuard guard(&captured);
  angular::detail::cuda_row_kernels() = {};
  CHECK(angular::kernel_path(cos) == angular::KernelPath::composite);
  const double composite = angular::functional::arc_loss(cos, y).item<double>();
  angular::functional::arc_loss(cos, y);
  REQUIRE(captured.messages.size() == 1);
  CHECK_THAT(captured.messages[0], Catch::Contains("angular::cuda"));
  angular::detail::cuda_row_kernels() = installed;
  CHECK(angular::kernel_path(cos) == angular::KernelPath::fused_cuda);
  CHECK(angular::functional::arc_loss(cos, y).item<double>() == Approx(composite).epsilon(1e-5));
  CHECK(captured.messages.size() == 1);
}

TEST_CASE("fused CUDA kernels match the float64 reference", "[cuda]") {
  struct Shape {
    int64_t rows, classes;
  };
  const std::vector<Shape> shapes = {{0, 10},  {1, 1},    {7, 2},     {7, 10},    {256, 10},
                                     {33, 1000}, {256, 1000}, {5, 1025}, {3, 100000}};
  for (const auto& margin : margins()) {
    for (const auto& shape : shapes) {
      const at::Tensor cos = uniform({shape.rows, shape.classes}, -1, 1, 7 + shape.classes);
      const at::Tensor y = labels(shape.rows, shape.classes, 3);
      for (const auto& c : cross_entropy_cases(shape.classes)) check_cuda(margin, cos, y, c);
    }
  }
}

// Small enough for compute-sanitizer racecheck, which runs this case alone: the block-per-row
// kernels (C > 1024) are the ones that share memory between warps.
TEST_CASE("CUDA: block-per-row reduction", "[cuda][block]") {
  for (const int64_t classes : {1025, 4099}) {
    const at::Tensor cos = uniform({5, classes}, -1, 1, classes);
    const at::Tensor y = labels(5, classes, 4);
    const auto cases = cross_entropy_cases(classes);
    for (const auto& margin : margins()) {
      for (const auto& c : {cases.front(), cases.back()}) check_cuda(margin, cos, y, c);
      check_cuda(margin, cos, y, cases.front(), at::kHalf);  // 8 per 16-byte pack, rows misaligned
    }
  }
}

TEST_CASE("CUDA: cos at ±1, non-contiguous and half-precision inputs", "[cuda]") {
  at::Tensor cos = uniform({9, 40}, -1, 1, 77);
  cos[0][1] = 1.0;
  cos[1][1] = -1.0;
  cos[2][3] = 1 - 1e-6;
  const at::Tensor y = labels(9, 20, 2);
  const at::Tensor strided = cos.index({at::indexing::Slice(), at::indexing::Slice(0, 40, 2)});
  for (const auto& margin : margins()) {
    for (const auto& c : cross_entropy_cases(20)) check_cuda(margin, strided, y, c);
    for (auto dtype : {at::kHalf, at::kBFloat16, at::kDouble})
      check_cuda(margin, cos.index({at::indexing::Slice(), at::indexing::Slice(0, 20)}), y,
                 cross_entropy_cases(20)[4], dtype);
  }
}

TEST_CASE("CUDA: a NaN or infinite cosine makes its row's loss and gradient NaN", "[cuda]") {
  const at::Tensor y = at::tensor({2, 5, 7, 3}, at::kLong).to(kCuda);
  const CrossEntropyCase none{"none", torch::kNone, -100, 0.0, {}};
  for (const double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity()}) {
    at::Tensor cos = uniform({4, 2000}, -1, 1, 61);  // 2000 > 1024: the block-per-row kernels
    cos[0][9] = bad;
    cos[1][5] = bad;
    cos[2][1999] = bad;
    for (const auto& margin : margins()) {
      INFO(margin.name << " with " << bad);
      const at::Tensor c = cos.to(kCuda.dtype(at::kFloat)).requires_grad_(true);
      const at::Tensor loss = margin.loss(c, y, none);
      loss.sum().backward();
      const at::Tensor grad = c.grad().cpu();
      for (int64_t i = 0; i < 4; ++i) {
        INFO("row " << i);
        CHECK(std::isnan(loss[i].item<double>()) == (i < 3));
        CHECK(at::isnan(grad[i]).all().item<bool>() == (i < 3));
        CHECK(at::isnan(grad[i]).any().item<bool>() == (i < 3));
      }
    }
  }
}

TEST_CASE("CUDA: losses, gradients and the center update are bitwise repeatable, also in deterministic mode",
          "[cuda][determinism]") {
  const at::Tensor cos = uniform({300, 5000}, -1, 1, 41).to(kCuda.dtype(at::kFloat));
  const at::Tensor y = labels(300, 5000, 6).to(kCuda);
  const auto run = [&](const Margin& margin) {
    const at::Tensor c = cos.clone().requires_grad_(true);
    const at::Tensor loss = margin.loss(c, y, cross_entropy_cases(5000)[2]);
    loss.sum().backward();
    return std::make_pair(loss.detach(), c.grad());
  };
  const at::Tensor x = uniform({300, 16}, -1, 1, 42).to(kCuda.dtype(at::kFloat));
  const auto centers_after = [&] {
    at::Tensor centers = uniform({5000, 16}, -1, 1, 43).to(kCuda.dtype(at::kFloat));
    angular::functional::update_centers_(centers, x, y, 0.5);
    return centers;
  };
  for (const bool deterministic : {false, true}) {
    INFO("deterministic algorithms " << deterministic);
    const bool was = at::globalContext().deterministicAlgorithms();
    const bool warn_only = at::globalContext().deterministicAlgorithmsWarnOnly();
    at::globalContext().setDeterministicAlgorithms(deterministic, false);
    for (const auto& margin : margins()) {
      INFO(margin.name);
      const auto [loss, grad] = run(margin);
      for (int repeat = 0; repeat < 3; ++repeat) {
        const auto [again, again_grad] = run(margin);
        CHECK(at::equal(loss, again));
        CHECK(at::equal(grad, again_grad));
      }
    }
    // index_add_ on CUDA adds floats in no fixed order; in deterministic mode ATen takes its
    // deterministic path, which must give one answer.
    if (deterministic) CHECK(at::equal(centers_after(), centers_after()));
    else CHECK_NOTHROW(centers_after());
    at::globalContext().setDeterministicAlgorithms(was, warn_only);
  }
}

TEST_CASE("CUDA: sub-center ArcFace takes each class's max in the kernel, over cosines and features",
          "[cuda][margins]") {
  Margin subcenter{"subcenter-arcface", angular::detail::MarginKind::arcface, margin_params(32, 0.5), 32};
  subcenter.params.sub_centers = 3;
  for (const int64_t classes : {10, 400, 2000}) {  // warp- and block-per-row
    const at::Tensor cos = uniform({9, classes * 3}, -1, 1, 31 + classes);
    const at::Tensor y = labels(9, classes, 32);
    const auto cases = cross_entropy_cases(classes);
    for (const int index : {0, 4, 10, 14}) check_cuda(subcenter, cos, y, cases[index]);
    check_cuda(subcenter, cos, y, cases[0], at::kHalf);
  }
  const at::Tensor x = uniform({11, 6}, -1, 1, 33).to(at::kFloat), w = uniform({21, 6}, -1, 1, 34).to(at::kFloat);
  const at::Tensor y = labels(11, 7, 35);
  const LossUnderTest linear = subcenter_arcface();
  for (const int index : {0, 4, 10, 14})
    check_against_composite(linear, x, w, y, cross_entropy_cases(7)[index], 4, 5e-5, 1e-5, at::kCUDA);
}

TEST_CASE("CUDA: a bad label makes its row NaN without waiting, and is a readable error once checked",
          "[cuda][labels]") {
  namespace F = angular::functional;
  const at::Tensor y = at::tensor({1, 60, 2, -3}, at::kLong).to(kCuda);
  for (const auto& margin : margins()) {
    INFO(margin.name);
    const at::Tensor cos = uniform({4, 50}, -1, 1, 71).to(kCuda.dtype(at::kFloat)).requires_grad_(true);
    const at::Tensor loss = margin.loss(cos, y, {"none", torch::kNone, -100, 0.0, {}});
    loss.sum().backward();
    const at::Tensor rows_nan = at::isnan(loss).cpu(), grad_nan = at::isnan(cos.grad()).all(1).cpu();
    CHECK(at::equal(rows_nan, at::tensor({0, 1, 0, 1}).to(at::kBool)));
    CHECK(at::equal(grad_nan, rows_nan));
    CHECK_ANGULAR_ERROR(angular::synchronize_label_checks(), "target[1] = 60 is out of range [0, 50)");
    CHECK_NOTHROW(angular::synchronize_label_checks());
  }
  // The features-level path, reduced (its gradient written without reading the mean's divisor),
  // and the error from the next call once the first one's answer has arrived.
  const at::Tensor x = at::randn({4, 8}, kCuda).requires_grad_(true), w = at::randn({50, 8}, kCuda);
  const at::Tensor loss = F::linear_arcface_loss(x, w, y);
  loss.backward();
  CHECK(std::isnan(loss.item<double>()));
  torch::cuda::synchronize();
  CHECK_ANGULAR_ERROR(F::linear_arcface_loss(x, w, y.clone().fill_(0)), "target[1] = 60 is out of range [0, 50)");
  CHECK(angular::detail::pending_label_checks().size() == 0);  // the failed call queued nothing
  CHECK_NOTHROW(angular::synchronize_label_checks());
}

TEST_CASE("CUDA: four million classes stream through without [B, C] temporaries", "[cuda][large]") {
  const int64_t classes = 4'000'000;
  const at::Tensor cos = uniform({2, classes}, -1, 1, 99);
  const at::Tensor y = at::tensor(std::vector<int64_t>{5, classes - 1}, at::kLong);
  check_cuda(margins()[0], cos, y, cross_entropy_cases(classes)[0]);
  check_cuda(margins()[1], cos, y, cross_entropy_cases(classes)[0]);
}

TEST_CASE("CUDA: features-level losses equal the float64 composite", "[cuda][linear]") {
  struct Shape {
    int64_t batch, classes, dim, rows;  // rows 0: automatic
  };
  const std::vector<Shape> shapes = {{0, 9, 4, 0}, {1, 1, 8, 0}, {11, 13, 6, 4}, {33, 70000, 16, 5}, {64, 4099, 64, 0}};
  for (const auto& [batch, classes, dim, rows] : shapes) {
    const at::Tensor x = uniform({batch, dim}, -1, 1, 3).to(at::kFloat);
    const at::Tensor w = uniform({classes, dim}, -1, 1, 4).to(at::kFloat);
    const at::Tensor y = labels(batch, classes);
    const auto cases = cross_entropy_cases(classes);
    for (const auto& loss : losses()) {
      for (const int index : {0, 4, 10, 14})  // mean, mean + all, none, none + all
        check_against_composite(loss, x, w, y, cases[index], rows, 5e-5, 1e-5, at::kCUDA);
      check_against_composite(loss, x.to(at::kBFloat16), w.to(at::kBFloat16), y, cases[0], rows, 8e-2, 1e-3,
                              at::kCUDA);
    }
  }
}

TEST_CASE("CUDA: the features-level forward and backward hold no [B, C] tensor", "[cuda][linear][large]") {
  const int64_t batch = 512, classes = 200000, dim = 64, rows = 16;
  const at::Tensor x = at::randn({batch, dim}, kCuda).requires_grad_(true);
  const at::Tensor w = at::randn({classes, dim}, kCuda).requires_grad_(true);
  const at::Tensor y = at::randint(classes, {batch}, kCuda.dtype(at::kLong));
  const auto device = at::cuda::current_device();
  const auto aggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  c10::cuda::CUDACachingAllocator::resetPeakStats(device);
  angular::functional::linear_arcface_loss(x, w, y, angular::functional::ArcFaceLossFuncOptions().chunk_rows(rows))
      .backward();
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
  const int64_t extra = stats.allocated_bytes[aggregate].peak - stats.allocated_bytes[aggregate].current;
  INFO("peak beyond what the step leaves: " << extra << " B");
  CHECK(extra < batch * classes * 4 / 8);
  CHECK(extra <= 2 * rows * classes * 4 + 8 * classes * 4 + 4 * 4096 * dim * 4 + 8 * batch * dim * 4);
}

TEST_CASE("CUDA: angle metrics give the CPU's numbers", "[cuda][metrics]") {
  const at::Tensor features = uniform({3000, 32}, -1, 1, 12).to(at::kFloat);
  const at::Tensor labels = at::randint(20, {3000}, at::make_generator<at::CPUGeneratorImpl>(13), at::kLong);
  const at::Tensor weight = uniform({20, 32}, -1, 1, 14);
  angular::metrics::AngleStats cpu(20, 32), gpu(20, 32);
  cpu.update(features, labels);
  gpu.update(features.to(kCuda), labels.to(kCuda));
  CHECK(gpu.device().is_cuda());
  const auto a = cpu.compute(weight), b = gpu.compute(weight.to(kCuda));
  CHECK(b.wc_intra == Approx(a.wc_intra).epsilon(1e-12));
  CHECK(b.w_inter == Approx(a.w_inter).epsilon(1e-12));
  CHECK(b.c_inter == Approx(a.c_inter).epsilon(1e-12));
  CHECK(b.intra == Approx(a.intra).epsilon(1e-12));
  CHECK(at::allclose(angular::metrics::target_angles(features.to(kCuda), labels.to(kCuda), weight.to(kCuda)).cpu(),
                     angular::metrics::target_angles(features, labels, weight), 1e-6, 1e-6));
}

TEST_CASE("CUDA: retrieval metrics give the CPU's numbers", "[cuda][evaluation]") {
  // float64, so that CPU and GPU rank alike (no near-ties at float32 rounding).
  const at::Tensor x = uniform({700, 16}, -1, 1, 15);
  const at::Tensor y = at::randint(12, {700}, at::make_generator<at::CPUGeneratorImpl>(16), at::kLong);
  for (const int64_t chunk : {0, 97}) {
    const auto options = angular::evaluation::RetrievalOptions().chunk_size(chunk);
    const auto a = angular::evaluation::retrieval_metrics(x, y, options);
    const auto b = angular::evaluation::retrieval_metrics(x.to(kCuda), y.to(kCuda), options);
    CHECK(b.queries == a.queries);
    CHECK(b.precision_at_1 == Approx(a.precision_at_1).margin(1e-12));
    CHECK(b.r_precision == Approx(a.r_precision).margin(1e-12));
    CHECK(b.map_at_r == Approx(a.map_at_r).margin(1e-12));
    CHECK(b.mean_reciprocal_rank == Approx(a.mean_reciprocal_rank).margin(1e-12));
    CHECK(b.recall == a.recall);
  }
  const auto q = uniform({50, 16}, -1, 1, 17);
  const auto qy = at::randint(14, {50}, at::make_generator<at::CPUGeneratorImpl>(18), at::kLong);
  const auto a = angular::evaluation::retrieval_metrics(q, qy, x, y);
  const auto b = angular::evaluation::retrieval_metrics(q.to(kCuda), qy.to(kCuda), x.to(kCuda), y.to(kCuda));
  CHECK(b.queries_without_relevant == a.queries_without_relevant);
  CHECK(b.map_at_r == Approx(a.map_at_r).margin(1e-12));
}

int main(int argc, char** argv) {
  if (!torch::cuda::is_available()) {
    std::puts("skipped: no GPU");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
