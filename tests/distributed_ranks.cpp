// What a rank of the distributed tests runs (tests/distributed_test.cpp starts the ranks): the
// sharded losses against the single-process ones of the whole batch, and the worker table
// (the communication and failure workers are in distributed_fault_ranks.cpp). A worker returns
// 0 when its checks pass.

#include "support/distributed_workers.hpp"
#include "support/sharded_problem.hpp"

#include <angular/distributed.hpp>
#include <angular/loss.hpp>

#include <cstdio>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <optional>

namespace {

namespace F = angular::functional;
namespace dist = angular::distributed;
using namespace angular::test::sharded;

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

/// The fused CPU rows against the composite sharded path (the one above, under
/// CompositePathGuard): float16, bfloat16 and float32 products, ranks without classes (C < N)
/// or without rows, chunks that do not divide a rank's classes.
int fused_equals_composite(const dist::ProcessGroupPtr& group) {
  const int64_t rank = group->getRank(), ranks = group->getSize();
  int failures = 0;
  for (const auto dtype : {at::kHalf, at::kBFloat16, at::kFloat}) {
    const double rtol = dtype == at::kFloat ? 1e-5 : dtype == at::kHalf ? 2e-2 : 5e-2;
    for (const int64_t classes : {int64_t{2}, int64_t{37}}) {
      for (const auto& [name, base] : margins()) {
        for (const int64_t chunk : {int64_t{0}, int64_t{4}}) {
          const int64_t K = sub_centers_of(base);
          torch::manual_seed(21);
          std::vector<int64_t> rows;
          int64_t total = 0;
          for (int64_t r = 0; r < ranks; ++r) rows.push_back(r == 1 ? 0 : 3), total += rows.back();
          const at::Tensor x = torch::randn({total, kDim}).mul(3).to(dtype);
          const at::Tensor w = torch::randn({classes * K, kDim}).to(dtype);
          at::Tensor y = torch::randint(0, classes, {total}, torch::kLong);
          y[0] = -100;
          const dist::Margin margin = with_settings(base, 1, torch::rand({classes}).add(0.5));
          const dist::ClassRange range = dist::class_range(classes, rank, ranks);
          int64_t offset = 0;
          for (int64_t r = 0; r < rank; ++r) offset += rows[r];
          const auto run = [&](bool composite) {
            std::optional<angular::CompositePathGuard> guard;
            if (composite) guard.emplace();
            const at::Tensor xl = x.narrow(0, offset, rows[rank]).clone().requires_grad_();
            const at::Tensor ws = w.narrow(0, range.offset * K, range.count * K).clone().requires_grad_();
            const at::Tensor loss = dist::functional::sharded_margin_loss(
                xl, ws, y.narrow(0, offset, rows[rank]), group, classes, margin,
                dist::functional::ShardedLossFuncOptions()
                    .chunk_classes(chunk)
                    .norm_mean(torch::full({1}, 5.0))
                    .norm_std(torch::full({1}, 2.0))
                    .t(torch::full({1}, 0.3)));
            loss.backward();
            return std::vector<at::Tensor>{loss, xl.grad(), ws.grad()};
          };
          const auto fused = run(false), composite = run(true);
          bool ok = fused[0].scalar_type() == composite[0].scalar_type();
          for (size_t i = 0; i < fused.size(); ++i)
            ok = ok && (composite[i].numel() == 0 ? fused[i].numel() == 0 : close(fused[i], composite[i], rtol));
          if (!ok) {
            ++failures;
            std::cerr << "rank " << rank << " of " << ranks << ": fused " << name << ", C = " << classes << ", chunk "
                      << chunk << ", " << dtype << ": loss " << fused[0] << " composite " << composite[0] << "\n";
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
      {"fused_equals_composite", fused_equals_composite},
      {"center_equals_single", center_equals_single},
      {"communication", communication_worker},
      {"bad_input_everywhere", bad_input_everywhere_worker},
      {"dead_rank", dead_rank_worker},
      {"group_not_kept_by_graph", group_not_kept_by_graph_worker},
      {"sampled_equals_kept_classes", sampled_equals_kept_classes_worker},
      {"unsampled_is_exact", unsampled_is_exact_worker},
#ifdef ANGULAR_WITH_TRAINER
      {"data_parallel_resnet_equals_single", data_parallel_resnet_equals_single},
      {"sharded_evaluation_equals_single", sharded_evaluation_equals_single},
#endif
  };
  const int status = workers.at(worker)(group);
  std::fflush(stderr);
  return status;
}

}  // namespace angular::test
