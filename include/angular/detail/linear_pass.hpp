#pragma once
// The margin cross-entropy of features x [B, D] and class vectors W [C, D] in chunks of rows,
// so that no [B, C] tensor exists: per chunk of rows, one product x̂_b Wᵀ into a workspace,
// times q_j = 1/‖w_j‖, gives the chunk's cosines; the device's row kernels (detail/row_loss.hpp)
// turn them into losses and the cosine gradient g; G = g ⊙ q is the gradient of the raw
// products x̂·w_j (the CPU kernel applies q itself and writes G over the products, one
// workspace; elsewhere ATen scales, and g has a workspace of its own), and two more products give
//   ∂L/∂x̂ = G W,   G_W = Gᵀ x̂ (accumulated over the chunks).
// The normalisations then cost no product: with P_u = I − ûûᵀ,
//   ∂L/∂x_i = P_{x̂_i} ∂L/∂x̂_i / ‖x_i‖,   ∂L/∂w_j = P_{ŵ_j} G_W_j,
// the projections passing, as at::clamp_min's gradient, only for norms >= kNormEps (below it
// a row is divided by kNormEps, F::normalize's floor). Three products in all: the gradient is
// written during the forward, whose chunks span every class. The modified softmax is the same
// without the normalisations.

#include <angular/detail/constants.hpp>
#include <angular/detail/cpu/gradient_buffers.hpp>
#include <angular/detail/cpu/memory.hpp>
#include <angular/detail/cpu/projection.hpp>
#include <angular/detail/row_loss.hpp>
#include <angular/detail/row_parameters.hpp>
#include <angular/options/cross_entropy.hpp>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace angular::detail {

/// A features-level problem, validated: features and weight of one dtype and device.
struct LinearArgs {
  at::Tensor features;  // [B, D]
  at::Tensor weight;    // [C, D]
  RowLossArgs row;      // everything but `cos`, which each chunk sets; target contiguous
  bool normalize = true;
  int64_t chunk_rows = 1;
};

/// What one pass over the chunks computes (compute dtype for lse and row_loss; the inputs'
/// dtype for the gradients, undefined where not asked for).
struct LinearPass {
  at::Tensor lse, row_loss, grad_features, grad_weight;
};

/// Rows per chunk: `chunk_rows`, or where it is 0 as many as fit kDefaultWorkspaceBytes in the
/// [rows, C] workspaces of `kernels` (the products, and the gradient beside them where the
/// kernels cannot write it over them).
inline int64_t resolve_chunk_rows(int64_t chunk_rows, const at::Tensor& weight, const RowKernels& kernels) {
  if (chunk_rows > 0) return chunk_rows;
  const int64_t buffers = kernels.scales_columns ? 1 : 2;
  const int64_t row_bytes = std::max<int64_t>(weight.size(0), 1) * static_cast<int64_t>(weight.element_size());
  return std::max<int64_t>(1, kDefaultWorkspaceBytes / (row_bytes * buffers));
}

/// The unit rows of m [N, D] in `dtype`'s precision: 1/max(‖m_i‖, kNormEps) and whether the
/// norm's own gradient passes (‖m_i‖ >= kNormEps).
struct RowNorms {
  at::Tensor inverse, passes;
};

/// Whether `m` [C, D] is the transpose of a contiguous [D, C] (a [D, C] parameter used as W.t()).
inline bool is_transposed_matrix(const at::Tensor& m) {
  return m.size(0) > 1 && m.size(1) > 1 && m.stride(0) == 1 && m.stride(1) == m.size(0);
}

/// The norms of the rows of such a transposed `m` on the CPU in its own dtype: down the rows of
/// its [D, C] storage, each thread's block of classes summing in its cache, where a reduction
/// across the stride of C would read a cache line per element.
inline at::Tensor transposed_row_norms(const at::Tensor& m) {
  const at::Tensor storage = m.t();
  const int64_t dim = storage.size(0), classes = storage.size(1);
  at::Tensor out = at::empty({classes}, m.options());
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "transposed_row_norms", [&] {
    const scalar_t* w = storage.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, classes, 4096, [&](int64_t begin, int64_t end) {
      std::fill(o + begin, o + end, scalar_t(0));
      constexpr int64_t kRows = 8;  // rows summed per sweep over the block: fewer passes over o
      for (int64_t d0 = 0; d0 < dim; d0 += kRows) {
        const int64_t rows = std::min(kRows, dim - d0);
        const scalar_t* first = w + d0 * classes;
        for (int64_t j = begin; j < end; ++j) {
          scalar_t sum = 0;
          for (int64_t k = 0; k < rows; ++k) sum += first[k * classes + j] * first[k * classes + j];
          o[j] += sum;
        }
      }
      for (int64_t j = begin; j < end; ++j) o[j] = std::sqrt(o[j]);
    });
  });
  return out;
}

inline RowNorms row_norms(const at::Tensor& m, at::ScalarType dtype) {
  const bool transposed = m.is_cpu() && m.scalar_type() == dtype && is_transposed_matrix(m) &&
                          (dtype == at::kFloat || dtype == at::kDouble);
  const at::Tensor norm = transposed ? transposed_row_norms(m) : at::linalg_vector_norm(m, 2, {1}, false, dtype);
  return {norm.clamp_min(kNormEps).reciprocal(), norm >= kNormEps};
}

/// The row kernels on one chunk: out's lse, row_loss (and entropy where defined) and, where
/// out.grad_cos is defined, the cosine gradient of Σ_i s_i·loss_i with s_i = row_scale[i], or
/// `scale` where row_scale is undefined.
inline void chunk_row_kernels(const RowKernels& kernels, const RowLossArgs& row, RowOutputs& out, double scale,
                              const at::Tensor& row_scale) {
  if (kernels.backward == nullptr) {  // the forward writes the gradient, row scales and all
    RowLossArgs scaled = row;
    scaled.row_scale = row_scale;
    kernels.forward(scaled, out, scale);
    return;
  }
  RowOutputs values = out;
  values.grad_cos = at::Tensor();
  kernels.forward(row, values, 1.0);
  if (!out.grad_cos.defined()) return;
  const at::Tensor row_grad =
      row_scale.defined() ? row_scale.contiguous() : at::full({out.lse.size(0)}, scale, out.lse.options());
  kernels.backward(row, out.lse, row_grad, out.grad_cos);
}

/// An uninitialised tensor; on the CPU in huge pages where Linux gives them (a fresh [C, D]
/// gradient otherwise costs as much in 4 KiB page faults as the pass that fills it).
inline at::Tensor empty_for_pass(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
  if (t.is_cpu()) cpu::prefer_huge_pages(t.data_ptr(), t.nbytes());
  return t;
}

/// An uninitialised gradient of `weight` [C, D] laid out as `weight` is: transposed where
/// `weight` is the transpose of a contiguous [D, C] (a [D, C] parameter used as W.t()), so that
/// autograd gives that parameter a contiguous gradient without a copy. Where `reuse`, on the
/// CPU, on a buffer kept from an earlier step's gradient where one is free
/// (detail/cpu/gradient_buffers.hpp); else fresh (empty_for_pass).
inline at::Tensor empty_weight_gradient(const at::Tensor& weight, const at::TensorOptions& options,
                                        bool reuse = false) {
  const bool transposed = is_transposed_matrix(weight);
  const std::vector<int64_t> sizes =
      transposed ? std::vector<int64_t>{weight.size(1), weight.size(0)} : weight.sizes().vec();
  const at::Tensor gradient = reuse && options.device().is_cpu()
                                  ? cpu::GradientBuffers::instance().empty(sizes, options)
                                  : empty_for_pass(sizes, options);
  return transposed ? gradient.t() : gradient;
}

/// acc += Gᵀ x̂_b (acc = Gᵀ x̂_b for the first chunk) in the compute dtype. Where the inputs
/// are narrower, acc starts at zero and takes class slices whose product is small, so that
/// no [C, D] temporary exists.
inline void add_weight_gradient(at::Tensor& acc, const at::Tensor& grad, const at::Tensor& x_chunk, bool first) {
  if (acc.scalar_type() == grad.scalar_type()) {
    acc.addmm_(grad.t(), x_chunk, /*beta=*/first ? 0 : 1);
    return;
  }
  constexpr int64_t kSlice = 4096;
  for (int64_t begin = 0; begin < acc.size(0); begin += kSlice) {
    const int64_t n = std::min(kSlice, acc.size(0) - begin);
    at::Tensor rows = acc.narrow(0, begin, n);
    const at::Tensor product = at::mm(grad.narrow(1, begin, n).t(), x_chunk);
    if (first)
      rows.copy_(product);
    else
      rows.add_(product);
  }
}

/// acc_j ← P_{ŵ_j} acc_j = acc_j − q_j²·(w_j · acc_j)·w_j for the rows whose norm passes,
/// by class slices (no [C, D] temporary where W has the compute dtype) small enough that the
/// second sweep over a slice finds it in the L2 cache.
inline void project_weight_gradient(at::Tensor& acc, const at::Tensor& weight, const RowNorms& norms) {
  if (is_transposed_matrix(acc) && is_transposed_matrix(weight)) {
    // W.t() of a [D, C] parameter: along its [D, C] storage, whose rows are contiguous, where
    // class slices would read each class's D numbers a stride of C apart.
    const at::Tensor a = acc.t(), w = weight.t().to(acc.scalar_type());
    at::Tensor along = at::zeros({a.size(1)}, acc.options());
    for (int64_t d = 0; d < a.size(0); ++d) along.addcmul_(w[d], a[d]);
    along.mul_(norms.inverse * norms.inverse * norms.passes);
    a.addcmul_(w, along.unsqueeze(0), -1);
    return;
  }
  if (acc.is_cpu() && acc.stride(1) == 1 && weight.stride(1) == 1 && weight.scalar_type() == acc.scalar_type() &&
      (acc.scalar_type() == at::kFloat || acc.scalar_type() == at::kDouble))
    return cpu::project_onto_tangents(acc, weight, norms.inverse, norms.passes);
  constexpr int64_t kSlice = 512;
  for (int64_t begin = 0; begin < acc.size(0); begin += kSlice) {
    const int64_t n = std::min(kSlice, acc.size(0) - begin);
    at::Tensor a = acc.narrow(0, begin, n);
    const at::Tensor w = weight.narrow(0, begin, n).to(acc.scalar_type());
    const at::Tensor q = norms.inverse.narrow(0, begin, n);
    const at::Tensor along = at::linalg_vecdot(w, a, 1) * q * q * norms.passes.narrow(0, begin, n);
    a.addcmul_(w, along.unsqueeze(1), -1);
  }
}

/// One pass over the row chunks of `args`: the per-row lse and loss, and the gradients asked
/// for of Σ_i s_i·loss_i (s_i as in chunk_row_kernels).
inline LinearPass linear_pass(const LinearArgs& args, const RowKernels& kernels, bool grad_features, bool grad_weight,
                              double scale, const at::Tensor& row_scale) {
  const at::Tensor& weight = args.weight;
  const at::ScalarType dtype = weight.scalar_type();  // of the products
  const at::ScalarType compute = args.row.weight_sum.scalar_type();
  // `classes` counts the product's columns: C·K with sub-centers.
  const int64_t rows = args.features.size(0), classes = weight.size(0), dim = weight.size(1);
  const auto compute_options = args.features.options().dtype(compute);

  at::Tensor x = args.features.to(compute);
  RowNorms x_norms, w_norms;
  RowLossArgs row_args = args.row;
  if (args.normalize) {
    x_norms = row_norms(x, compute);
    x = x * x_norms.inverse.unsqueeze(1);  // x̂, [B, D]
    w_norms = row_norms(weight, compute);  // q, [C]: no normalised copy of W
    // A margin scaled by the feature norm (SphereFace) has it as its row parameter.
    if (margin_scales_rows(row_args.margin)) row_args.row_params = x_norms.inverse.reciprocal().unsqueeze(1);
  }
  const at::Tensor operand = x.to(dtype).contiguous();  // x̂ in the products' dtype

  LinearPass out;
  out.lse = at::empty({rows}, compute_options);
  out.row_loss = at::empty({rows}, compute_options);
  // The norm's own gradient (SphereFace) follows from each row's loss and entropy.
  const bool norm_grad = grad_features && args.normalize && margin_scales_rows(row_args.margin);
  const at::Tensor entropy = norm_grad ? at::empty({rows}, compute_options) : at::Tensor();
  const bool any_grad = grad_features || grad_weight;
  at::Tensor grad_x_hat = grad_features ? at::empty({rows, dim}, compute_options) : at::Tensor();
  at::Tensor grad_w;
  if (grad_weight)  // written by the first chunk (nothing to write for an empty batch)
    grad_w = rows > 0 ? empty_weight_gradient(weight, compute_options)
                      : empty_weight_gradient(weight, compute_options).zero_();

  const bool in_place = kernels.scales_columns;
  const int64_t chunk = std::max<int64_t>(1, std::min(rows, args.chunk_rows));
  const at::Tensor products_workspace = empty_for_pass({chunk, classes}, weight.options());
  const at::Tensor grad_workspace =
      any_grad && !in_place ? empty_for_pass({chunk, classes}, weight.options()) : at::Tensor();
  for (int64_t begin = 0; begin < rows; begin += chunk) {
    const int64_t n = std::min(chunk, rows - begin);
    const at::Tensor x_chunk = operand.narrow(0, begin, n);
    at::Tensor products = products_workspace.narrow(0, 0, n);
    at::mm_out(products, x_chunk, weight.t());
    RowLossArgs row = row_args;
    row.cos = products;  // the cosines once scaled by q
    if (args.normalize && in_place)
      row.column_scale = w_norms.inverse;
    else if (args.normalize)
      products.mul_(w_norms.inverse);
    row.target = row_args.target.narrow(0, begin, n);
    if (row.row_params.defined()) row.row_params = row_args.row_params.narrow(0, begin, n);
    RowOutputs chunk_out{out.lse.narrow(0, begin, n), out.row_loss.narrow(0, begin, n),
                         norm_grad ? entropy.narrow(0, begin, n) : at::Tensor(),
                         !any_grad  ? at::Tensor()
                         : in_place ? products
                                    : grad_workspace.narrow(0, 0, n)};
    chunk_row_kernels(kernels, row, chunk_out, scale,
                      row_scale.defined() ? row_scale.narrow(0, begin, n) : at::Tensor());
    if (!any_grad) continue;
    const at::Tensor& grad = chunk_out.grad_cos;
    if (args.normalize && !in_place) grad.mul_(w_norms.inverse);  // G: the gradient of x̂·w_j
    if (grad_features) {
      at::Tensor rows_grad = grad_x_hat.narrow(0, begin, n);
      if (dtype == compute)
        at::mm_out(rows_grad, grad, weight);
      else
        rows_grad.copy_(at::mm(grad, weight));
    }
    if (grad_weight) add_weight_gradient(grad_w, grad, x_chunk, begin == 0);
  }

  if (grad_features) {
    if (args.normalize) {
      at::Tensor along = (x * grad_x_hat).sum(1) * x_norms.passes;
      grad_x_hat = (grad_x_hat - x * along.unsqueeze(1)) * x_norms.inverse.unsqueeze(1);
      if (norm_grad) {  // + ∂L/∂‖x_i‖ · x̂_i
        const at::Tensor factor = row_scale.defined() ? row_scale : at::scalar_tensor(scale, compute_options);
        const int64_t logit_classes = classes / row_args.params.sub_centers;
        const at::Tensor norm_gradient = row_factor_gradient(row_args, logit_classes, out.row_loss, entropy, factor,
                                                             row_args.row_params.select(1, 0));
        grad_x_hat.addcmul_(x, (norm_gradient * x_norms.passes).unsqueeze(1));
      }
    }
    out.grad_features = grad_x_hat.to(args.features.scalar_type());
  }
  if (grad_weight) {
    if (args.normalize) project_weight_gradient(grad_w, weight, w_norms);
    out.grad_weight = grad_w.to(dtype);
  }
  return out;
}

}  // namespace angular::detail
