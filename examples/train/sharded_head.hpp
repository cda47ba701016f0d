#pragma once
// The loss head of a data-parallel run: the head make_loss builds, its class vectors split by
// classes over the ranks (angular::distributed::ShardedMarginLoss), and, for the evaluation on
// rank 0, that single-process head again holding every rank's shard.

#include "data_parallel.hpp"
#include "loss_head.hpp"

#include <torch/torch.h>
#include <angular/distributed.hpp>

#include <stdexcept>

namespace train {

/// The sharded loss's margin with the hyper-parameters of a single-process loss module.
inline angular::distributed::Margin margin_of(const torch::nn::Module& m) {
  namespace F = angular::functional;
  if (m.as<angular::SoftmaxLoss>()) return F::SoftmaxLossFuncOptions();
  if (const auto* a = m.as<angular::ArcLoss>()) return F::ArcLossFuncOptions().k(a->options.k());
  if (const auto* a = m.as<angular::ArcFaceLoss>())
    return F::ArcFaceLossFuncOptions().scale(a->options.scale()).margin(a->options.margin());
  if (const auto* a = m.as<angular::CombinedMarginLoss>())
    return F::CombinedMarginLossFuncOptions()
        .scale(a->options.scale())
        .m1(a->options.m1())
        .m2(a->options.m2())
        .m3(a->options.m3());
  if (const auto* a = m.as<angular::SphereFaceLoss>())
    return F::SphereFaceLossFuncOptions().margin(a->options.margin()).lambda(a->options.lambda());
  if (const auto* a = m.as<angular::SubCenterArcFaceLoss>())
    return F::SubCenterArcFaceLossFuncOptions()
        .sub_centers(a->options.sub_centers())
        .scale(a->options.scale())
        .margin(a->options.margin());
  if (const auto* a = m.as<angular::AdaFaceLoss>())
    return F::AdaFaceLossFuncOptions().scale(a->options.scale()).margin(a->options.margin()).h(a->options.h());
  if (const auto* a = m.as<angular::CurricularFaceLoss>())
    return F::CurricularFaceLossFuncOptions().scale(a->options.scale()).margin(a->options.margin());
  throw std::invalid_argument(
      "data-parallel runs shard the margin losses and the modified softmax; --loss center has no sharded head in "
      "angular-train");
}

/// This rank's shard of `full`'s class vectors (and its statistics' starting values) as a
/// ShardedMarginLoss head: every rank starts where the single-process run starts.
inline LossHead shard_loss(const LossHead& full, const DataParallel& dp) {
  const auto* sub_centers = full.module->as<angular::SubCenterArcFaceLoss>();
  const int64_t vectors_per_class = sub_centers ? sub_centers->options.sub_centers() : 1;
  const bool cosine = !full.module->as<angular::SoftmaxLoss>();  // the others' logits grow with the cosine
  const torch::Tensor weight = full.module->named_parameters()["weight"].detach();
  const int64_t classes = weight.size(0) / vectors_per_class;
  auto impl = std::make_shared<angular::distributed::ShardedMarginLossImpl>(
      angular::distributed::ShardedMarginLossOptions(classes, weight.size(1), dp.group, margin_of(*full.module)));
  const auto range = impl->classes();
  {
    torch::NoGradGuard no_grad;
    impl->weight.copy_(weight.narrow(0, range.offset * vectors_per_class, range.count * vectors_per_class));
  }
  return {impl, [impl](const torch::Tensor& f, const torch::Tensor& y) { return impl->forward(f, y); },
          [impl, dp, range, vectors_per_class, cosine](const torch::Tensor& f) {
            return sharded_predictions(dp, f, impl->weight.detach(), range.offset, vectors_per_class, cosine);
          },
          nullptr};
}

/// Puts every rank's class vectors, and the statistics every rank holds alike, into `full` on
/// rank 0. Every rank calls it.
inline void gather_shards(const LossHead& sharded, const LossHead& full, const DataParallel& dp) {
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> shards = gather_to_root(dp, sharded.module->named_parameters()["weight"].detach());
  if (!dp.writes()) return;
  full.module->named_parameters()["weight"].copy_(torch::cat(shards));
  auto buffers = full.module->named_buffers();
  for (const auto& b : sharded.module->named_buffers()) buffers[b.key()].copy_(b.value());
}

}  // namespace train
