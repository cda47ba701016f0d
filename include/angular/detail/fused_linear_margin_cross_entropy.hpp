#pragma once
// The fused margin cross-entropy of features and class vectors, without autograd: the losses
// and the gradients asked for, from one pass over row chunks (detail/linear_pass.hpp), no
// [B, C] tensor living past a chunk. The one body behind every face: the C++ autograd function
// (detail/autograd/linear_margin_cross_entropy.hpp) and the dispatcher operators' CPU and CUDA
// kernels (ops/kernels.hpp).

#include <angular/detail/class_blocks.hpp>
#include <angular/detail/fused_margin_cross_entropy.hpp>
#include <angular/detail/linear_pass.hpp>

namespace angular::detail {

/// A validated problem over features [B, D] and class vectors weight [C·K, D] (K =
/// params.sub_centers, one dtype and device): the margin's per-row parameters row_params [B, P]
/// where it reads any besides the feature norms, which the pass computes itself (undefined
/// otherwise); labels, the margin, the cross-entropy; `normalize` false for the logits x·w_j
/// of the modified softmax; rows per chunk and classes per block (0: automatic, see
/// runs_in_class_blocks).
struct LinearProblem {
  at::Tensor features, weight, row_params, target;
  MarginKind margin = MarginKind::arc;
  MarginParams params;
  CrossEntropySpec spec;
  bool normalize = true;
  int64_t chunk_rows = 0;
  int64_t chunk_classes = 0;
};

/// Whether `p` runs in blocks of classes (detail/class_blocks.hpp, fused CPU kernels only):
/// where chunk_classes asks, or where neither setting is given and one chunk of rows within
/// kDefaultWorkspaceBytes cannot hold the whole batch. Otherwise in chunks of rows.
inline bool runs_in_class_blocks(const LinearProblem& p, const RowKernels& kernels) {
  if (kernel_path(p.features) != KernelPath::fused_cpu) return false;
  if (p.chunk_classes > 0) return true;
  return p.chunk_rows == 0 && resolve_chunk_rows(0, p.weight, kernels) < p.features.size(0);
}

/// The class-blocked pass of `p`.
inline LinearPass class_blocked_pass(const LinearProblem& p, std::array<bool, 2> wanted, const RowFactors& factors) {
  ClassBlockSpec s;
  s.num_classes = p.weight.size(0) / p.params.sub_centers;
  s.classes = {0, s.num_classes};
  s.margin = p.margin;
  s.params = p.params;
  s.normalize = p.normalize;
  s.spec = p.spec;
  s.chunk_classes = p.chunk_classes;
  return class_blocked_pass(s, p.features, p.weight, p.target, p.row_params, wanted[0], wanted[1], factors);
}

/// The loss of `p` and, where `wanted` asks, the gradients of features and weight for the
/// upstream gradient `upstream` (see row_factors), on the fused path of the features' device.
inline LossAndGradients fused_linear_margin_cross_entropy(const LinearProblem& p, std::array<bool, 2> wanted,
                                                          const at::Tensor& upstream = {}) {
  const RowKernels kernels = row_kernels_for(kernel_path(p.features));
  const auto options = p.features.options().dtype(compute_dtype(p.features));
  LinearArgs args;
  args.features = p.features;
  args.weight = p.weight;
  args.row = row_loss_args(p.target, p.margin, p.params, margin_scales_rows(p.margin) ? at::Tensor() : p.row_params,
                           p.spec, p.weight.size(0) / p.params.sub_centers, options);
  args.normalize = p.normalize;
  args.chunk_rows = resolve_chunk_rows(p.chunk_rows, p.weight, kernels);

  const at::Tensor divisor =
      p.spec.reduction == at::Reduction::Mean
          ? mean_divisor(args.row.target, args.row.class_weight, p.spec.ignore_index, options.dtype().toScalarType())
          : at::Tensor();
  const RowFactors factors = wanted[0] || wanted[1]
                                 ? row_factors(p.features.size(0), p.spec.reduction, divisor, upstream, options)
                                 : RowFactors{};
  const LinearPass pass = runs_in_class_blocks(p, kernels)
                              ? class_blocked_pass(p, wanted, factors)
                              : linear_pass(args, kernels, wanted[0], wanted[1], factors.scale, factors.rows);
  return {reduce_rows(pass.row_loss, p.spec.reduction, divisor), pass.grad_features, pass.grad_weight};
}

}  // namespace angular::detail
