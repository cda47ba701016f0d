#pragma once
// The margin cross-entropy with the classes split across the ranks of a process group. Each
// rank holds W's rows of classes [o_r, o_r + C_r) and sees the whole gathered batch x [B, D].
// Over its classes, in chunks (no [B, C_r] tensor), it finds per row the max m_i of its logits,
// s_i = Σ_j exp(z_ij − m_i), the label's logit where it owns the label, and Σ_j w_j·z_ij for
// label smoothing. Two all-reduces of [B] vectors (max, then one sum of three) give every
// rank lse_i = M_i + log S_i and the whole loss, with the target distribution
// t_ij = (1 − ε)·w_y·[j = y] + (ε/C)·w_j (mass coef_i):
//   loss_i = coef_i·lse_i − (1 − ε)·w_y·z_iy − (ε/C)·Σ_j w_j·z_ij.
// The backward recomputes each chunk's logits under autograd and feeds them
// ∂L/∂z_ij = a_i·(coef_i·p_ij − t_ij), p_ij = exp(z_ij − lse_i), a_i the reduction's factor:
// W's shard gets its exact gradient locally, x the part of its gradient through this rank's
// classes (summed over the ranks by the all-gather's backward, detail/distributed/gather.hpp).

#include <angular/detail/checks.hpp>
#include <angular/detail/class_blocks.hpp>
#include <angular/detail/margin_cross_entropy.hpp>
#include <angular/distributed/collectives.hpp>
#include <angular/options/cross_entropy.hpp>

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <limits>

namespace angular::detail {

/// A class-sharded problem: the blocked pass's settings (this rank's classes), the group, and
/// where asked a record of every row's loss.
struct ShardedSpec : ClassBlockSpec {
  distributed::ProcessGroupPtr group;
  at::Tensor row_losses;  // undefined, or set to every row's loss (detached)
};

/// Sets the caller's record of the rows' losses (where it asked for one) to `row_loss`.
inline void write_row_losses(const ShardedSpec& s, const at::Tensor& row_loss) {
  if (!s.row_losses.defined()) return;
  at::Tensor record = s.row_losses;
  record.set_(row_loss.detach().clone());
}

/// Logits [B, n] of n classes with vectors w [n·K, D] for features x [B, D] (compute dtype);
/// `labels` from local_labels; `row_params` [B, P] as the margin takes them (SphereFace's norms
/// are computed here, from x, so that their gradient flows); `label_cosines` [B], the cosine of
/// every row's label wherever it lies (CurricularFace's threshold).
inline at::Tensor shard_logits(const ShardedSpec& s, const at::Tensor& x, const at::Tensor& w, const at::Tensor& labels,
                               const at::Tensor& row_params, const at::Tensor& label_cosines) {
  if (!s.normalize) return linear_logits(x, w);
  const at::Tensor c = class_cosines(cosine_matrix(x, w), s.params.sub_centers);
  const double scale = s.params.scale, m = s.params.margin;
  if (s.margin == MarginKind::curricularface) {
    const at::Tensor threshold = at::cos(clamped_angle(label_cosines) + m).unsqueeze(1);
    const at::Tensor t = row_params.select(1, 0).unsqueeze(1);
    const at::Tensor negatives = at::where(c > threshold, c * (t + c), c);
    return replace_target_column(
               negatives, labels, -1,
               [&](const at::Tensor&) { return arcface_target(c.gather(1, labels.clamp_min(0).unsqueeze(1)), m); }) *
               scale +
           c * 0;
  }
  const at::Tensor p = margin_scales_rows(s.margin) ? feature_norms(x).unsqueeze(1) : row_params;
  return policy_logits(c, labels, s.margin, s.params, p, -1) + c * 0;
}

/// Classes per chunk: chunk_classes, or as many as keep a chunk's [B, n·K] temporaries (about
/// thirty of them under autograd, counted by the allocator) within kDefaultWorkspaceBytes.
inline int64_t shard_chunk_classes(const ShardedSpec& s, int64_t rows, int64_t element_size) {
  if (s.chunk_classes > 0) return s.chunk_classes;
  const int64_t per_class = std::max<int64_t>(rows, 1) * s.params.sub_centers * element_size * 32;
  return std::max<int64_t>(1, kDefaultWorkspaceBytes / per_class);
}

/// The cosine of each row's label [B], summed over the ranks: the owner's value, 0 elsewhere.
inline at::Tensor shared_label_cosines(const ShardedSpec& s, const at::Tensor& x, const at::Tensor& weight,
                                       const at::Tensor& target) {
  at::Tensor cosines = local_label_cosines(s, x, weight, target);
  return distributed::all_reduce_(s.group, cosines, c10d::ReduceOp::SUM);
}

/// Class weights of the chunk [first, first + n) of this rank's classes times ε/C, [1, n] (or a
/// scalar without weights).
inline at::Tensor smoothing_weights(const ShardedSpec& s, int64_t first, int64_t n, const at::TensorOptions& options) {
  const double factor = s.spec.label_smoothing / static_cast<double>(s.num_classes);
  if (!s.spec.class_weight.defined()) return at::scalar_tensor(factor, options);
  return s.spec.class_weight.narrow(0, s.classes.offset + first, n).to(options.dtype()).unsqueeze(0) * factor;
}

struct ShardedMarginCrossEntropy : torch::autograd::Function<ShardedMarginCrossEntropy> {
  /// features [B, D] and target [B] of the whole gathered batch; weight [C_r·K, D] this rank's
  /// shard; row_params [B, P] (no gradient; empty where the margin takes none). Returns the
  /// reduced loss of the whole batch, or with kNone every sample's loss [B].
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& features, const at::Tensor& weight,
                            const at::Tensor& target, const at::Tensor& row_params, const ShardedSpec& s) {
    const auto dtype = compute_dtype(features);
    const at::Tensor x = features.to(dtype), w = weight.to(dtype);
    const auto options = x.options();
    const int64_t rows = x.size(0), count = s.classes.count;
    const at::Tensor label_cosines =
        s.margin == MarginKind::curricularface && s.normalize ? shared_label_cosines(s, x, w, target) : at::Tensor();
    at::Tensor max = at::full({rows}, -std::numeric_limits<double>::infinity(), options);
    at::Tensor sums = at::zeros({3, rows}, options);  // Σ exp(z − max), the label's z, Σ (ε/C)·w_j·z_j
    const int64_t chunk = shard_chunk_classes(s, rows, x.element_size());
    for (int64_t first = 0; first < count; first += chunk) {
      const int64_t n = std::min(chunk, count - first);
      const int64_t K = s.params.sub_centers;
      const at::Tensor labels = local_labels(target, s.classes.offset + first, n, s.spec.ignore_index);
      const at::Tensor z = shard_logits(s, x, w.narrow(0, first * K, n * K), labels, row_params, label_cosines);
      const at::Tensor new_max = at::maximum(max, std::get<0>(z.max(1)));
      sums[0].mul_(at::exp(max - new_max)).add_(at::exp(z - new_max.unsqueeze(1)).sum(1));
      max = new_max;
      sums[1].add_(at::where(labels >= 0, z.gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1), 0));
      if (s.spec.label_smoothing > 0) sums[2].add_((z * smoothing_weights(s, first, n, options)).sum(1));
    }
    // A rank without classes has max −∞ and sum 0: its share exp(−∞ − M)·0 is 0.
    at::Tensor global_max = max.clone();
    distributed::all_reduce_(s.group, global_max, c10d::ReduceOp::MAX);
    sums[0].mul_(at::exp(max - global_max));
    distributed::all_reduce_(s.group, sums, c10d::ReduceOp::SUM);
    const at::Tensor lse = global_max + at::log(sums[0]);
    const TargetWeights tw = target_weights(s, target, options);
    const double eps = s.spec.label_smoothing;
    const at::Tensor row_loss = at::where(tw.kept > 0, tw.mass * lse - (1 - eps) * tw.label * sums[1] - sums[2], 0);

    write_row_losses(s, row_loss);
    ctx->save_for_backward({features, weight, target, row_params, lse, label_cosines});
    ctx->saved_data["spec"] = c10::IValue::make_capsule(c10::make_intrusive<SpecHolder>(s));
    const int64_t reduction = s.spec.reduction;
    if (reduction == at::Reduction::None) return row_loss;  // every row's, on every rank (OwnRows keeps a rank's)
    if (reduction == at::Reduction::Sum) return row_loss.sum();
    return row_loss.sum() / tw.label.sum();  // Σ w_y over the kept rows, as PyTorch's mean
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    check_differentiated_once();
    const auto saved = ctx->get_saved_variables();
    const ShardedSpec s =
        c10::static_intrusive_pointer_cast<SpecHolder>(ctx->saved_data["spec"].toCapsule())->restored();
    const at::Tensor &features = saved[0], &weight = saved[1], &target = saved[2], &row_params = saved[3],
                     &lse = saved[4], &label_cosines = saved[5];
    const auto options = lse.options();
    const TargetWeights tw = target_weights(s, target, options);
    // a_i: the upstream gradient of row i's loss, the mean's divisor folded in.
    at::Tensor factor = grads[0].to(options.dtype());
    if (s.spec.reduction == at::Reduction::Mean) factor = factor / tw.label.sum();
    factor = at::where(tw.kept > 0, factor * tw.kept, 0);
    const double eps = s.spec.label_smoothing;

    const bool grad_x = ctx->needs_input_grad(0), grad_w = ctx->needs_input_grad(1);
    const at::Tensor x = features.to(options.dtype()).detach().requires_grad_(grad_x);
    at::Tensor grad_weight = grad_w ? at::empty(weight.sizes(), options) : at::Tensor();  // every chunk writes its rows
    at::Tensor grad_features = grad_x ? at::zeros(x.sizes(), options) : at::Tensor();
    const int64_t K = s.params.sub_centers, count = s.classes.count;
    const int64_t chunk = shard_chunk_classes(s, x.size(0), x.element_size());
    for (int64_t first = 0; first < count; first += chunk) {
      const int64_t n = std::min(chunk, count - first);
      const at::Tensor w = weight.narrow(0, first * K, n * K).to(options.dtype()).detach().requires_grad_(grad_w);
      const at::Tensor labels = local_labels(target, s.classes.offset + first, n, s.spec.ignore_index);
      at::Tensor z;
      {
        at::AutoGradMode enable(true);
        z = shard_logits(s, x, w, labels, row_params, label_cosines);
      }
      // ∂L/∂z = a·(coef·p − t): t = (1 − ε)·w_y on the label, (ε/C)·w_j everywhere.
      at::Tensor g =
          at::exp(z.detach() - lse.unsqueeze(1)) * tw.mass.unsqueeze(1) - smoothing_weights(s, first, n, options);
      const at::Tensor owned = (labels >= 0).to(options.dtype()) * tw.label * (1 - eps);
      g.scatter_add_(1, labels.clamp_min(0).unsqueeze(1), -owned.unsqueeze(1));
      g.mul_(factor.unsqueeze(1));
      std::vector<at::Tensor> inputs;
      if (grad_x) inputs.push_back(x);
      if (grad_w) inputs.push_back(w);
      const auto d = torch::autograd::grad({z}, inputs, {g}, /*retain_graph=*/false, /*create_graph=*/false,
                                           /*allow_unused=*/false);
      if (grad_x) grad_features.add_(d[0]);
      if (grad_w) grad_weight.narrow(0, first * K, n * K).copy_(d.back());
    }
    return {grad_x ? grad_features.to(features.scalar_type()) : at::Tensor(),
            grad_w ? grad_weight.to(weight.scalar_type()) : at::Tensor(),
            {},
            {},
            {}};
  }

  /// The spec, kept for the backward in a capsule, its group weakly (SavedGroup).
  struct SpecHolder : torch::CustomClassHolder {
    explicit SpecHolder(ShardedSpec s) : group(s.group), spec(std::move(s)) { spec.group.reset(); }
    ShardedSpec restored() const {
      ShardedSpec s = spec;
      s.group = group.get();
      return s;
    }
    distributed::SavedGroup group;
    ShardedSpec spec;
  };
};

}  // namespace angular::detail
