#pragma once
// The fused margin cross-entropy of cosines, without autograd: the losses and the gradients
// asked for, from a device's row kernels (detail/row_loss.hpp). The one body behind every face:
// the C++ autograd function (detail/autograd/margin_cross_entropy.hpp) and the dispatcher
// operators' CPU and CUDA kernels (ops/kernels.hpp).

#include <angular/detail/checks.hpp>
#include <angular/detail/cpu/margin_cross_entropy.hpp>
#include <angular/detail/row_loss.hpp>
#include <angular/detail/row_parameters.hpp>
#include <angular/kernel_path.hpp>

#include <array>

namespace angular::detail {

/// A validated problem over cosines: cos [B, C·K], the margin's per-row parameters row_params
/// [B, P] (undefined where P = 0; SphereFace's are the feature norms, which get a gradient),
/// labels, the margin and the cross-entropy.
struct CosineProblem {
  at::Tensor cos, row_params, target;
  MarginKind margin = MarginKind::arc;
  MarginParams params;
  CrossEntropySpec spec;
};

/// A loss (reduced as the problem asks) and the gradients asked for of its two differentiable
/// inputs (cos and row_params; features and weight), undefined where not asked.
struct LossAndGradients {
  at::Tensor loss, grad_a, grad_b;
};

inline RowKernels row_kernels_for(KernelPath path) {
  switch (path) {
    case KernelPath::fused_cpu: return {&cpu::forward, nullptr, /*scales_columns=*/true};
    case KernelPath::fused_cuda: return cuda_row_kernels();
    case KernelPath::composite: break;
  }
  TORCH_CHECK(false, "angular: no fused kernels on this path (", to_string(path),
              "): CUDA tensors need the fused CUDA kernels (angular::cuda)");
}

/// Whether a path's kernels write the gradient during the forward (the CPU's), so that a
/// forward that may be differentiated keeps the gradient rather than its inputs.
inline bool gradient_in_forward(KernelPath path) { return row_kernels_for(path).backward == nullptr; }

/// Σ_{i not ignored} w_{y_i}: the divisor of the mean, as PyTorch's cross-entropy.
inline at::Tensor mean_divisor(const at::Tensor& target, const at::Tensor& class_weight, int64_t ignore_index,
                               at::ScalarType dtype) {
  const auto [labels, kept] = indexable_target(target, ignore_index);
  if (!class_weight.defined()) return kept.sum().to(dtype);
  return (class_weight.index_select(0, clamp_labels(labels, class_weight.size(0))) * kept).sum();
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
  args.weight_sum = args.class_weight.defined() ? args.class_weight.sum()
                                                : at::scalar_tensor(static_cast<double>(classes), options);
  args.row_params = kernel_row_params(row_params, margin, dtype);
  args.margin = margin;
  args.params = params;
  args.label_smoothing = spec.label_smoothing;
  args.ignore_index = spec.ignore_index;
  return args;
}

/// Each row's factor a_i in the gradient of Σ_i a_i·loss_i that `upstream` and the reduction
/// ask for: a number (`scale`, read on the CPU only) or a [B] tensor (`rows`, compute dtype).
struct RowFactors {
  double scale = 1.0;
  at::Tensor rows;
  at::Tensor as_tensor(const at::TensorOptions& options) const {
    return rows.defined() ? rows : at::scalar_tensor(scale, options);
  }
};

/// The factors of a loss over `rows` rows reduced by `reduction` over `divisor` (mean only),
/// for an upstream gradient `upstream` (undefined: 1; [B] for per-row losses, else a scalar).
/// A device's numbers stay on the device.
inline RowFactors row_factors(int64_t rows, int64_t reduction, const at::Tensor& divisor, const at::Tensor& upstream,
                              const at::TensorOptions& options) {
  const bool mean = reduction == at::Reduction::Mean;
  RowFactors f;
  if (!upstream.defined() && options.device().is_cpu()) {
    if (mean) f.scale = 1.0 / divisor.item<double>();
    return f;
  }
  at::Tensor a = upstream.defined() ? upstream.to(options.dtype()) : at::ones({}, options);
  if (mean) a = a / divisor;
  f.rows = a.expand({rows}).contiguous();
  return f;
}

/// The loss of `p` and, where `wanted` asks, the gradients of cos and of row_params (those of a
/// margin that scales rows by them; other per-row parameters get none) for the upstream
/// gradient `upstream` (see row_factors), on the fused path of cos's device. The kernels
/// compute in float32 (float64 for double); the gradients have their inputs' dtypes.
inline LossAndGradients fused_margin_cross_entropy(const CosineProblem& p, std::array<bool, 2> wanted,
                                                   const at::Tensor& upstream = {}) {
  const RowKernels kernels = row_kernels_for(kernel_path(p.cos));
  const auto dtype = compute_dtype(p.cos);
  const auto options = p.cos.options().dtype(dtype);
  const int64_t rows = p.cos.size(0), classes = p.cos.size(1) / p.params.sub_centers;
  RowLossArgs args = row_loss_args(p.target, p.margin, p.params, p.row_params, p.spec, classes, options);
  args.cos = p.cos.contiguous();

  const at::Tensor divisor = p.spec.reduction == at::Reduction::Mean
                                 ? mean_divisor(args.target, args.class_weight, p.spec.ignore_index, dtype)
                                 : at::Tensor();
  const bool grad_rows = wanted[1] && margin_scales_rows(p.margin) && p.row_params.defined();
  const RowFactors factors =
      wanted[0] || grad_rows ? row_factors(rows, p.spec.reduction, divisor, upstream, options) : RowFactors{};
  RowOutputs out;
  out.lse = at::empty({rows}, options);
  out.row_loss = at::empty({rows}, options);
  if (grad_rows) out.entropy = at::empty({rows}, options);
  if (wanted[0]) out.grad_cos = at::empty_like(args.cos);
  if (rows > 0) {
    if (kernels.backward == nullptr) {  // the forward writes the gradient
      args.row_scale = factors.rows;
      kernels.forward(args, out, factors.scale);
    } else {
      RowOutputs values = out;
      values.grad_cos = at::Tensor();
      kernels.forward(args, values, 1.0);
      if (wanted[0]) kernels.backward(args, out.lse, factors.as_tensor(options).expand({rows}).contiguous(), out.grad_cos);
    }
  }

  LossAndGradients result;
  result.loss = reduce_rows(out.row_loss, p.spec.reduction, divisor);
  result.grad_a = out.grad_cos;
  if (grad_rows) {
    result.grad_b = row_factor_gradient(args, classes, out.row_loss, out.entropy, factors.as_tensor(options),
                                        args.row_params.select(1, 0))
                        .unsqueeze(1)
                        .to(p.row_params.scalar_type());
  }
  return result;
}

}  // namespace angular::detail
