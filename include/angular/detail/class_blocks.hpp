#pragma once
// The features-level margin cross-entropy by blocks of classes, every row at once, on the fused
// CPU rows of the class-sharded kernel (detail/cpu/shard_row_kernel.hpp). Where one chunk of
// rows cannot hold every class in the workspace (C > 131 072 at B = 256 in 128 MiB), chunks of
// rows (detail/linear_pass.hpp) would stream W twice and ∂W once per chunk. Here, two sweeps:
//   statistics  per block of classes J, S = x̂ W_Jᵀ into a workspace that stays in cache, and
//               the partial sweep: every row's running max, Σ exp(z − max), its label's logit,
//               Σ_j w_j z_j and (SphereFace's entropy) Σ e·z;
//   gradients   with every row's lse, per block S again, the gradient sweep writing
//               G = ∂L/∂(x̂·w_j) over it, then ∂W_J = Gᵀ x̂ written once and projected onto
//               each ŵ_j's tangent while the block is in cache, and ∂x̂ += G W_J.
// The statistics sweep parks each block's S in the memory of the block's rows of ∂W (B·n
// numbers in n·D, where B ≤ D), which the gradient sweep reads back before it writes them:
// three products, W read twice, ∂W written once, nothing [B, C] beyond ∂W. Without ∂W (or
// B > D) the gradient sweep computes S again: four products. Where one workspace holds every
// class, one block keeps its products between the sweeps. The class-sharded loss
// (detail/distributed/sharded_fused.hpp) runs the same sweeps over its rank's classes, with
// all-reduces of the statistics between them.

#include <angular/detail/cpu/shard_row_kernel.hpp>
#include <angular/detail/fused_margin_cross_entropy.hpp>
#include <angular/detail/linear_pass.hpp>

#include <algorithm>
#include <limits>
#include <vector>

namespace angular::detail {

/// The products of one block of classes at most: small enough that the sweep and the two
/// products after it find them, and the block's class vectors, in the last-level cache.
constexpr int64_t kBlockWorkspaceBytes = int64_t{16} << 20;

/// The classes [offset, offset + count) of `rank` among `world_size` ranks: C / N each, the
/// first C % N ranks one more.
struct ClassRange {
  int64_t offset = 0, count = 0;
};

inline ClassRange class_range(int64_t classes, int64_t rank, int64_t world_size) {
  const int64_t base = classes / world_size, extra = classes % world_size;
  return {rank * base + std::min(rank, extra), base + (rank < extra ? 1 : 0)};
}

/// What a blocked pass covers: C, the classes it sweeps (all of them in one process, a rank's
/// shard), the margin and the cross-entropy (class weights over all C classes).
struct ClassBlockSpec {
  int64_t num_classes = 0;
  ClassRange classes;
  MarginKind margin = MarginKind::arcface;
  MarginParams params;
  bool normalize = true;  // false: the modified softmax's x·w_j
  CrossEntropySpec spec;
  int64_t chunk_classes = 0;  // classes per block; 0: automatic
};

/// Classes per block for `rows` rows: chunk_classes; else all of them where their products fit
/// kDefaultWorkspaceBytes (kept between the sweeps), else as many as fit kBlockWorkspaceBytes.
inline int64_t block_classes(const ClassBlockSpec& s, int64_t rows, int64_t element_size) {
  const int64_t count = std::max<int64_t>(s.classes.count, 1);
  if (s.chunk_classes > 0) return std::min(s.chunk_classes, count);
  const int64_t per_class = std::max<int64_t>(rows, 1) * s.params.sub_centers * element_size;
  if (count * per_class <= kDefaultWorkspaceBytes) return count;
  return std::clamp<int64_t>(kBlockWorkspaceBytes / per_class, 1, count);
}

/// Per row: 1 where kept, the label's class weight w_y and the target's mass coef_i (0 for
/// ignored rows; target_mass, as the single-process kernels take it).
struct TargetWeights {
  at::Tensor kept, label, mass;
};

inline TargetWeights target_weights(const ClassBlockSpec& s, const at::Tensor& target,
                                    const at::TensorOptions& options) {
  const RowLossArgs args = row_loss_args(target, s.margin, s.params, at::Tensor(), s.spec, s.num_classes, options);
  const at::Tensor kept = indexable_target(target, s.spec.ignore_index).kept.to(options.dtype());
  const at::Tensor label = args.class_weight.defined()
                               ? args.class_weight.index_select(0, clamp_labels(target, s.num_classes)) * kept
                               : kept;
  return {kept, label, target_mass(args, s.num_classes)};
}

/// Label indices local to the classes [first, first + n) of this rank, −1 for the rows whose
/// label is elsewhere or ignored.
inline at::Tensor local_labels(const at::Tensor& target, int64_t first, int64_t n, int64_t ignore_index) {
  const at::Tensor here = (target != ignore_index) & (target >= first) & (target < first + n);
  return at::where(here, target - first, at::full_like(target, -1));
}

/// The cosine [B] of each row's label among s.classes (with sub-centers their max), 0 for the
/// rows whose label lies elsewhere or is ignored; x [B, D] in the compute dtype.
inline at::Tensor local_label_cosines(const ClassBlockSpec& s, const at::Tensor& x, const at::Tensor& weight,
                                      const at::Tensor& target) {
  const int64_t K = s.params.sub_centers;
  const at::Tensor labels = local_labels(target, s.classes.offset, s.classes.count, s.spec.ignore_index);
  at::Tensor cosines = at::zeros({x.size(0)}, x.options());
  const at::Tensor rows = (labels >= 0).nonzero().select(1, 0);
  if (rows.numel() == 0) return cosines;
  const at::Tensor starts = labels.index_select(0, rows) * K;
  const at::Tensor vectors =
      weight.index_select(0, (starts.unsqueeze(1) + at::arange(K, starts.options())).flatten()).to(x.scalar_type());
  const at::Tensor c =
      (l2_normalize_rows(x.index_select(0, rows)).unsqueeze(1) * l2_normalize_rows(vectors).view({rows.size(0), K, -1}))
          .sum(2);
  return cosines.index_copy_(0, rows, std::get<0>(c.max(1)));
}

/// The inputs of both sweeps, prepared once per call.
struct BlockedRows {
  const ClassBlockSpec* spec = nullptr;
  at::Tensor x_hat;    // [B, D] compute dtype: x̂ (or x for the modified softmax)
  at::Tensor operand;  // x_hat in the weight's dtype, contiguous: the products' left side
  at::Tensor weight;   // [C_r·K, D]
  RowNorms x_norms, w_norms;
  RowLossArgs row;           // target: the label codes; everything but cos, class_weight, column_scale
  at::Tensor class_weight;   // [C_r] compute dtype, or undefined
  at::Tensor label_cosines;  // [B] every row's label cosine wherever it lies (CurricularFace), or undefined
  int64_t block = 1;         // classes per block
};

/// `label_cosines(x̂)` gives CurricularFace's label cosines (called for it alone).
template <class LabelCosines>
BlockedRows blocked_rows(const ClassBlockSpec& s, const at::Tensor& features, const at::Tensor& weight,
                         const at::Tensor& target, const at::Tensor& row_params, LabelCosines&& label_cosines) {
  BlockedRows r;
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
  if (s.margin == MarginKind::curricularface && s.normalize) r.label_cosines = label_cosines(r.x_hat).contiguous();
  r.block = block_classes(s, features.size(0), weight.element_size());
  return r;
}

/// The kernel's arguments over block [first, first + n)'s products [B, n·K] in `products`
/// (computed there first where `compute`).
inline RowLossArgs block_args(const BlockedRows& r, const at::Tensor& products, int64_t first, int64_t n,
                              bool compute) {
  const int64_t K = r.spec->params.sub_centers;
  RowLossArgs args = r.row;
  // The label codes of this block: indices among its classes, or "elsewhere" for the others.
  const at::Tensor& codes = r.row.target;
  args.target = at::where((codes >= first) & (codes < first + n), codes - first,
                          at::where(codes >= 0, cpu::kLabelElsewhere, codes))
                    .contiguous();
  args.cos = products;
  if (compute) at::mm_out(args.cos, r.operand, r.weight.narrow(0, first * K, n * K).t());
  if (r.class_weight.defined()) args.class_weight = r.class_weight.narrow(0, first, n);
  if (r.spec->normalize) args.column_scale = r.w_norms.inverse.narrow(0, first * K, n * K);
  return args;
}

/// The first [B, n·K] of the workspace.
inline at::Tensor workspace_products(const BlockedRows& r, const at::Tensor& workspace, int64_t n) {
  const int64_t rows = r.x_hat.size(0), columns = n * r.spec->params.sub_centers;
  return workspace.narrow(0, 0, rows * columns).view({rows, columns});
}

/// The products' workspace of one block.
inline at::Tensor block_workspace(const BlockedRows& r) {
  return empty_for_pass({r.x_hat.size(0) * r.block * r.spec->params.sub_centers}, r.weight.options());
}

/// Whether the statistics sweep leaves the products of the one block in the workspace.
inline bool products_kept(const BlockedRows& r) { return r.block >= r.spec->classes.count; }

/// Where the statistics sweep leaves block [first, first + n)'s products [B, n·K] for the
/// gradient sweep: in the memory of the block's rows of `grad_weight` ([C_r·K, D] in the
/// compute dtype, as empty_weight_gradient lays it out), which that sweep reads back before it
/// writes them. Undefined where there is no ∂W to park in, where one block keeps its products
/// in the workspace, or where the products would not fit (B > D).
inline at::Tensor parked_products(const BlockedRows& r, const at::Tensor& grad_weight, int64_t first, int64_t n) {
  const int64_t rows = r.x_hat.size(0), columns = n * r.spec->params.sub_centers;
  if (!grad_weight.defined() || products_kept(r) || rows > r.weight.size(1)) return {};
  const at::Tensor block = grad_weight.narrow(0, first * r.spec->params.sub_centers, columns);
  const int64_t ratio = static_cast<int64_t>(block.element_size() / r.weight.element_size());
  // A contiguous block: its first B·n·K numbers; a transposed one: its columns of the first B
  // rows of the [D, C_r·K] storage.
  const int64_t row_stride = block.is_contiguous() ? columns : block.stride(1) * ratio;
  return at::empty({0}, r.weight.options())
      .set_(block.storage(), block.storage_offset() * ratio, {rows, columns}, {row_stride, 1});
}

/// Per row over r's classes (compute dtype): the max of its logits, and `sums` [3 or 4, B]:
/// Σ exp(z − max), the label's logit (0 where it lies elsewhere), Σ_j w_j z_j and, for margins
/// that scale rows, Σ exp(z − max)·z. Each block's products are parked in grad_weight
/// (parked_products) where they fit.
struct BlockStatistics {
  at::Tensor max, sums;
};

inline BlockStatistics block_statistics(const BlockedRows& r, const at::Tensor& workspace,
                                        const at::Tensor& grad_weight) {
  const auto options = r.x_hat.options();
  const int64_t rows = r.x_hat.size(0), count = r.spec->classes.count;
  const double lowest = options.dtype() == at::kDouble ? -std::numeric_limits<double>::max()
                                                       : -static_cast<double>(std::numeric_limits<float>::max());
  const bool entropy_needed = margin_scales_rows(r.spec->margin);
  BlockStatistics s{at::full({rows}, lowest, options), at::zeros({entropy_needed ? 4 : 3, rows}, options)};
  const at::Tensor dot = entropy_needed ? s.sums[3] : at::zeros({rows}, options);
  const std::vector<at::Tensor> state{s.max, s.sums[0], dot, s.sums[1], s.sums[2]};
  for (int64_t first = 0; first < count; first += r.block) {
    const int64_t n = std::min(r.block, count - first);
    // Contiguous parked products are the kernel's operand where they lie; others are copied.
    at::Tensor parked = parked_products(r, grad_weight, first, n);
    const bool in_place = parked.defined() && parked.is_contiguous();
    const RowLossArgs args = block_args(r, in_place ? parked : workspace_products(r, workspace, n), first, n, true);
    cpu::shard_sweep(args, r.label_cosines, state, {}, 0.0, at::Tensor());
    if (parked.defined() && !in_place) parked.copy_(args.cos);
  }
  return s;
}

/// Each row's lse, entropy (where the margin scales rows) and loss from the statistics of all
/// C classes (max the largest logit, sums as BlockStatistics's over it).
struct BlockedLosses {
  at::Tensor lse, entropy, row_loss;
  TargetWeights weights;
};

inline BlockedLosses blocked_losses(const ClassBlockSpec& s, const at::Tensor& max, const at::Tensor& sums,
                                    const at::Tensor& target) {
  BlockedLosses out;
  out.weights = target_weights(s, target, max.options());
  const at::Tensor& kept = out.weights.kept;
  out.lse = at::where(kept > 0, max + at::log(sums[0]), 0);
  if (sums.size(0) > 3) out.entropy = at::where(kept > 0, out.lse - sums[3] / sums[0], 0);
  const double eps = s.spec.label_smoothing, per_class = eps / static_cast<double>(s.num_classes);
  out.row_loss = at::where(
      kept > 0, out.weights.mass * out.lse - (1 - eps) * out.weights.label * sums[1] - per_class * sums[2], 0);
  return out;
}

/// Rows of a block per slice of its gradient products: a slice's ∂W rows and class vectors
/// (2 MiB each at D = 512) stay in L2 between its product, its projection and ∂x̂'s product.
constexpr int64_t kGradientSliceRows = 1024;

/// ∂W_J = Gᵀ x̂ into `grad_w` (the block's rows, compute dtype), projected where the problem
/// normalises, and ∂x̂ += G W_J, for G [B, n·K] over the block's class vectors `w`: slice by
/// slice, each slice's class vectors read once for its projection and ∂x̂'s product. (Products
/// narrower than the compute dtype take ∂x̂'s over the whole block: one rounding of its sum.)
inline void block_gradient_products(const BlockedRows& r, const at::Tensor& G, const at::Tensor& w, int64_t first_row,
                                    at::Tensor& grad_x_hat, at::Tensor grad_w) {
  const bool narrow_products = r.weight.scalar_type() != r.x_hat.scalar_type();
  if (grad_x_hat.defined() && narrow_products) grad_x_hat.add_(at::mm(G, w));
  const int64_t rows = w.size(0);
  for (int64_t begin = 0; begin < rows; begin += kGradientSliceRows) {
    const int64_t n = std::min(kGradientSliceRows, rows - begin);
    const at::Tensor g = G.narrow(1, begin, n), vectors = w.narrow(0, begin, n);
    if (grad_w.defined()) {
      at::Tensor slice = grad_w.narrow(0, begin, n);
      add_weight_gradient(slice, g, r.operand, /*first=*/true);
      if (r.spec->normalize) {
        const int64_t first = first_row + begin;
        project_weight_gradient(slice, vectors,
                                {r.w_norms.inverse.narrow(0, first, n), r.w_norms.passes.narrow(0, first, n)});
      }
    }
    if (grad_x_hat.defined() && !narrow_products) grad_x_hat.addmm_(g, vectors);
  }
}

/// The gradients of Σ_i a_i·loss_i (a_i = factor [B]) through r's classes: ∂L/∂x in
/// `features_dtype` (with the norms' own term where `norm_term`: SphereFace's, once over the
/// ranks) and ∂L/∂W of r's classes written into `grad_weight` (from gradient_buffer; undefined
/// where not asked for). `workspace` holds the one block's products where products_kept(r),
/// and grad_weight the parked ones, where the statistics ran just before.
struct BlockedGradients {
  at::Tensor features, weight;
};

/// An uninitialised ∂W for r's classes in the compute dtype, laid out as W.
inline at::Tensor gradient_buffer(const BlockedRows& r) {
  return empty_weight_gradient(r.weight, r.x_hat.options(), /*reuse=*/true);
}

inline BlockedGradients blocked_gradients(const BlockedRows& r, const at::Tensor& workspace, bool statistics_ran,
                                          const BlockedLosses& losses, const at::Tensor& factor, bool grad_x,
                                          at::Tensor grad_weight, bool norm_term, at::ScalarType features_dtype) {
  const ClassBlockSpec& s = *r.spec;
  const int64_t K = s.params.sub_centers, count = s.classes.count;
  const bool grad_w = grad_weight.defined();
  at::Tensor grad_x_hat = grad_x ? at::zeros(r.x_hat.sizes(), r.x_hat.options()) : at::Tensor();
  const std::vector<at::Tensor> per_row{losses.lse, factor.contiguous(), losses.weights.mass};
  const double per_class = s.spec.label_smoothing / static_cast<double>(s.num_classes);
  for (int64_t first = 0; first < count; first += r.block) {
    const int64_t n = std::min(r.block, count - first);
    // G into the workspace: from contiguous parked products, else over the products there
    // (copied back, kept from the statistics, or computed again).
    const at::Tensor parked = statistics_ran ? parked_products(r, grad_weight, first, n) : at::Tensor();
    const at::Tensor G = workspace_products(r, workspace, n);
    const bool from_parked = parked.defined() && parked.is_contiguous();
    if (parked.defined() && !from_parked) G.copy_(parked);
    const bool compute = !parked.defined() && !(statistics_ran && products_kept(r));
    const RowLossArgs args = block_args(r, from_parked ? parked : G, first, n, compute);
    cpu::shard_sweep(args, r.label_cosines, {}, per_row, per_class, G);
    block_gradient_products(r, G, r.weight.narrow(0, first * K, n * K), first * K, grad_x_hat,
                            grad_w ? grad_weight.narrow(0, first * K, n * K) : at::Tensor());
  }
  BlockedGradients out;
  if (grad_x) {
    if (s.normalize) {
      const at::Tensor along = (r.x_hat * grad_x_hat).sum(1) * r.x_norms.passes;
      grad_x_hat = (grad_x_hat - r.x_hat * along.unsqueeze(1)) * r.x_norms.inverse.unsqueeze(1);
      if (norm_term && margin_scales_rows(s.margin)) {  // + ∂L/∂‖x_i‖·x̂_i
        const at::Tensor norm_gradient =
            (losses.row_loss - losses.weights.mass * losses.entropy) * factor * r.x_norms.inverse;
        grad_x_hat.addcmul_(r.x_hat, (norm_gradient * r.x_norms.passes).unsqueeze(1));
      }
    }
    out.features = grad_x_hat.to(features_dtype);
  }
  if (grad_w) out.weight = grad_weight.to(r.weight.scalar_type());
  return out;
}

/// The single-process pass over all of the problem's classes in blocks: each row's loss and,
/// where asked, the gradients of Σ_i a_i·loss_i for the reduction's and upstream's factors.
inline LinearPass class_blocked_pass(const ClassBlockSpec& s, const at::Tensor& features, const at::Tensor& weight,
                                     const at::Tensor& target, const at::Tensor& row_params, bool grad_x, bool grad_w,
                                     const RowFactors& factors) {
  const BlockedRows r = blocked_rows(s, features, weight, target, row_params, [&](const at::Tensor& x_hat) {
    return local_label_cosines(s, x_hat, weight, target);
  });
  const at::Tensor workspace = block_workspace(r);
  const at::Tensor grad_weight = grad_w ? gradient_buffer(r) : at::Tensor();
  const BlockStatistics statistics = block_statistics(r, workspace, grad_weight);
  const BlockedLosses losses = blocked_losses(s, statistics.max, statistics.sums, target);
  LinearPass out;
  out.lse = losses.lse;
  out.row_loss = losses.row_loss;
  if (!grad_x && !grad_w) return out;
  const auto options = r.x_hat.options();
  const at::Tensor factor = losses.weights.kept * factors.as_tensor(options);
  const BlockedGradients g = blocked_gradients(r, workspace, /*statistics_ran=*/true, losses, factor, grad_x,
                                               grad_weight, /*norm_term=*/true, features.scalar_type());
  out.grad_features = g.features;
  out.grad_weight = g.weight;
  return out;
}

}  // namespace angular::detail
