#pragma once
// The optimizer step that class sampling (sample_rate < 1) calls for: rows of W whose classes
// were not kept get a zero gradient, but torch::optim::SGD would still move them by their
// weight decay and momentum. sgd_step_kept_ updates the kept classes' rows alone, with
// torch::optim::SGD's maths, and leaves the others and their momentum as they were, as if
// they had not been in the model for the step (PartialFC's first version did the same with
// per-step copies of the optimizer state).

#include <angular/detail/checks.hpp>

#include <torch/optim/sgd.h>

namespace angular::optim {

/// One SGD step on the rows of `weight` [C·K, D] (K rows per class) of the classes `kept`
/// (int64, local indices into the C classes, e.g. a loss's sampled_classes, less the shard's
/// offset for a sharded one), from weight.grad(). `momentum_buffer` [C·K, D] (zeros at first)
/// is this parameter's momentum; it may be undefined where options.momentum() is 0. Leave
/// weight out of torch::optim::SGD's parameters and call this after backward.
inline void sgd_step_kept_(const at::Tensor& weight, const at::Tensor& momentum_buffer, const at::Tensor& kept,
                           int64_t sub_centers, const torch::optim::SGDOptions& options) {
  TORCH_CHECK(weight.grad().defined(), "angular: sgd_step_kept_: weight has no gradient; call backward first");
  TORCH_CHECK(options.dampening() == 0, "angular: sgd_step_kept_ takes dampening 0 (a row's first step would "
              "need its own count), got dampening = ", options.dampening());
  TORCH_CHECK(options.momentum() == 0 || (momentum_buffer.defined() && momentum_buffer.sizes() == weight.sizes()),
              "angular: sgd_step_kept_: momentum_buffer must be [", weight.size(0), ", ", weight.size(1),
              "] like weight where momentum is ", options.momentum());
  TORCH_CHECK(sub_centers >= 1 && weight.size(0) % sub_centers == 0, "angular: sgd_step_kept_: sub_centers ",
              sub_centers, " does not divide weight's ", weight.size(0), " rows");
  at::NoGradGuard no_grad;
  at::Tensor rows = kept.to(weight.device(), at::kLong);
  if (sub_centers > 1) rows = (rows.unsqueeze(1) * sub_centers + at::arange(sub_centers, rows.options())).flatten();
  const at::Tensor w = weight.index_select(0, rows);
  at::Tensor step = weight.grad().index_select(0, rows);
  if (options.weight_decay() != 0) step.add_(w, options.weight_decay());
  if (options.momentum() != 0) {
    const at::Tensor buffer = momentum_buffer.index_select(0, rows).mul_(options.momentum()).add_(step);
    at::Tensor(momentum_buffer).index_copy_(0, rows, buffer);
    step = options.nesterov() ? step.add(buffer, options.momentum()) : buffer;
  }
  at::Tensor(weight).index_copy_(0, rows, w.sub(step, options.lr()));
}

}  // namespace angular::optim
