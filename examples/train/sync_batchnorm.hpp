#pragma once
// BatchNorm2d whose training-mode statistics are those of the whole batch spread over the ranks
// of a process group (PyTorch's SyncBatchNorm): a data-parallel step then computes what one
// process computes on the concatenated batch. Without a group, or in eval mode, it is
// torch::nn::BatchNorm2d, whose parameters and buffers it keeps (same names, same checkpoints).
// Per layer and step: one [2C + 1] all-reduce forward, one [2C] backward.

#include <torch/torch.h>
#include <angular/distributed/collectives.hpp>

#include <utility>

namespace train {

using ProcessGroupPtr = angular::distributed::ProcessGroupPtr;

namespace detail {

/// y = (x − μ)/√(σ² + ε)·γ + β with μ, σ² over (N, H, W) of every rank's x; the running
/// statistics move by the global μ and the unbiased σ².
struct SyncBatchNormFunction : torch::autograd::Function<SyncBatchNormFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, torch::Tensor running_mean,
                               torch::Tensor running_var, double momentum, double eps, const ProcessGroupPtr& group) {
    const int64_t channels = x.size(1);
    // Sums in float64: the variance is E[x²] − μ², which float32 would cancel badly.
    const torch::Tensor x64 = x.to(torch::kDouble);
    torch::Tensor stats = torch::cat({x64.sum({0, 2, 3}), x64.square().sum({0, 2, 3}),
                                      torch::full({1}, static_cast<double>(x.numel() / std::max<int64_t>(channels, 1)),
                                                  x64.options())});
    angular::distributed::all_reduce_(group, stats, c10d::ReduceOp::SUM);
    const double count = stats[2 * channels].item<double>();
    TORCH_CHECK(count > 1, "SyncBatchNorm: ", count, " value(s) per channel over every rank; training needs more than 1");
    const torch::Tensor mean = stats.narrow(0, 0, channels) / count;
    const torch::Tensor var = (stats.narrow(0, channels, channels) / count - mean.square()).clamp_min(0);
    const torch::Tensor invstd = (var + eps).rsqrt();
    {
      torch::NoGradGuard no_grad;
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
      running_var.mul_(1 - momentum).add_((var * (count / (count - 1))).to(running_var.scalar_type()), momentum);
    }
    const torch::Tensor scale = (weight.to(torch::kDouble) * invstd).to(x.scalar_type());
    const torch::Tensor shift = (bias.to(torch::kDouble) - mean * weight.to(torch::kDouble) * invstd).to(x.scalar_type());
    ctx->save_for_backward({x, weight, mean.to(x.scalar_type()), invstd.to(x.scalar_type())});
    ctx->saved_data["group"] = c10::IValue::make_capsule(group);
    ctx->saved_data["count"] = count;
    return x * scale.view({1, channels, 1, 1}) + shift.view({1, channels, 1, 1});
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1];
    const int64_t channels = x.size(1);
    const auto per_channel = [channels](const torch::Tensor& t) { return t.view({1, channels, 1, 1}); };
    const torch::Tensor xhat = (x - per_channel(saved[2])) * per_channel(saved[3]);
    const torch::Tensor dy = grads[0].contiguous();
    // This rank's share of ∂L/∂β and ∂L/∂γ; the trainer sums the parameters' gradients.
    const torch::Tensor dbias = dy.sum({0, 2, 3}), dweight = (dy * xhat).sum({0, 2, 3});
    torch::Tensor sums = torch::cat({dbias, dweight});
    const auto group = c10::static_intrusive_pointer_cast<c10d::ProcessGroup>(ctx->saved_data["group"].toCapsule());
    angular::distributed::all_reduce_(group, sums, c10d::ReduceOp::SUM);
    const double count = ctx->saved_data["count"].toDouble();
    const torch::Tensor mean_dy = sums.narrow(0, 0, channels) / count;
    const torch::Tensor mean_dy_xhat = sums.narrow(0, channels, channels) / count;
    const torch::Tensor dx = per_channel(weight * saved[3]) * (dy - per_channel(mean_dy) - xhat * per_channel(mean_dy_xhat));
    return {dx, dweight, dbias, {}, {}, {}, {}, {}};
  }
};

}  // namespace detail

class SyncBatchNorm2dImpl : public torch::nn::BatchNorm2dImpl {
 public:
  /// `group` null: a plain BatchNorm2d.
  SyncBatchNorm2dImpl(int64_t num_features, ProcessGroupPtr group)
      : torch::nn::BatchNorm2dImpl(num_features), group_(std::move(group)) {}

  torch::Tensor forward(const torch::Tensor& x) {
    if (!group_ || !is_training()) return torch::nn::BatchNorm2dImpl::forward(x);
    TORCH_CHECK(x.dim() == 4 && x.size(1) == options.num_features(), "SyncBatchNorm2d: expected [N, ",
                options.num_features(), ", H, W], got ", x.sizes());
    {
      torch::NoGradGuard no_grad;
      num_batches_tracked.add_(1);
    }
    return detail::SyncBatchNormFunction::apply(x, weight, bias, running_mean, running_var,
                                                options.momentum().value(), options.eps(), group_);
  }

 private:
  ProcessGroupPtr group_;
};
TORCH_MODULE(SyncBatchNorm2d);

}  // namespace train
