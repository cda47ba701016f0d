#pragma once
// The features-level fused margin cross-entropy as an autograd function over linear_pass
// (detail/linear_pass.hpp). With a reduced loss its forward writes both gradients for an
// upstream 1 and keeps only them (no [B, C] tensor lives past a chunk); with per-sample
// losses (kNone) the backward, which alone knows each row's upstream gradient, runs the pass
// again.

#include <angular/detail/autograd/margin_cross_entropy.hpp>
#include <angular/detail/linear_pass.hpp>

namespace angular::detail {

struct FusedLinearMarginCrossEntropy : torch::autograd::Function<FusedLinearMarginCrossEntropy> {
  // row_params: the margin's per-row parameters, which get no gradient (an empty tensor where
  // the margin has none, or where it scales rows: the features' norms are computed here).
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& features,
                            const at::Tensor& weight, const at::Tensor& row_params, const at::Tensor& target,
                            MarginKind margin, const MarginParams& params, const CrossEntropySpec& spec,
                            bool normalize, int64_t chunk_rows /* 0: automatic */) {
    const KernelPath path = kernel_path(features);
    const RowKernels kernels = row_kernels_for(path);
    const auto dtype = compute_dtype(features);
    LinearArgs args;
    args.features = features;
    args.weight = weight;
    args.row = row_loss_args(target, margin, params, margin_scales_rows(margin) ? at::Tensor() : row_params, spec,
                             weight.size(0) / params.sub_centers, features.options().dtype(dtype));
    args.normalize = normalize;
    args.chunk_rows = resolve_chunk_rows(chunk_rows, weight, kernels);

    const bool mean = spec.reduction == at::Reduction::Mean;
    const at::Tensor divisor =
        mean ? mean_divisor(args.row.target, args.row.class_weight, spec.ignore_index, dtype) : at::Tensor();
    const bool grad_features = features.requires_grad(), grad_weight = weight.requires_grad();
    const bool gradient_in_forward = spec.reduction != at::Reduction::None && (grad_features || grad_weight);
    // The gradients written in the forward are those of the reduced loss for an upstream 1:
    // 1/divisor, a number on the CPU, a tensor elsewhere (reading it would wait for the device).
    double scale = 1.0;
    at::Tensor row_scale;
    if (mean && gradient_in_forward) {
      if (features.is_cpu()) scale = 1.0 / divisor.item<double>();
      else row_scale = divisor.reciprocal().expand({features.size(0)}).contiguous();
    }
    LinearPass pass = linear_pass(args, kernels, gradient_in_forward && grad_features,
                                  gradient_in_forward && grad_weight, scale, row_scale);

    if (gradient_in_forward) {
      ctx->save_for_backward({pass.grad_features, pass.grad_weight});
    } else {
      ctx->save_for_backward(
          {features, weight, args.row.target, args.row.class_weight, args.row.weight_sum, args.row.row_params});
      save_row_settings(ctx, args.row, path);
      ctx->saved_data["normalize"] = normalize;
      ctx->saved_data["chunk_rows"] = args.chunk_rows;
    }
    ctx->saved_data["gradient_in_forward"] = gradient_in_forward;
    return reduce_rows(pass.row_loss, spec.reduction, divisor);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    check_differentiated_once();
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& upstream = grads[0];
    if (ctx->saved_data["gradient_in_forward"].toBool()) {
      return {times_upstream(saved[0], upstream), times_upstream(saved[1], upstream), {}, {}, {}, {}, {}, {}, {}};
    }
    LinearArgs args;
    args.features = saved[0];
    args.weight = saved[1];
    args.row.target = saved[2];
    args.row.class_weight = saved[3];
    args.row.weight_sum = saved[4];
    args.row.row_params = saved[5];
    const KernelPath path = restore_row_settings(ctx, args.row);
    args.normalize = ctx->saved_data["normalize"].toBool();
    args.chunk_rows = ctx->saved_data["chunk_rows"].toInt();
    const at::Tensor row_scale = upstream.to(args.row.weight_sum.scalar_type()).contiguous();
    LinearPass pass = linear_pass(args, row_kernels_for(path), ctx->needs_input_grad(0),
                                  ctx->needs_input_grad(1), 1.0, row_scale);
    return {pass.grad_features, pass.grad_weight, {}, {}, {}, {}, {}, {}, {}};
  }
};

}  // namespace angular::detail
