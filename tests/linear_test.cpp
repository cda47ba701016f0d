// The features-level losses (linear_*, softmax_loss, the modules' forward) against the float64
// composite: normalise, product, the cosine-level reference, differentiated by autograd.

#include "support/linear.hpp"
#include "memory.hpp"
#include "support/gradcheck.hpp"

#include <limits>

using namespace testing;

TEST_CASE("features-level losses equal the float64 composite for every setting and chunking", "[linear]") {
  const int64_t batch = 11, classes = 13, dim = 6;
  const at::Tensor x = uniform({batch, dim}, -1, 1, 1).to(at::kFloat);
  const at::Tensor w = uniform({classes, dim}, -1, 1, 2).to(at::kFloat);
  const at::Tensor y = labels(batch, classes);
  // One row at a time, chunks that do not divide B, that do, one chunk, more than B; then
  // (negative) the class-blocked pass: one class per block, blocks that do not divide C, one
  // block (its products kept between the sweeps), more than C.
  const std::vector<int64_t> chunkings = {1, 4, 11, 64, 0, -1, -5, -13, -64};  // 0: automatic
  for (const auto& loss : losses())
    for (const auto& ce : cross_entropy_cases(classes))
      for (const auto rows : chunkings) check_against_composite(loss, x, w, y, ce, rows, 2e-5, 1e-6);
}

TEST_CASE("features-level losses over C = 1 to 70 000 classes and B = 0 and 1", "[linear]") {
  struct Shape {
    int64_t batch, classes, dim;
    int64_t rows;  // 0: automatic
  };
  // Negative rows: classes per block. B <= D parks each block's products in ∂W, B > D computes
  // them again.
  const std::vector<Shape> shapes = {{5, 1, 4, 2},     {1, 3, 8, 0},        {0, 9, 4, 3},          {0, 9, 4, 0},
                                     {7, 2047, 16, 3}, {6, 70000, 8, 4},    {9, 4099, 33, 0},      {5, 1, 4, -1},
                                     {0, 9, 4, -4},    {7, 2047, 16, -300}, {6, 70000, 8, -16384}, {9, 4099, 33, -1000},
                                     {40, 301, 8, -64}};
  const CrossEntropyCase all = cross_entropy_cases(1)[4];  // mean + ignore + smoothing + weights
  for (const auto& [batch, classes, dim, rows] : shapes) {
    const at::Tensor x = uniform({batch, dim}, -1, 1, 3).to(at::kFloat);
    const at::Tensor w = uniform({classes, dim}, -1, 1, 4).to(at::kFloat);
    const at::Tensor y = labels(batch, classes);
    CrossEntropyCase ce = all;
    ce.class_weight = at::linspace(0.5, 2.0, classes, at::kDouble);
    // atol: float32 rounding of p_y = 1 at C = 1, times the scale 16, where the reference is 0.
    for (const auto& loss : losses()) {
      check_against_composite(loss, x, w, y, ce, rows, 5e-5, 1e-5);
      check_against_composite(loss, x, w, y, cross_entropy_cases(classes)[10], rows, 5e-5, 1e-5);  // none
    }
  }
}

TEST_CASE("features-level losses take non-contiguous inputs, double, half and bfloat16", "[linear]") {
  const int64_t batch = 10, classes = 300, dim = 12;
  const at::Tensor y = labels(batch, classes);
  const CrossEntropyCase mean = cross_entropy_cases(classes)[0];
  // Transposed features and every other row of a larger weight.
  const at::Tensor x = uniform({dim, batch}, -1, 1, 5).to(at::kFloat).t();
  const at::Tensor w = uniform({2 * classes, dim}, -1, 1, 6).to(at::kFloat).slice(0, 0, 2 * classes, 2);
  REQUIRE_FALSE(x.is_contiguous());
  REQUIRE_FALSE(w.is_contiguous());
  for (const auto& loss : losses()) {
    check_against_composite(loss, x, w, y, mean, 3, 2e-5, 1e-6);
    check_against_composite(loss, x.to(at::kDouble), w.to(at::kDouble), y, mean, 3, 1e-10, 1e-12);
    // Half and bfloat16 inputs: products in their precision, against the float64 composite
    // of the same (rounded) values.
    check_against_composite(loss, x.to(at::kHalf), w.to(at::kHalf), y, mean, 3, 2e-2, 1e-3);
    check_against_composite(loss, x.to(at::kBFloat16), w.to(at::kBFloat16), y, mean, 4, 8e-2, 1e-3);
  }
  // The class-blocked pass over the same, and over W.t() of a [D, C] matrix (its products
  // parked in the transposed gradient), blocks not dividing C.
  const at::Tensor w_t = uniform({dim, classes}, -1, 1, 7).to(at::kFloat).t();
  for (const auto& loss : losses()) {
    check_against_composite(loss, x, w, y, mean, -70, 2e-5, 1e-6);
    check_against_composite(loss, x, w_t, y, mean, -70, 2e-5, 1e-6);
    check_against_composite(loss, x, w_t, y, cross_entropy_cases(classes)[10], -70, 2e-5, 1e-6);  // none
    check_against_composite(loss, x.to(at::kDouble), w.to(at::kDouble), y, mean, -70, 1e-10, 1e-12);
    check_against_composite(loss, x.to(at::kHalf), w.to(at::kHalf), y, mean, -70, 2e-2, 1e-3);
    check_against_composite(loss, x.to(at::kHalf), w_t.to(at::kHalf), y, mean, -70, 2e-2, 1e-3);
    check_against_composite(loss, x.to(at::kBFloat16), w.to(at::kBFloat16), y, mean, -70, 8e-2, 1e-3);
  }
}

TEST_CASE("the class-blocked pass runs sub-centers, where chunk_classes asks and where a row chunk cannot hold B",
          "[linear]") {
  namespace D = angular::detail;
  const LossUnderTest subcenter = subcenter_arcface();
  const at::Tensor x = uniform({11, 6}, -1, 1, 33).to(at::kFloat), w = uniform({21, 6}, -1, 1, 34).to(at::kFloat);
  const at::Tensor y = labels(11, 7, 35);
  for (const int index : {0, 4, 10, 14})
    for (const int64_t chunking : {3, -1, -2, -7}) {
      check_against_composite(subcenter, x, w, y, cross_entropy_cases(7)[index], chunking, 5e-5, 1e-5);
      check_against_composite(subcenter, x.to(at::kDouble), w.to(at::kDouble), y, cross_entropy_cases(7)[index],
                              chunking, 1e-10, 1e-12);
    }

  // Automatic: chunks of rows while one chunk of kDefaultWorkspaceBytes holds the batch, class
  // blocks from the first row it cannot hold; chunk_rows keeps rows, chunk_classes blocks.
  const int64_t classes = 70000, fits = angular::kDefaultWorkspaceBytes / (classes * 4);
  const auto blocked = [&](int64_t batch, int64_t chunk_rows, int64_t chunk_classes) {
    D::LinearProblem p;
    p.features = at::zeros({batch, 8});
    p.weight = at::zeros({classes, 8});
    p.chunk_rows = chunk_rows;
    p.chunk_classes = chunk_classes;
    return D::runs_in_class_blocks(p, D::row_kernels_for(angular::kernel_path(p.features)));
  };
  CHECK_FALSE(blocked(fits, 0, 0));
  CHECK(blocked(fits + 1, 0, 0));
  CHECK_FALSE(blocked(fits + 1, 4, 0));
  CHECK(blocked(2, 0, 100));
  for (const int64_t batch : {fits, fits + 1}) {
    const at::Tensor xb = uniform({batch, 8}, -1, 1, 36).to(at::kFloat);
    const at::Tensor wb = uniform({classes, 8}, -1, 1, 37).to(at::kFloat);
    const at::Tensor yb = labels(batch, classes, 38);
    for (const auto& loss : losses())
      if (std::string(loss.name) == "arc" || std::string(loss.name) == "sphereface")
        check_against_composite(loss, xb, wb, yb, cross_entropy_cases(classes)[4], 0, 5e-5, 1e-6);
  }
}

TEST_CASE("zero rows of features and weight get the composite's value and gradient", "[linear]") {
  const int64_t batch = 6, classes = 9, dim = 5;
  at::Tensor x = uniform({batch, dim}, -1, 1, 7).to(at::kFloat);
  at::Tensor w = uniform({classes, dim}, -1, 1, 8).to(at::kFloat);
  x[2].zero_();
  w[4].zero_();
  w[6].fill_(1e-14);  // below the norm floor: divided by it, no projection
  const at::Tensor y = labels(batch, classes);
  for (const auto& loss : losses())
    for (const auto& ce : cross_entropy_cases(classes))
      for (const int64_t chunking : {2, -4}) check_against_composite(loss, x, w, y, ce, chunking, 2e-5, 1e-6);
}

TEST_CASE("a NaN or infinite feature or class vector makes the losses it enters NaN, as in the composite", "[linear]") {
  const int64_t batch = 6, classes = 9, dim = 5;
  const at::Tensor y = labels(batch, classes);
  const CrossEntropyCase none{"none", torch::kNone, -100, 0.0, {}};
  for (const double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity()}) {
    INFO("bad value " << bad);
    at::Tensor x = uniform({batch, dim}, -1, 1, 7).to(at::kFloat);
    const at::Tensor w = uniform({classes, dim}, -1, 1, 8).to(at::kFloat);
    x[1][3] = bad;
    x[4].fill_(bad);
    for (const auto& loss : losses()) {
      const at::Tensor value = evaluate(loss.fused, x, w, y, none, 2).loss;
      for (int64_t i = 0; i < batch; ++i) CHECK(std::isnan(value[i].item<double>()) == (i == 1 || i == 4));
      check_against_composite(loss, x, w, y, none, 2, 2e-5, 1e-6);
      check_against_composite(loss, x, w, y, none, -4, 2e-5, 1e-6);
    }
    // A bad class vector enters every row.
    at::Tensor bad_w = w.clone();
    bad_w[5][0] = bad;
    for (const auto& loss : losses()) {
      CHECK(at::isnan(evaluate(loss.fused, x.clone().fill_(0.5), bad_w, y, none, 4).loss).all().item<bool>());
      CHECK(at::isnan(reference(loss, x.clone().fill_(0.5), bad_w, y, none).loss).all().item<bool>());
    }
  }
}

TEST_CASE("features-level losses pass a float64 gradcheck of both inputs", "[linear][gradients]") {
  const int64_t batch = 4, classes = 5, dim = 3;
  const at::Tensor x = uniform({batch, dim}, -1, 1, 9);
  const at::Tensor w = uniform({classes, dim}, -1, 1, 10);
  const at::Tensor y = labels(batch, classes);
  for (const auto& loss : losses()) {
    if (std::string(loss.name) == "arcface-straight-through") continue;  // by design not the derivative
    // AdaFace's margins take the features' norms without gradient (as its authors' code):
    // its loss is differentiated in the weight, and in the features' directions elsewhere.
    const bool features_too = std::string(loss.name) != "adaface";
    for (const int index : {0, 4, 5, 14})       // mean, mean + all, sum, none + all
      for (const int64_t chunking : {3, -2}) {  // rows; classes per block
        const CrossEntropyCase ce = cross_entropy_cases(classes)[index];
        const auto result =
            features_too
                ? gradcheck(
                      [&](const std::vector<at::Tensor>& in) { return loss.fused(in[0], in[1], y, ce, chunking); },
                      {x, w})
                : gradcheck([&](const std::vector<at::Tensor>& in) { return loss.fused(x, in[0], y, ce, chunking); },
                            {w});
        INFO(loss.name << " " << ce.name << " chunking " << chunking << ": " << result.report);
        CHECK(result.ok);
      }
  }
}

TEST_CASE("features-level losses differentiate only the inputs that require it", "[linear][gradients]") {
  const int64_t batch = 7, classes = 20, dim = 5;
  const at::Tensor x = uniform({batch, dim}, -1, 1, 12).to(at::kFloat);
  const at::Tensor w = uniform({classes, dim}, -1, 1, 13).to(at::kFloat);
  const at::Tensor y = labels(batch, classes);
  for (const auto& loss : losses()) {
    for (const int index : {0, 10}) {  // mean (gradients in the forward), none (recomputed)
      const CrossEntropyCase ce = cross_entropy_cases(classes)[index];
      const LossAndGradients want = reference(loss, x, w, y, ce);
      for (const bool features_need_grad : {true, false})
        for (const int64_t chunking : {3, -6}) {  // rows; classes per block (recomputed without ∂W)
          const at::Tensor xg = x.clone().requires_grad_(features_need_grad);
          const at::Tensor wg = w.clone().requires_grad_(!features_need_grad);
          const at::Tensor value = loss.fused(xg, wg, y, ce, chunking);
          (value * (value.dim() == 0 ? at::ones({}) : uniform(value.sizes(), 0.5, 1.5, 99).to(at::kFloat)))
              .sum()
              .backward();
          INFO(loss.name << " " << ce.name << (features_need_grad ? " features only" : " weight only") << " "
                         << chunking);
          CHECK(xg.grad().defined() == features_need_grad);
          CHECK(wg.grad().defined() == !features_need_grad);
          CHECK(near(features_need_grad ? xg.grad() : wg.grad(),
                     features_need_grad ? want.grad_features : want.grad_weight, 2e-5, 1e-6));
        }
    }
  }
}

TEST_CASE("the modules' forward equals their cosine (or logit) path", "[linear][module]") {
  const int64_t batch = 9, classes = 40, dim = 7;
  const at::Tensor x = uniform({batch, dim}, -1, 1, 11).to(at::kFloat);
  const at::Tensor y = labels(batch, classes);
  const auto compare = [&](auto& module, auto&& via_matrix) {
    const at::Tensor xg = x.clone().requires_grad_(true);
    const at::Tensor loss = module->forward(xg, y);
    loss.backward();
    const at::Tensor grad_x = xg.grad().clone(), grad_w = module->weight.grad().clone();
    module->weight.mutable_grad().zero_();
    const at::Tensor xr = x.clone().requires_grad_(true);
    const at::Tensor want = via_matrix(module, xr);
    want.backward();
    CHECK(near(loss, want, 1e-5, 1e-7));
    CHECK(near(grad_x, xr.grad(), 1e-4, 1e-7));
    CHECK(near(grad_w, module->weight.grad(), 1e-4, 1e-7));
  };
  angular::ArcLoss arc(angular::ArcLossOptions(classes, dim).label_smoothing(0.1).chunk_rows(4));
  compare(arc, [&](auto& m, const at::Tensor& xr) {
    return F::arc_loss(m->cosines(xr), y, F::ArcLossFuncOptions().k(m->options.k()).label_smoothing(0.1));
  });
  angular::ArcFaceLoss arcface(angular::ArcFaceLossOptions(classes, dim).scale(20).reduction(torch::kSum));
  compare(arcface, [&](auto& m, const at::Tensor& xr) {
    return F::arcface_loss(m->cosines(xr), y, F::ArcFaceLossFuncOptions().scale(20).reduction(torch::kSum));
  });
  angular::SoftmaxLoss softmax(angular::SoftmaxLossOptions(classes, dim).chunk_rows(2));
  compare(softmax, [&](auto& m, const at::Tensor& xr) { return angular::detail::cross_entropy(m->logits(xr), y, {}); });
  angular::CenterLoss center(angular::CenterLossOptions(classes, dim).update(angular::CenterUpdate::sgd));
  center->centers.data().uniform_(-1, 1);
  compare(center, [&](auto& m, const at::Tensor& xr) {
    return angular::detail::cross_entropy(m->logits(xr), y, {}) +
           m->options.lambda() * angular::detail::center_term(xr, m->centers, y, at::Reduction::Mean, -100);
  });
}

TEST_CASE("features-level losses reject what the cosine losses reject, and mismatched inputs", "[linear][errors]") {
  const at::Tensor x = at::randn({4, 3}), w = at::randn({5, 3}), y = at::tensor({0, 1, 2, 3}, at::kLong);
  CHECK_ANGULAR_ERROR(F::linear_arc_loss(x, at::randn({5, 4}), y), "features must be [B, 4]");
  CHECK_ANGULAR_ERROR(F::linear_arcface_loss(x, w.to(at::kDouble), y), "features are Float but weight is Double");
  CHECK_ANGULAR_ERROR(F::linear_cosface_loss(x, at::randn({0, 3}), y), "weight must have at least one class row");
  CHECK_ANGULAR_ERROR(F::linear_normface_loss(x, w, at::tensor({0, 1, 2, 5}, at::kLong)),
                      "target[3] = 5 is out of range [0, 5)");
  CHECK_ANGULAR_ERROR(F::linear_arc_loss(x, w, y, F::ArcLossFuncOptions().k(-1)), "k must be a finite number > 0");
  CHECK_ANGULAR_ERROR(F::linear_arcface_loss(x, w, y, F::ArcFaceLossFuncOptions().margin(4)),
                      "margin must be in [0, pi)");
  CHECK_ANGULAR_ERROR(F::linear_cosface_loss(x, w, y, F::CosFaceLossFuncOptions().margin(-1)), "margin must be");
  CHECK_ANGULAR_ERROR(F::linear_normface_loss(x, w, y, F::NormFaceLossFuncOptions().label_smoothing(2)),
                      "label_smoothing must be in [0, 1]");
  CHECK_ANGULAR_ERROR(F::softmax_loss(x, w, y, F::SoftmaxLossFuncOptions().weight(at::ones({4}))),
                      "weight (class weights) must be [5]");
  for (const int64_t rows : {-1, -3})
    CHECK_ANGULAR_ERROR(
        F::linear_arc_loss(x, w, y, F::ArcLossFuncOptions().chunk_rows(rows)),
        "chunk_rows must be >= 1, or 0 to size the chunks from kDefaultWorkspaceBytes, got " + std::to_string(rows));
  CHECK_ANGULAR_ERROR(F::linear_arc_loss(x, w, y, F::ArcLossFuncOptions().chunk_classes(-2)),
                      "chunk_classes must be >= 1, or 0 for automatic, got -2");
}

TEST_CASE("the features-level forward and backward never allocate a [B, C] tensor", "[linear][memory]") {
  const bench::CountingCpuAllocator::Scope counting;
  bench::CountingCpuAllocator& allocator = *counting;
  const int64_t batch = 256, classes = 200000, dim = 32, rows = 8;
  const int64_t matrix_bytes = batch * classes * 4;  // one float [B, C]
  const at::Tensor x = at::randn({batch, dim}).requires_grad_(true);
  const at::Tensor w = at::randn({classes, dim}).requires_grad_(true);
  const at::Tensor y = at::randint(classes, {batch}, at::kLong);
  const auto extra_peak = [&](auto&& step) {
    x.mutable_grad() = at::Tensor();
    w.mutable_grad() = at::Tensor();
    const int64_t before = allocator.live_bytes();
    allocator.reset_peak();
    step();
    // What the step held beyond what it leaves (the gradients of x and W).
    return allocator.peak_bytes() - before - (allocator.live_bytes() - before);
  };
  const int64_t fused =
      extra_peak([&] { F::linear_arcface_loss(x, w, y, F::ArcFaceLossFuncOptions().chunk_rows(rows)).backward(); });
  const int64_t module_path = extra_peak([&] { F::arcface_loss(angular::detail::cosine_matrix(x, w), y).backward(); });
  const int64_t workspace = 2 * rows * classes * 4;
  INFO("fused " << fused << " B, cosine path " << module_path << " B, [B, C] " << matrix_bytes << " B");
  CHECK(module_path > matrix_bytes);  // the measurement sees a [B, C] tensor where there is one
  CHECK(fused < matrix_bytes / 8);
  // The workspace, the class vectors' norms, and per-slice temporaries of [4096, D].
  CHECK(fused <= workspace + 8 * classes * 4 + 4 * 4096 * dim * 4 + 8 * batch * dim * 4);
}

TEST_CASE("a freed weight gradient's buffer is reused by the next step, a held one never", "[linear][memory]") {
  angular::release_gradient_buffers();
  const int64_t batch = 4, classes = 40000, dim = 512;  // an 82 MB gradient: kept
  const at::Tensor x = uniform({batch, dim}, -1, 1, 40).to(at::kFloat).requires_grad_(true);
  const at::Tensor w = uniform({classes, dim}, -1, 1, 41).to(at::kFloat).requires_grad_(true);
  const at::Tensor y = labels(batch, classes, 42);
  const auto step = [&](const at::Tensor& labels) {
    x.mutable_grad() = at::Tensor();
    w.mutable_grad() = at::Tensor();
    F::linear_arcface_loss(x, w, labels, F::ArcFaceLossFuncOptions().chunk_classes(7000)).backward();
    return w.grad();
  };
  const at::Tensor held = step(y);
  const at::Tensor held_copy = held.clone();
  const void* freed = nullptr;
  at::Tensor expected;
  {
    const at::Tensor other = step(labels(batch, classes, 43));
    CHECK(other.data_ptr() != held.data_ptr());
    CHECK(at::equal(held, held_copy));  // untouched by the step after it
    freed = other.data_ptr();
    expected = other.clone();
  }
  w.mutable_grad() = at::Tensor();
  CHECK(angular::free_gradient_buffer_bytes() == size_t(classes * dim * 4));
  const at::Tensor again = step(labels(batch, classes, 43));
  CHECK(again.data_ptr() == freed);
  CHECK(at::equal(again, expected));
  w.mutable_grad() = at::Tensor();
  angular::release_gradient_buffers();
  CHECK(angular::free_gradient_buffer_bytes() == 0);
}
