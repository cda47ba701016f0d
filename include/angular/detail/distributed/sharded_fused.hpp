#pragma once
// The class-sharded margin cross-entropy on the fused CPU rows (detail/cpu/shard_row_kernel.hpp),
// the features-level way (detail/linear_pass.hpp): per chunk of the rank's classes one product
// x̂ W_Jᵀ into a workspace, whose columns the kernel scales by q_j = 1/‖w_j‖; the partial sweep
// feeds the row's running max and sums; two all-reduces of [B] vectors give every row its lse
// over all classes; the gradient sweep writes G = ∂L/∂(x̂·w_j) over the products and two more
// products give this rank's share of ∂L/∂x̂ and its shard's ∂L/∂W. Where the rank's classes fit
// one workspace (C_r·K·B·4 bytes within kDefaultWorkspaceBytes: B = 64 up to C_r = 500 000)
// the products are kept across the all-reduces, three in all; more chunks compute each chunk's
// products again. A reduced loss writes its gradients during the forward (for an upstream 1);
// per-sample losses run the gradient sweep in the backward, which alone knows the upstream.

#include <angular/detail/cpu/shard_row_kernel.hpp>
#include <angular/detail/distributed/sharded_cross_entropy.hpp>
#include <angular/detail/linear_pass.hpp>
#include <angular/detail/autograd/margin_cross_entropy.hpp>

#include <limits>

namespace angular::detail {

/// The inputs of both sweeps, prepared once per call.
struct ShardedRows {
  const ShardedSpec* spec = nullptr;
  at::Tensor x_hat;        // [B, D] compute dtype: x̂ (or x for the modified softmax)
  at::Tensor operand;      // x_hat in the weight's dtype, contiguous: the products' left side
  at::Tensor weight;       // [C_r·K, D]
  RowNorms x_norms, w_norms;
  RowLossArgs row;         // target: the label codes; everything but cos, class_weight, column_scale
  at::Tensor class_weight; // [C_r] compute dtype, or undefined
  at::Tensor label_cosines;
  int64_t chunk = 1;       // classes per chunk
};

/// `label_cosines`: CurricularFace's, from the forward; computed (an all-reduce) where undefined.
inline ShardedRows sharded_rows(const ShardedSpec& s, const at::Tensor& features, const at::Tensor& weight,
                                const at::Tensor& target, const at::Tensor& row_params, at::Tensor label_cosines) {
  ShardedRows r;
  r.spec = &s;
  r.weight = weight;
  const auto compute = compute_dtype(features);
  const auto options = features.options().dtype(compute);
  r.x_hat = features.to(compute);
  if (s.normalize) {
    r.x_norms = row_norms(r.x_hat, compute);
    r.x_hat = r.x_hat * r.x_norms.inverse.unsqueeze(1);
    r.w_norms = row_norms(weight, compute);
  }
  r.operand = r.x_hat.to(weight.scalar_type()).contiguous();
  const int64_t first = s.classes.offset, count = s.classes.count;
  const at::Tensor here = (target >= first) & (target < first + count);
  r.row.target = at::where(target == s.spec.ignore_index, cpu::kLabelIgnored,
                           at::where(here, target - first, cpu::kLabelElsewhere))
                     .contiguous();
  r.row.margin = s.margin;
  r.row.params = s.params;
  r.row.label_smoothing = s.spec.label_smoothing;
  r.row.ignore_index = cpu::kLabelIgnored;
  r.row.weight_sum = at::zeros({}, options);  // the mass is the caller's (target_weights)
  r.row.row_params = s.normalize && margin_scales_rows(s.margin)
                         ? r.x_norms.inverse.reciprocal().unsqueeze(1).contiguous()
                         : kernel_row_params(row_params, s.margin, compute);
  if (s.spec.class_weight.defined())
    r.class_weight = s.spec.class_weight.narrow(0, first, count).to(options.dtype()).contiguous();
  if (s.margin == MarginKind::curricularface && !label_cosines.defined())
    label_cosines = shared_label_cosines(s, r.x_hat, weight, target);
  if (label_cosines.defined()) r.label_cosines = label_cosines.contiguous();
  const int64_t rows = std::max<int64_t>(features.size(0), 1), K = s.params.sub_centers;
  r.chunk = s.chunk_classes > 0 ? s.chunk_classes
                                : std::max<int64_t>(1, kDefaultWorkspaceBytes / (rows * K * weight.element_size()));
  r.chunk = std::max<int64_t>(1, std::min(r.chunk, count));
  return r;
}

/// The products of chunk [first, first + n) into `workspace`, and the kernel's arguments over them.
inline RowLossArgs chunk_args(const ShardedRows& r, const at::Tensor& workspace, int64_t first, int64_t n, bool compute) {
  const int64_t K = r.spec->params.sub_centers, rows = r.x_hat.size(0);
  RowLossArgs args = r.row;
  // The label codes of this chunk: indices among its classes, or "elsewhere" for the others.
  const at::Tensor& codes = r.row.target;
  args.target = at::where((codes >= first) & (codes < first + n), codes - first,
                          at::where(codes >= 0, cpu::kLabelElsewhere, codes))
                    .contiguous();
  args.cos = workspace.narrow(0, 0, rows * n * K).view({rows, n * K});
  if (compute) at::mm_out(args.cos, r.operand, r.weight.narrow(0, first * K, n * K).t());
  if (r.class_weight.defined()) args.class_weight = r.class_weight.narrow(0, first, n);
  if (r.spec->normalize) args.column_scale = r.w_norms.inverse.narrow(0, first * K, n * K);
  return args;
}

/// What the gradient sweep needs per row, and what the gradients come out as.
struct ShardedGradients {
  at::Tensor features, weight;
};

/// The gradient sweep over every chunk and the two products: this rank's share of ∂L/∂x (in the
/// features' dtype; SphereFace's norm term on rank 0 only, as the ranks' shares are summed)
/// and its shard's ∂L/∂W, for the per-row factors a_i. `workspace` holds the products of
/// the one chunk where `products_kept`.
inline ShardedGradients sharded_gradients(const ShardedRows& r, const at::Tensor& workspace, bool products_kept,
                                          const at::Tensor& lse, const at::Tensor& factor, const at::Tensor& mass,
                                          const at::Tensor& row_loss, const at::Tensor& entropy, bool grad_x,
                                          bool grad_w, at::ScalarType features_dtype) {
  const ShardedSpec& s = *r.spec;
  const int64_t K = s.params.sub_centers, count = s.classes.count;
  const auto compute = r.x_hat.scalar_type();
  const bool narrow_products = r.weight.scalar_type() != compute;
  at::Tensor grad_x_hat = grad_x ? at::zeros(r.x_hat.sizes(), r.x_hat.options()) : at::Tensor();
  at::Tensor grad_weight;
  if (grad_w) {
    grad_weight = empty_for_pass(r.weight.sizes(), r.x_hat.options());
    if (narrow_products) grad_weight.zero_();
  }
  const std::vector<at::Tensor> per_row{lse, factor, mass};
  const double per_class = s.spec.label_smoothing / static_cast<double>(s.num_classes);
  for (int64_t first = 0; first < count; first += r.chunk) {
    const int64_t n = std::min(r.chunk, count - first);
    const RowLossArgs args = chunk_args(r, workspace, first, n, !products_kept);
    cpu::shard_sweep(args, r.label_cosines, {}, per_row, per_class, args.cos);  // G over the products
    const at::Tensor& G = args.cos;
    const at::Tensor w = r.weight.narrow(0, first * K, n * K);
    if (grad_x) {
      if (narrow_products) grad_x_hat.add_(at::mm(G, w));
      else grad_x_hat.addmm_(G, w);
    }
    if (grad_w) {
      at::Tensor rows = grad_weight.narrow(0, first * K, n * K);
      add_weight_gradient(rows, G, r.operand, /*first=*/true);
    }
  }
  ShardedGradients out;
  if (grad_x) {
    if (s.normalize) {
      const at::Tensor along = (r.x_hat * grad_x_hat).sum(1) * r.x_norms.passes;
      grad_x_hat = (grad_x_hat - r.x_hat * along.unsqueeze(1)) * r.x_norms.inverse.unsqueeze(1);
      if (margin_scales_rows(s.margin) && s.group->getRank() == 0) {  // + ∂L/∂‖x_i‖·x̂_i, once over the ranks
        const at::Tensor norm_gradient = at::where(r.row.target != cpu::kLabelIgnored,
                                                   (row_loss - mass * entropy) * factor * r.x_norms.inverse, 0);
        grad_x_hat.addcmul_(r.x_hat, (norm_gradient * r.x_norms.passes).unsqueeze(1));
      }
    }
    out.features = grad_x_hat.to(features_dtype);
  }
  if (grad_w) {
    if (s.normalize) project_weight_gradient(grad_weight, r.weight, r.w_norms);
    out.weight = grad_weight.to(r.weight.scalar_type());
  }
  return out;
}

struct FusedShardedMarginCrossEntropy : torch::autograd::Function<FusedShardedMarginCrossEntropy> {
  /// As ShardedMarginCrossEntropy::forward, on the CPU.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& features,
                            const at::Tensor& weight, const at::Tensor& target, const at::Tensor& row_params,
                            const ShardedSpec& s) {
    const ShardedRows r = sharded_rows(s, features, weight, target, row_params, at::Tensor());
    const auto options = r.x_hat.options();
    const int64_t rows = features.size(0), K = s.params.sub_centers;
    const double lowest = options.dtype() == at::kDouble ? -std::numeric_limits<double>::max()
                                                         : -static_cast<double>(std::numeric_limits<float>::max());
    // max, then Σ exp(z − max), the label's z, Σ w_j z_j and (SphereFace's entropy) Σ e·z: all
    // but the max all-reduced at once.
    const bool entropy_needed = margin_scales_rows(s.margin);
    at::Tensor max = at::full({rows}, lowest, options);
    at::Tensor sums = at::zeros({entropy_needed ? 4 : 3, rows}, options);
    const at::Tensor dot = entropy_needed ? sums[3] : at::zeros({rows}, options);
    const std::vector<at::Tensor> state{max, sums[0], dot, sums[1], sums[2]};
    const at::Tensor workspace = empty_for_pass({rows * r.chunk * K}, weight.options());
    const int64_t count = s.classes.count;
    for (int64_t first = 0; first < count; first += r.chunk) {
      const RowLossArgs args = chunk_args(r, workspace, first, std::min(r.chunk, count - first), true);
      cpu::shard_sweep(args, r.label_cosines, state, {}, 0.0, at::Tensor());
    }
    at::Tensor global_max = max.clone();
    distributed::all_reduce_(s.group, global_max, c10d::ReduceOp::MAX);
    const at::Tensor rescale = at::exp(max - global_max);
    sums[0].mul_(rescale);
    if (entropy_needed) sums[3].mul_(rescale);
    distributed::all_reduce_(s.group, sums, c10d::ReduceOp::SUM);
    const at::Tensor lse = global_max + at::log(sums[0]);
    const at::Tensor entropy = entropy_needed ? lse - sums[3] / sums[0] : at::Tensor();
    const TargetWeights tw = target_weights(s, target, options);
    const double eps = s.spec.label_smoothing, per_class = eps / static_cast<double>(s.num_classes);
    const at::Tensor row_loss =
        at::where(tw.kept > 0, tw.mass * lse - (1 - eps) * tw.label * sums[1] - per_class * sums[2], 0);

    write_row_losses(s, row_loss);
    const bool grad_x = features.requires_grad(), grad_w = weight.requires_grad();
    const bool in_forward = s.spec.reduction != at::Reduction::None && (grad_x || grad_w);
    ctx->saved_data["in_forward"] = in_forward;
    if (in_forward) {
      at::Tensor factor = tw.kept;
      if (s.spec.reduction == at::Reduction::Mean) factor = factor / tw.label.sum();
      const ShardedGradients g = sharded_gradients(r, workspace, count <= r.chunk, lse, factor.contiguous(), tw.mass,
                                                   row_loss, entropy, grad_x, grad_w, features.scalar_type());
      ctx->save_for_backward({g.features, g.weight});
    } else {
      ctx->save_for_backward({features, weight, target, row_params, lse, tw.mass, row_loss, entropy, r.label_cosines});
      ctx->saved_data["spec"] = c10::IValue::make_capsule(c10::make_intrusive<ShardedMarginCrossEntropy::SpecHolder>(s));
    }
    if (s.spec.reduction == at::Reduction::None) return row_loss;
    if (s.spec.reduction == at::Reduction::Sum) return row_loss.sum();
    return row_loss.sum() / tw.label.sum();
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    check_differentiated_once();
    const auto saved = ctx->get_saved_variables();
    if (ctx->saved_data["in_forward"].toBool())
      return {times_upstream(saved[0], grads[0]), times_upstream(saved[1], grads[0]), {}, {}, {}};
    const auto holder =
        c10::static_intrusive_pointer_cast<ShardedMarginCrossEntropy::SpecHolder>(ctx->saved_data["spec"].toCapsule());
    const ShardedSpec& s = holder->spec;
    const at::Tensor &features = saved[0], &weight = saved[1], &target = saved[2];
    const ShardedRows r = sharded_rows(s, features, weight, target, saved[3], saved[8]);
    const at::Tensor& lse = saved[4];
    const TargetWeights tw = target_weights(s, target, lse.options());
    const at::Tensor factor = at::where(tw.kept > 0, grads[0].to(lse.scalar_type()) * tw.kept, 0).contiguous();
    const at::Tensor workspace =
        empty_for_pass({features.size(0) * r.chunk * s.params.sub_centers}, weight.options());
    const ShardedGradients g =
        sharded_gradients(r, workspace, false, lse, factor, saved[5], saved[6], saved[7], ctx->needs_input_grad(0),
                          ctx->needs_input_grad(1), features.scalar_type());
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
