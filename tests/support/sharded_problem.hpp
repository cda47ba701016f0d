#pragma once
// The problem of the sharded-loss workers (tests/distributed_ranks.cpp,
// tests/distributed_fault_ranks.cpp): the whole batch and class vectors on every rank, the
// margins and cross-entropy settings they run over, the single-process loss they equal.

#include <angular/distributed.hpp>
#include <angular/loss.hpp>

#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace angular::test::sharded {

namespace F = angular::functional;
namespace dist = angular::distributed;

/// The same data on every rank: the whole batch (rank r has 2 + r rows), all C class vectors
/// (K per class), labels with an ignored row, class weights.
struct Problem {
  at::Tensor x, w, y, class_weight;
  std::vector<int64_t> rows;  // per rank
};

constexpr int64_t kClasses = 11, kDim = 6;

inline Problem make_problem(int64_t ranks, int64_t sub_centers, at::ScalarType dtype) {
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
inline at::Tensor single_process_loss(const dist::Margin& margin, const Problem& p, const at::Tensor& x, const at::Tensor& w,
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
inline dist::Margin with_settings(dist::Margin margin, int variant, const at::Tensor& class_weight) {
  std::visit(
      [&](auto& o) {
        if (variant == 1) o.label_smoothing(0.2).weight(class_weight);
        if (variant == 2) o.reduction(torch::kNone);
        if (variant == 3) o.reduction(torch::kSum).label_smoothing(0.1);
      },
      margin);
  return margin;
}

inline std::vector<std::pair<std::string, dist::Margin>> margins() {
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

inline int64_t sub_centers_of(const dist::Margin& m) {
  if (const auto* o = std::get_if<F::SubCenterArcFaceLossFuncOptions>(&m)) return o->sub_centers();
  return 1;
}

inline bool close(const at::Tensor& actual, const at::Tensor& expected, double rtol) {
  const double scale = expected.abs().max().item<double>();
  return actual.sizes() == expected.sizes() &&
         (actual.to(at::kDouble) - expected.to(at::kDouble)).abs().max().item<double>() <= rtol * std::max(scale, 1e-3);
}

}  // namespace angular::test::sharded
