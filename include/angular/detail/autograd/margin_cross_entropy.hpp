#pragma once
// The fused margin cross-entropy as an autograd function over a device's row kernels
// (detail/row_loss.hpp). The forward keeps one [B, C] tensor + O(B) for the backward,
// against the composite's several.

#include <angular/detail/checks.hpp>
#include <angular/detail/cpu/margin_cross_entropy.hpp>
#include <angular/detail/reference.hpp>
#include <angular/detail/row_loss.hpp>
#include <angular/detail/row_parameters.hpp>
#include <angular/kernel_path.hpp>

#include <torch/csrc/autograd/custom_function.h>

#include <type_traits>

namespace angular::detail {

inline RowKernels row_kernels_for(KernelPath path) {
  switch (path) {
    case KernelPath::fused_cpu: return {&cpu::forward, nullptr, /*scales_columns=*/true};
    case KernelPath::fused_cuda: return cuda_row_kernels();
    case KernelPath::composite: break;
  }
  TORCH_CHECK(false, "angular: no row kernels for the ", to_string(path), " path");
}

/// Σ_{i not ignored} w_{y_i}: the divisor of the mean, as PyTorch's cross-entropy.
inline at::Tensor mean_divisor(const at::Tensor& target, const at::Tensor& class_weight,
                               int64_t ignore_index, at::ScalarType dtype) {
  const auto [labels, kept] = indexable_target(target, ignore_index);
  if (!class_weight.defined()) return kept.sum().to(dtype);
  return (class_weight.index_select(0, clamp_labels(labels, class_weight.size(0))) * kept).sum();
}

/// A gradient written during the forward for an upstream 1, scaled by the scalar upstream
/// gradient; as it is for the common `loss.backward()`, with no pass over it. Only a CPU
/// upstream is read: reading a device's would wait for it.
inline at::Tensor times_upstream(const at::Tensor& grad, const at::Tensor& upstream) {
  if (!grad.defined() || (upstream.device().is_cpu() && upstream.item<double>() == 1.0)) return grad;
  return grad * upstream.to(grad.scalar_type());
}

/// The per-row losses reduced: as they are, summed, or summed over the mean's divisor.
inline at::Tensor reduce_rows(const at::Tensor& row_loss, int64_t reduction, const at::Tensor& divisor) {
  if (reduction == at::Reduction::None) return row_loss;
  if (reduction == at::Reduction::Sum) return row_loss.sum();
  return row_loss.sum() / divisor;
}

/// The row kernels' arguments but `cos`: `options` has the compute dtype and the device;
/// `classes` is C (the cosines' columns over params.sub_centers).
inline RowLossArgs row_loss_args(const at::Tensor& target, MarginKind margin, const MarginParams& params,
                                 const at::Tensor& row_params, const CrossEntropySpec& spec, int64_t classes,
                                 const at::TensorOptions& options) {
  RowLossArgs args;
  const auto dtype = options.dtype().toScalarType();
  args.target = target.contiguous();
  if (spec.class_weight.defined()) args.class_weight = spec.class_weight.to(dtype).contiguous();
  args.weight_sum = args.class_weight.defined()
                        ? args.class_weight.sum()
                        : at::scalar_tensor(static_cast<double>(classes), options);
  args.row_params = kernel_row_params(row_params, margin, dtype);
  args.margin = margin;
  args.params = params;
  args.label_smoothing = spec.label_smoothing;
  args.ignore_index = spec.ignore_index;
  return args;
}

/// The row kernels' scalar settings and path, kept by name for a backward that recomputes.
inline void save_row_settings(torch::autograd::AutogradContext* ctx, const RowLossArgs& args,
                              KernelPath path) {
  ctx->saved_data["path"] = static_cast<int64_t>(path);
  ctx->saved_data["margin_kind"] = static_cast<int64_t>(args.margin);
  for_each_param(args.params, [&](const char* name, const auto& value) { ctx->saved_data[name] = value; });
  ctx->saved_data["label_smoothing"] = args.label_smoothing;
  ctx->saved_data["ignore_index"] = args.ignore_index;
}

/// Restores what save_row_settings kept into `args`; returns the path.
inline KernelPath restore_row_settings(torch::autograd::AutogradContext* ctx, RowLossArgs& args) {
  args.margin = static_cast<MarginKind>(ctx->saved_data["margin_kind"].toInt());
  for_each_param(args.params, [&](const char* name, auto& value) {
    const c10::IValue& saved = ctx->saved_data[name];
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, bool>) value = saved.toBool();
    else if constexpr (std::is_integral_v<T>) value = saved.toInt();
    else value = saved.toDouble();
  });
  args.label_smoothing = ctx->saved_data["label_smoothing"].toDouble();
  args.ignore_index = ctx->saved_data["ignore_index"].toInt();
  return static_cast<KernelPath>(ctx->saved_data["path"].toInt());
}

/// The backward's refusal of a graph of the gradient (create_graph = true): the fused kernels
/// are differentiable once.
inline void check_differentiated_once() {
  // Autograd runs a backward in grad mode only when it was asked for a graph of the
  // gradient; the fused ones would return a gradient without one.
  TORCH_CHECK(!at::GradMode::is_enabled(),
              "angular: the fused margin cross-entropy is differentiable once, and its backward was "
              "asked for a graph (create_graph = true). For higher-order gradients compute the loss "
              "inside an angular::CompositePathGuard, which takes the composite ATen path.");
}

/// A [B] or [B, 1] gradient for an upstream 1, times the upstream: per row for per-row losses.
inline at::Tensor times_row_upstream(const at::Tensor& grad, const at::Tensor& upstream, bool per_row) {
  if (!grad.defined() || !per_row) return times_upstream(grad, upstream);
  const at::Tensor u = upstream.to(grad.scalar_type());
  return grad * (grad.dim() == 2 ? u.unsqueeze(1) : u);
}

/// The fused op. Two strategies, by what the device's kernels offer: the CPU writes the
/// gradient during the forward and keeps only it (one [B, C] tensor); CUDA keeps cos and the
/// per-row logsumexp and recomputes the logits in the backward. Margins whose logits scale
/// with a row parameter (SphereFace's feature norms) also get that parameter's gradient.
struct FusedMarginCrossEntropy : torch::autograd::Function<FusedMarginCrossEntropy> {
  // The class weights travel inside `spec`, not as a tensor argument: they get no gradient
  // and may be undefined, which autograd's input tracking does not accept (row_params is an
  // empty tensor where the margin has none).
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& cos,
                            const at::Tensor& row_params, const at::Tensor& target, MarginKind margin,
                            const MarginParams& params, const CrossEntropySpec& spec) {
    const KernelPath path = kernel_path(cos);
    const RowKernels kernels = row_kernels_for(path);
    const auto dtype = compute_dtype(cos);
    const int64_t classes = cos.size(1) / params.sub_centers;
    RowLossArgs args = row_loss_args(target, margin, params, row_params, spec, classes, cos.options().dtype(dtype));
    args.cos = cos.contiguous();

    const int64_t rows = cos.size(0);
    const bool mean = spec.reduction == at::Reduction::Mean;
    const at::Tensor divisor =
        mean ? mean_divisor(args.target, args.class_weight, spec.ignore_index, dtype)
             : at::Tensor();
    RowOutputs out;
    out.lse = at::empty({rows}, cos.options().dtype(dtype));
    out.row_loss = at::empty({rows}, cos.options().dtype(dtype));
    const bool row_factor_grad = margin_scales_rows(margin) && row_params.requires_grad();
    if (row_factor_grad) out.entropy = at::empty({rows}, cos.options().dtype(dtype));
    const bool gradient_in_forward = kernels.backward == nullptr;
    if (gradient_in_forward && cos.requires_grad()) out.grad_cos = at::empty_like(args.cos);
    // The gradient written in the forward is that of the reduced loss for an upstream 1.
    const double scale = mean && out.grad_cos.defined() ? 1.0 / divisor.item<double>() : 1.0;
    if (rows > 0) kernels.forward(args, out, scale);

    if (gradient_in_forward) {
      at::Tensor grad_rows;
      if (row_factor_grad) {
        const at::Tensor factor = mean ? divisor.reciprocal() : at::ones({}, out.lse.options());
        grad_rows = row_factor_gradient(args, classes, out.row_loss, out.entropy, factor, args.row_params.select(1, 0))
                        .unsqueeze(1)
                        .to(row_params.scalar_type());
      }
      ctx->save_for_backward({out.grad_cos, grad_rows});
    } else {
      ctx->save_for_backward({args.cos, args.target, args.class_weight, args.weight_sum, out.lse, divisor,
                              args.row_params, row_factor_grad ? out.row_loss.clone() : at::Tensor(),
                              out.entropy});
      save_row_settings(ctx, args, path);
      ctx->saved_data["row_params_dtype"] = row_params.scalar_type();
    }
    ctx->saved_data["gradient_in_forward"] = gradient_in_forward;
    ctx->saved_data["reduction"] = spec.reduction;
    return reduce_rows(out.row_loss, spec.reduction, divisor);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    check_differentiated_once();
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& upstream = grads[0];
    const bool per_row = ctx->saved_data["reduction"].toInt() == at::Reduction::None;
    if (ctx->saved_data["gradient_in_forward"].toBool()) {
      return {times_row_upstream(saved[0], upstream, per_row), times_row_upstream(saved[1], upstream, per_row),
              {}, {}, {}, {}};
    }
    RowLossArgs args;
    args.cos = saved[0];
    args.target = saved[1];
    args.class_weight = saved[2];
    args.weight_sum = saved[3];
    const at::Tensor& lse = saved[4];
    const at::Tensor& divisor = saved[5];
    args.row_params = saved[6];
    const KernelPath path = restore_row_settings(ctx, args);

    const int64_t rows = args.cos.size(0);
    at::Tensor row_grad = upstream.to(lse.scalar_type());
    if (divisor.defined()) row_grad = row_grad / divisor;
    row_grad = row_grad.expand({rows}).contiguous();
    at::Tensor grad_cos = at::empty_like(args.cos);
    if (rows > 0) row_kernels_for(path).backward(args, lse, row_grad, grad_cos);
    at::Tensor grad_rows;
    if (saved[7].defined()) {
      const int64_t classes = args.cos.size(1) / args.params.sub_centers;
      grad_rows = row_factor_gradient(args, classes, saved[7], saved[8], row_grad, args.row_params.select(1, 0))
                      .unsqueeze(1)
                      .to(ctx->saved_data["row_params_dtype"].toScalarType());
    }
    return {grad_cos, grad_rows, {}, {}, {}, {}};
  }
};

}  // namespace angular::detail
