// What a rank of the distributed tests runs (tests/distributed_test.cpp starts the ranks): the
// sharded losses against the single-process ones of the whole batch, and their behaviour on
// bad input and a dead rank. A worker returns 0 when its checks pass.

#include "support/distributed_workers.hpp"

#include <angular/distributed.hpp>
#include <angular/loss.hpp>

#include <cstdio>
#include <functional>
#include <iostream>
#include <limits>
#include <map>

namespace {

namespace F = angular::functional;
namespace dist = angular::distributed;

// The flat collectives that angular calls, by their names in this LibTorch.
#if ANGULAR_C10D_SINGLE_COLLECTIVES
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

/// The same data on every rank: the whole batch (rank r has 2 + r rows), all C class vectors
/// (K per class), labels with an ignored row, class weights.
struct Problem {
  at::Tensor x, w, y, class_weight;
  std::vector<int64_t> rows;  // per rank
};

constexpr int64_t kClasses = 11, kDim = 6;

Problem make_problem(int64_t ranks, int64_t sub_centers, at::ScalarType dtype) {
  torch::manual_seed(7);
  Problem p;
  int64_t total = 0;
  for (int64_t r = 0; r < ranks; ++r) p.rows.push_back(2 + r), total += 2 + r;
  p.x = torch::randn({total, kDim}).mul(3).to(dtype);
  p.w = torch::randn({kClasses * sub_centers, kDim}).to(dtype);
  p.y = torch::randint(0, kClasses, {total}, torch::kLong);
  p.y[1] = -100;
  p.class_weight = torch::rand({kClasses}).add(0.5);
  return p;
}

/// The single-process loss of margin `m` over the whole batch, with the same settings.
at::Tensor single_process_loss(const dist::Margin& margin, const Problem& p, const at::Tensor& x, const at::Tensor& w,
                               const dist::functional::ShardedLossFuncOptions& stats) {
  return std::visit(
      [&](const auto& o) -> at::Tensor {
        using O = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<O, F::SoftmaxLossFuncOptions>) return F::softmax_loss(x, w, p.y, o);
        else if constexpr (std::is_same_v<O, F::ArcLossFuncOptions>) return F::linear_arc_loss(x, w, p.y, o);
        else if constexpr (std::is_same_v<O, F::ArcFaceLossFuncOptions>) return F::linear_arcface_loss(x, w, p.y, o);
        else if constexpr (std::is_same_v<O, F::CosFaceLossFuncOptions>) return F::linear_cosface_loss(x, w, p.y, o);
        else if constexpr (std::is_same_v<O, F::NormFaceLossFuncOptions>) return F::linear_normface_loss(x, w, p.y, o);
        else if constexpr (std::is_same_v<O, F::CombinedMarginLossFuncOptions>)
          return F::linear_combined_margin_loss(x, w, p.y, o);
        else if constexpr (std::is_same_v<O, F::SphereFaceLossFuncOptions>)
          return F::linear_sphereface_loss(x, w, p.y, o);
        else if constexpr (std::is_same_v<O, F::SubCenterArcFaceLossFuncOptions>)
          return F::linear_subcenter_arcface_loss(x, w, p.y, o);
        else if constexpr (std::is_same_v<O, F::AdaFaceLossFuncOptions>)
          return F::linear_adaface_loss(x, w, p.y, stats.norm_mean(), stats.norm_std(), o);
        else return F::linear_curricularface_loss(x, w, p.y, stats.t(), o);
      },
      margin);
}

/// Applies the cross-entropy settings of case `variant` (0 plain, 1 ignore_index + smoothing
/// + class weights, 2 per-sample losses, 3 sums) to the margin's options.
dist::Margin with_settings(dist::Margin margin, int variant, const at::Tensor& class_weight) {
  std::visit(
      [&](auto& o) {
        if (variant == 1) o.label_smoothing(0.2).weight(class_weight);
        if (variant == 2) o.reduction(torch::kNone);
        if (variant == 3) o.reduction(torch::kSum).label_smoothing(0.1);
      },
      margin);
  return margin;
}

std::vector<std::pair<std::string, dist::Margin>> margins() {
  return {{"softmax", F::SoftmaxLossFuncOptions()},
          {"arc", F::ArcLossFuncOptions()},
          {"arcface", F::ArcFaceLossFuncOptions().scale(8).margin(0.5)},
          {"arcface straight-through", F::ArcFaceLossFuncOptions().scale(8).exact_gradient(false)},
          {"cosface", F::CosFaceLossFuncOptions().scale(8).margin(0.3)},
          {"normface", F::NormFaceLossFuncOptions().scale(8)},
          {"combined", F::CombinedMarginLossFuncOptions().scale(8).m1(1.2).m2(0.3).m3(0.1)},
          {"sphereface", F::SphereFaceLossFuncOptions().margin(3).lambda(1.5)},
          {"sub-center arcface", F::SubCenterArcFaceLossFuncOptions().sub_centers(3).scale(8)},
          {"adaface", F::AdaFaceLossFuncOptions().scale(8)},
          {"curricularface", F::CurricularFaceLossFuncOptions().scale(8)}};
}

int64_t sub_centers_of(const dist::Margin& m) {
  if (const auto* o = std::get_if<F::SubCenterArcFaceLossFuncOptions>(&m)) return o->sub_centers();
  return 1;
}

bool close(const at::Tensor& actual, const at::Tensor& expected, double rtol) {
  const double scale = expected.abs().max().item<double>();
  return actual.sizes() == expected.sizes() &&
         (actual.to(at::kDouble) - expected.to(at::kDouble)).abs().max().item<double>() <= rtol * std::max(scale, 1e-3);
}

/// Every margin and cross-entropy setting, float32 and float64, one and several chunks: the
/// sharded loss and gradients equal the single-process ones of the whole batch.
int sharded_equals_single(const dist::ProcessGroupPtr& group) {
  const int64_t rank = group->getRank(), ranks = group->getSize();
  int failures = 0;
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    const double rtol = dtype == at::kFloat ? 1e-5 : 1e-10;
    for (const auto& [name, base] : margins()) {
      for (int variant = 0; variant < 4; ++variant) {
        for (const int64_t chunk : {int64_t{0}, int64_t{2}}) {
          const int64_t K = sub_centers_of(base);
          const Problem p = make_problem(ranks, K, dtype);
          const dist::Margin margin = with_settings(base, variant, p.class_weight);
          const auto stats = dist::functional::ShardedLossFuncOptions()
                                 .chunk_classes(chunk)
                                 .norm_mean(torch::full({1}, 5.0))
                                 .norm_std(torch::full({1}, 2.0))
                                 .t(torch::full({1}, 0.3));
          const at::Tensor x = p.x.clone().requires_grad_(), w = p.w.clone().requires_grad_();
          const at::Tensor expected = single_process_loss(margin, p, x, w, stats);
          expected.backward(torch::ones_like(expected));

          const dist::ClassRange classes = dist::class_range(kClasses, rank, ranks);
          int64_t row_offset = 0;
          for (int64_t r = 0; r < rank; ++r) row_offset += p.rows[r];
          const at::Tensor x_local = p.x.narrow(0, row_offset, p.rows[rank]).clone().requires_grad_();
          const at::Tensor w_shard = p.w.narrow(0, classes.offset * K, classes.count * K).clone().requires_grad_();
          const at::Tensor loss = dist::functional::sharded_margin_loss(
              x_local, w_shard, p.y.narrow(0, row_offset, p.rows[rank]), group, kClasses, margin, stats);
          loss.backward(torch::ones_like(loss));

          const at::Tensor expected_value = variant == 2 ? expected.narrow(0, row_offset, p.rows[rank]) : expected;
          const bool ok = close(loss, expected_value, rtol) &&
                          close(x_local.grad(), x.grad().narrow(0, row_offset, p.rows[rank]), rtol) &&
                          close(w_shard.grad(), w.grad().narrow(0, classes.offset * K, classes.count * K), rtol);
          if (!ok) {
            ++failures;
            std::cerr << "rank " << rank << " of " << ranks << ": " << name << ", settings " << variant << ", chunk "
                      << chunk << ", " << dtype << ": loss " << loss << " expected " << expected_value << "\n";
          }
        }
      }
    }
  }
  return failures == 0 ? 0 : 1;
}

/// The module over two training steps: its loss, its shard's gradient and the running
/// statistics equal the single-process module's.
int module_equals_single(const dist::ProcessGroupPtr& group) {
  const int64_t rank = group->getRank(), ranks = group->getSize();
  int failures = 0;
  auto check = [&](const std::string& name, torch::nn::Module& single, const dist::Margin& margin,
                   const std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>& single_forward,
                   const char* buffer) {
    dist::ShardedMarginLoss sharded(dist::ShardedMarginLossOptions(kClasses, kDim, group, margin));
    const dist::ClassRange classes = sharded->classes();
    const int64_t K = sharded->weight.size(0) / std::max<int64_t>(classes.count, 1);
    at::Tensor full = single.named_parameters()["weight"];  // the same parameter
    {
      torch::NoGradGuard no_grad;
      sharded->weight.copy_(full.narrow(0, classes.offset * K, sharded->weight.size(0)));
    }
    for (int step = 0; step < 2; ++step) {
      Problem p = make_problem(ranks, 1, at::kFloat);
      p.x.mul_(step + 1);  // other norms (AdaFace's statistics move)
      if (step == 1) p.y = p.y.roll(1);
      int64_t row_offset = 0;
      for (int64_t r = 0; r < rank; ++r) row_offset += p.rows[r];
      full.mutable_grad() = at::Tensor();
      sharded->weight.mutable_grad() = at::Tensor();
      const at::Tensor expected = single_forward(p.x, p.y);
      expected.backward();
      const at::Tensor loss =
          sharded->forward(p.x.narrow(0, row_offset, p.rows[rank]), p.y.narrow(0, row_offset, p.rows[rank]));
      loss.backward();
      bool ok = close(loss, expected, 1e-5) &&
                close(sharded->weight.grad(), full.grad().narrow(0, classes.offset * K, sharded->weight.size(0)), 1e-5);
      if (buffer != nullptr) ok = ok && close(sharded->named_buffers()[buffer], single.named_buffers()[buffer], 1e-6);
      if (!ok) {
        ++failures;
        std::cerr << "rank " << rank << ": module " << name << ", step " << step << ": loss " << loss.item<double>()
                  << " expected " << expected.item<double>() << "\n";
      }
    }
  };
  torch::manual_seed(11);  // the same class vectors on every rank
  angular::ArcFaceLoss arcface(angular::ArcFaceLossOptions(kClasses, kDim).scale(8));
  check("arcface", *arcface, F::ArcFaceLossFuncOptions().scale(8),
        [&](const at::Tensor& x, const at::Tensor& y) { return arcface(x, y); }, nullptr);
  // The margin as angular-train shards a head: the module's own func_options(), every setting
  // with it (the trainer's margin_of once dropped the straight-through gradient and smoothing).
  torch::manual_seed(11);  // the same class vectors on every rank
  angular::ArcFaceLoss straight(angular::ArcFaceLossOptions(kClasses, kDim)
                                    .scale(8)
                                    .exact_gradient(false)
                                    .label_smoothing(0.2)
                                    .weight(at::linspace(0.5, 1.5, kClasses)));
  check("straight-through smoothed weighted arcface", *straight, straight->func_options(),
        [&](const at::Tensor& x, const at::Tensor& y) { return straight(x, y); }, nullptr);
  torch::manual_seed(11);  // the same class vectors on every rank
  angular::SubCenterArcFaceLoss subcenter(angular::SubCenterArcFaceLossOptions(kClasses, kDim).sub_centers(2).scale(8));
  check("sub-center arcface", *subcenter, F::SubCenterArcFaceLossFuncOptions().sub_centers(2).scale(8),
        [&](const at::Tensor& x, const at::Tensor& y) { return subcenter(x, y); }, nullptr);
  torch::manual_seed(11);  // the same class vectors on every rank
  angular::AdaFaceLoss adaface(angular::AdaFaceLossOptions(kClasses, kDim).scale(8));
  check("adaface", *adaface, F::AdaFaceLossFuncOptions().scale(8),
        [&](const at::Tensor& x, const at::Tensor& y) { return adaface(x, y); }, "norm_std");
  torch::manual_seed(11);  // the same class vectors on every rank
  angular::CurricularFaceLoss curricular(angular::CurricularFaceLossOptions(kClasses, kDim).scale(8));
  check("curricularface", *curricular, F::CurricularFaceLossFuncOptions().scale(8),
        [&](const at::Tensor& x, const at::Tensor& y) { return curricular(x, y); }, "t");
  return failures == 0 ? 0 : 1;
}

/// The center loss with sharded class vectors and centers, and the sharded center update,
/// against functional::center_loss and update_centers_ of the whole batch.
int center_equals_single(const dist::ProcessGroupPtr& group) {
  const int64_t rank = group->getRank(), ranks = group->getSize();
  const dist::ClassRange classes = dist::class_range(kClasses, rank, ranks);
  int failures = 0;
  for (int variant = 0; variant < 4; ++variant) {
    const Problem p = make_problem(ranks, 1, at::kDouble);
    const at::Tensor all_centers = torch::randn({kClasses, kDim}, torch::kDouble);
    auto options = F::CenterLossFuncOptions().lambda(0.7);
    if (variant == 1) options.label_smoothing(0.2).weight(p.class_weight);
    if (variant == 2) options.reduction(torch::kNone);
    if (variant == 3) options.reduction(torch::kSum);
    const at::Tensor x = p.x.clone().requires_grad_(), w = p.w.clone().requires_grad_(),
                     c = all_centers.clone().requires_grad_();
    const at::Tensor expected = F::center_loss(x, w, c, p.y, options);
    expected.backward(torch::ones_like(expected));

    int64_t row_offset = 0;
    for (int64_t r = 0; r < rank; ++r) row_offset += p.rows[r];
    const at::Tensor x_local = p.x.narrow(0, row_offset, p.rows[rank]).clone().requires_grad_();
    const at::Tensor y_local = p.y.narrow(0, row_offset, p.rows[rank]);
    const at::Tensor w_shard = p.w.narrow(0, classes.offset, classes.count).clone().requires_grad_();
    at::Tensor c_shard = all_centers.narrow(0, classes.offset, classes.count).clone().requires_grad_();
    const at::Tensor loss = dist::functional::sharded_center_loss(x_local, w_shard, c_shard, y_local, group, kClasses,
                                                                  options);
    loss.backward(torch::ones_like(loss));
    bool ok = close(loss, variant == 2 ? expected.narrow(0, row_offset, p.rows[rank]) : expected, 1e-10) &&
              close(x_local.grad(), x.grad().narrow(0, row_offset, p.rows[rank]), 1e-10) &&
              close(w_shard.grad(), w.grad().narrow(0, classes.offset, classes.count), 1e-10) &&
              close(c_shard.grad(), c.grad().narrow(0, classes.offset, classes.count), 1e-10);

    at::Tensor moved = all_centers.clone(), moved_shard = c_shard.detach().clone();
    F::update_centers_(moved, p.x, p.y, 0.5);
    dist::functional::update_sharded_centers_(moved_shard, x_local.detach(), y_local, group, kClasses, 0.5);
    ok = ok && close(moved_shard, moved.narrow(0, classes.offset, classes.count), 1e-12);
    if (!ok) {
      ++failures;
      std::cerr << "rank " << rank << ": center loss, settings " << variant << ": loss " << loss << " expected "
                << expected << "\n";
    }
  }
  return failures == 0 ? 0 : 1;
}

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

}  // namespace

namespace angular::test {

int run_distributed_worker(const std::string& worker) {
  torch::set_num_threads(1);
  const auto env = dist::launch_environment();
  if (!env) return 2;
  const auto timeout = worker == "dead_rank" ? std::chrono::seconds(10) : std::chrono::seconds(120);
  const auto group = dist::init_process_group(*env, c10::kCPU, timeout);
  const std::map<std::string, std::function<int(const dist::ProcessGroupPtr&)>> workers{
      {"sharded_equals_single", sharded_equals_single},
      {"module_equals_single", module_equals_single},
      {"center_equals_single", center_equals_single},
      {"communication", communication},
      {"bad_input_everywhere", bad_input_everywhere},
      {"dead_rank", dead_rank},
#ifdef ANGULAR_WITH_TRAINER
      {"data_parallel_resnet_equals_single", data_parallel_resnet_equals_single},
#endif
  };
  const int status = workers.at(worker)(group);
  std::fflush(stderr);
  return status;
}

}  // namespace angular::test
