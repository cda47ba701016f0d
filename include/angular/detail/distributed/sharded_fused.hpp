#pragma once
// The class-sharded margin cross-entropy on the fused CPU rows: the blocked pass of
// detail/class_blocks.hpp over this rank's classes, with two all-reduces of [B] vectors between
// its sweeps (the rows' max, then their sums against it) giving every row its lse over all
// classes. This rank's share of ∂L/∂x̂ and its shard's ∂L/∂W come from its blocks. A reduced
// loss writes its gradients during the forward (for an upstream 1); per-sample losses run the
// gradient sweep in the backward, which alone knows the upstream.

#include <angular/detail/autograd/margin_cross_entropy.hpp>
#include <angular/detail/class_blocks.hpp>
#include <angular/detail/distributed/sharded_cross_entropy.hpp>

namespace angular::detail {

/// Whether this is rank 0, which alone adds terms that every rank would add alike (SphereFace's
/// norm term of ∂L/∂x, whose shares the ranks sum).
inline bool first_rank(const ShardedSpec& s) { return s.group->getRank() == 0; }

struct FusedShardedMarginCrossEntropy : torch::autograd::Function<FusedShardedMarginCrossEntropy> {
  /// As ShardedMarginCrossEntropy::forward, on the CPU.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& features, const at::Tensor& weight,
                            const at::Tensor& target, const at::Tensor& row_params, const ShardedSpec& s) {
    const BlockedRows r = blocked_rows(s, features, weight, target, row_params, [&](const at::Tensor& x_hat) {
      return shared_label_cosines(s, x_hat, weight, target);
    });
    const bool grad_x = features.requires_grad(), grad_w = weight.requires_grad();
    const bool in_forward = s.spec.reduction != at::Reduction::None && (grad_x || grad_w);
    const at::Tensor workspace = block_workspace(r);
    const at::Tensor grad_weight = in_forward && grad_w ? gradient_buffer(r) : at::Tensor();
    BlockStatistics statistics = block_statistics(r, workspace, grad_weight);
    // The sums against the max over every rank, all-reduced at once.
    at::Tensor global_max = statistics.max.clone();
    distributed::all_reduce_(s.group, global_max, c10d::ReduceOp::MAX);
    const at::Tensor rescale = at::exp(statistics.max - global_max);
    at::Tensor& sums = statistics.sums;
    sums[0].mul_(rescale);
    if (sums.size(0) > 3) sums[3].mul_(rescale);
    distributed::all_reduce_(s.group, sums, c10d::ReduceOp::SUM);
    const BlockedLosses losses = blocked_losses(s, global_max, sums, target);
    const TargetWeights& tw = losses.weights;

    write_row_losses(s, losses.row_loss);
    ctx->saved_data["in_forward"] = in_forward;
    if (in_forward) {
      at::Tensor factor = tw.kept;
      if (s.spec.reduction == at::Reduction::Mean) factor = factor / tw.label.sum();
      const BlockedGradients g = blocked_gradients(r, workspace, /*statistics_ran=*/true, losses, factor, grad_x,
                                                   grad_weight, first_rank(s), features.scalar_type());
      ctx->save_for_backward({g.features, g.weight});
    } else {
      ctx->save_for_backward(
          {features, weight, target, row_params, losses.lse, losses.row_loss, losses.entropy, r.label_cosines});
      ctx->saved_data["spec"] =
          c10::IValue::make_capsule(c10::make_intrusive<ShardedMarginCrossEntropy::SpecHolder>(s));
    }
    if (s.spec.reduction == at::Reduction::None) return losses.row_loss;
    if (s.spec.reduction == at::Reduction::Sum) return losses.row_loss.sum();
    return losses.row_loss.sum() / tw.label.sum();
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    check_differentiated_once();
    const auto saved = ctx->get_saved_variables();
    if (ctx->saved_data["in_forward"].toBool())
      return {times_upstream(saved[0], grads[0]), times_upstream(saved[1], grads[0]), {}, {}, {}};
    const ShardedSpec s =
        c10::static_intrusive_pointer_cast<ShardedMarginCrossEntropy::SpecHolder>(ctx->saved_data["spec"].toCapsule())
            ->restored();
    const at::Tensor &features = saved[0], &weight = saved[1], &target = saved[2];
    const BlockedRows r =
        blocked_rows(s, features, weight, target, saved[3], [&](const at::Tensor&) { return saved[7]; });
    BlockedLosses losses{saved[4], saved[6], saved[5], target_weights(s, target, saved[4].options())};
    const at::Tensor factor =
        at::where(losses.weights.kept > 0, grads[0].to(saved[4].scalar_type()) * losses.weights.kept, 0);
    const BlockedGradients g = blocked_gradients(
        r, block_workspace(r), /*statistics_ran=*/false, losses, factor, ctx->needs_input_grad(0),
        ctx->needs_input_grad(1) ? gradient_buffer(r) : at::Tensor(), first_rank(s), features.scalar_type());
    return {g.features, g.weight, {}, {}, {}};
  }
};

/// The sharded cross-entropy on the fused CPU rows where kernel_path() gives them, else
/// composite (CUDA: the fused rows are CPU-only so far).
inline at::Tensor sharded_cross_entropy(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& target,
                                        const at::Tensor& row_params, const ShardedSpec& s) {
  if (kernel_path(features) == KernelPath::fused_cpu)
    return FusedShardedMarginCrossEntropy::apply(features, weight, target, row_params, s);
  return ShardedMarginCrossEntropy::apply(features, weight, target, row_params, s);
}

}  // namespace angular::detail
