#pragma once
// The fused CPU rows of the class-sharded loss: a rank holds some of the classes, so a row's
// softmax needs numbers from every rank. Its two sweeps around the ranks' all-reduces:
//   partials  over a chunk of the rank's classes, merged into the row's running max m, its
//             s = Σ exp(z − m), Σ e·z (the softmax entropy, for SphereFace), the label's logit
//             where this rank holds the label, and Σ_j w_j z_j (label smoothing);
//   gradient  with the row's lse over all classes, its factor a (reduction, upstream) and
//             target mass, the cosine gradient a·(mass·p_j − (ε/C)·w_j − (1 − ε)·w_y·[j = y])
//             ·dz_j/dc_j times the column scale, written over the chunk's cosines.
// Logits, exponentials and the gradient sweep are RowKernel's (detail/cpu/row_kernel.hpp), so
// every margin policy and dtype of the single-process kernel runs here too.

#include <angular/detail/cpu/fpu.hpp>
#include <angular/detail/cpu/margin_cross_entropy.hpp>

#include <limits>
#include <vector>

namespace angular::detail::cpu {

/// Label codes of the sharded rows (RowLossArgs::target): a local class index, or one of these.
constexpr int64_t kLabelElsewhere = -1;  // the label is another rank's class
constexpr int64_t kLabelIgnored = -2;    // the row is ignored (its RowLossArgs::ignore_index)

/// Per row, what the partial sweeps accumulate over the rank's chunks ([B] each, compute dtype).
template <class T>
struct ShardRowState {
  T *max, *sum, *dot, *label_logit, *weighted;
};

/// Per row, what the gradient sweep reads ([B] each, compute dtype) and ε/C over all classes.
template <class T>
struct ShardRowGradient {
  const T *lse, *factor, *mass;
  T per_class;
};

template <class Kernel, class T>
struct ShardRow {
  using V = typename Kernel::V;
  static constexpr int64_t kWidth = Kernel::kWidth;
  using Cosines = typename Kernel::Cosines;

  const Kernel& k;
  const T* label_cosines;  // [B] every row's label cosine wherever it lies (CurricularFace), or nullptr

  /// The row's cosines (sub-center maxima gathered first), its policy, and its label's logit.
  template <class Policy>
  struct Setup {
    Cosines row;
    Policy policy;
    T c_y, z_y;
  };
  ANGULAR_ALWAYS_INLINE auto setup(int64_t i, int64_t y, T* class_cos, int32_t* class_which) const {
    using Policy = decltype(k.margin);
    const int64_t width = k.classes * k.sub_centers;
    Setup<Policy> s{{k.cos + i * width, class_cos, class_which}, k.margin, T(0), T(0)};
    if (k.sub_centers > 1)
      for (int64_t j = 0; j < k.classes; ++j) class_cos[j] = k.sub_center_max(s.row.columns, j, class_which + j);
    if (y >= 0) s.c_y = k.cosine(s.row, y);
    const T* params = k.row_params != nullptr ? k.row_params + i * Policy::kRowParams : nullptr;
    s.policy = k.margin.at_row(params, label_cosines != nullptr ? label_cosines[i] : s.c_y);
    if (y >= 0) s.z_y = s.policy.target_logit(s.c_y) + T(0) * s.c_y;
    return s;
  }

  /// Logits of classes [begin, end) into buffer (the label's own where it is here); returns
  /// their max and adds Σ w_j z_j to `weighted`.
  template <class S>
  ANGULAR_ALWAYS_INLINE T logits(const S& s, int64_t y, T* buffer, int64_t begin, int64_t end, T& weighted) const {
    const int64_t vector_end = end - (end - begin) % kWidth;
    const bool smoothed = k.smoothing != T(0);
    constexpr T lowest = -std::numeric_limits<T>::max();
    V vector_max = Kernel::Math::template broadcast<V>(lowest);
    V vector_weighted{};
    T top = lowest;
    for (int64_t j = begin; j < vector_end; j += kWidth) {
      const V c = k.load_cos(s.row, j);
      const V z = s.policy.logit(c) + T(0) * c;
      store(buffer + j, z);
      vector_max = select(z > vector_max, z, vector_max);
      if (smoothed) vector_weighted += k.weights(j) * z;
    }
    for (int64_t j = vector_end; j < end; ++j) {
      const T c = k.cosine(s.row, j);
      buffer[j] = s.policy.logit(c) + T(0) * c;
      top = std::max(top, buffer[j]);
      if (smoothed) weighted += k.weight(j) * buffer[j];
    }
    weighted += lane_sum<V, T>(vector_weighted);
    top = std::max(top, lane_max<V, T>(vector_max));
    if (y >= begin && y < end) {  // as in RowKernel::row: the label's logit replaces the off-label one
      const T off_label = buffer[y];
      if (smoothed) weighted += k.weight(y) * (s.z_y - off_label);
      buffer[y] = s.z_y;
      if (!(off_label < top)) top = Kernel::max_of(buffer, begin, end);
      top = std::max(top, s.z_y);
    }
    return top;
  }

  ANGULAR_ALWAYS_INLINE void partials(int64_t i, T* buffer, T* class_cos, int32_t* class_which,
                                      const ShardRowState<T>& state) const {
    const int64_t y = k.target[i];
    if (y == kLabelIgnored) return;
    const auto s = setup(i, y, class_cos, class_which);
    using Policy = decltype(s.policy);
    T running_max = state.max[i], sum = state.sum[i], dot = state.dot[i], weighted = 0;
    for (int64_t begin = 0; begin < k.classes; begin += kChunk) {
      const int64_t end = std::min(k.classes, begin + kChunk);
      const T top = std::max(running_max, logits(s, y, buffer, begin, end, weighted));
      const T rescale = Kernel::Math::exp(running_max - top);
      sum *= rescale;
      if constexpr (Policy::kScalesRows) dot *= rescale;
      running_max = top;
      const int64_t vector_end = end - (end - begin) % kWidth;
      V vector_sum{}, vector_dot{};
      for (int64_t j = begin; j < vector_end; j += kWidth) {
        const V z = load<V>(buffer + j);
        const V e = Kernel::Math::exp_nonpositive(z - top);
        vector_sum += e;
        if constexpr (Policy::kScalesRows) vector_dot += e * z;
      }
      for (int64_t j = vector_end; j < end; ++j) {
        const T e = Kernel::Math::exp_nonpositive(buffer[j] - top);
        sum += e;
        if constexpr (Policy::kScalesRows) dot += e * buffer[j];
      }
      sum += lane_sum<V, T>(vector_sum);
      if constexpr (Policy::kScalesRows) dot += lane_sum<V, T>(vector_dot);
    }
    state.max[i] = running_max;
    state.sum[i] = sum;
    state.dot[i] = dot;
    if (y >= 0) state.label_logit[i] += s.z_y;
    state.weighted[i] += weighted;
  }

  template <class scalar_t>
  ANGULAR_ALWAYS_INLINE void gradient(int64_t i, T* buffer, T* class_cos, int32_t* class_which, scalar_t* grad_row,
                                      const ShardRowGradient<T>& g) const {
    const int64_t y = k.target[i];
    const int64_t width = k.classes * k.sub_centers;
    if (y == kLabelIgnored) {
      std::fill(grad_row, grad_row + width, static_cast<scalar_t>(0));
      return;
    }
    const auto s = setup(i, y, class_cos, class_which);  // reads the row before it is overwritten
    const T a = g.factor[i], lse = g.lse[i];
    const T numerator = a * g.mass[i], uniform = a * g.per_class;
    const bool smoothed = k.smoothing != T(0);
    if (k.sub_centers > 1) std::fill(grad_row, grad_row + width, static_cast<scalar_t>(0));
    for (int64_t begin = 0; begin < k.classes; begin += kChunk) {
      const int64_t end = std::min(k.classes, begin + kChunk);
      T unused = 0;
      logits(s, y, buffer, begin, end, unused);
      const int64_t vector_end = end - (end - begin) % kWidth;
      for (int64_t j = begin; j < vector_end; j += kWidth)
        store(buffer + j, Kernel::Math::exp_nonpositive(load<V>(buffer + j) - lse));
      for (int64_t j = vector_end; j < end; ++j) buffer[j] = Kernel::Math::exp_nonpositive(buffer[j] - lse);
      k.gradient_sweep(s.policy, s.row, buffer, grad_row, begin, end, numerator, uniform, smoothed);
    }
    if (y < 0) return;
    const int64_t y_column = y * k.sub_centers + (k.sub_centers > 1 ? class_which[y] : 0);
    const T w_y = k.weight(y);
    const T p_y = Kernel::Math::exp_nonpositive(s.z_y - lse);
    grad_row[y_column] = static_cast<scalar_t>(k.scaled_gradient(
        (numerator * p_y - uniform * w_y - a * (T(1) - k.smoothing) * w_y) * s.policy.target_dlogit(s.c_y),
        y_column));
  }
};

/// Rows [begin, end) of one sweep; `grad` null for the partials.
template <class Kernel, class T, class scalar_t>
ANGULAR_ALWAYS_INLINE void shard_rows(const ShardRow<Kernel, T>& r, int64_t begin, int64_t end, T* buffer,
                                      T* class_cos, int32_t* class_which, scalar_t* grad,
                                      const ShardRowState<T>& state, const ShardRowGradient<T>& g) {
  const int64_t width = r.k.classes * r.k.sub_centers;
  for (int64_t i = begin; i < end; ++i) {
    if (grad == nullptr) r.partials(i, buffer, class_cos, class_which, state);
    else r.gradient(i, buffer, class_cos, class_which, grad + i * width, g);
  }
}

template <class Kernel, class T, class scalar_t>
void shard_rows_default(const ShardRow<Kernel, T>& r, int64_t begin, int64_t end, T* buffer, T* class_cos,
                        int32_t* class_which, scalar_t* grad, const ShardRowState<T>& state,
                        const ShardRowGradient<T>& g) {
  shard_rows(r, begin, end, buffer, class_cos, class_which, grad, state, g);
}

#if ANGULAR_CPU_AVX2
template <class Kernel, class T, class scalar_t>
ANGULAR_TARGET_AVX2 void shard_rows_avx2(const ShardRow<Kernel, T>& r, int64_t begin, int64_t end, T* buffer,
                                         T* class_cos, int32_t* class_which, scalar_t* grad,
                                         const ShardRowState<T>& state, const ShardRowGradient<T>& g) {
  shard_rows(r, begin, end, buffer, class_cos, class_which, grad, state, g);
}
#endif

/// One sweep over every row of `args` (its target holding the label codes above): the
/// partials into `state` where `grad` is undefined, else the gradient written into `grad`
/// (which may be args.cos itself). `state` and `gradient` tensors are [B] in the compute dtype;
/// label_cosines [B] or undefined.
template <bool kAvx2>
void shard_sweep_on(const RowLossArgs& args, const at::Tensor& label_cosines, const std::vector<at::Tensor>& state,
                    const std::vector<at::Tensor>& gradient, double per_class, at::Tensor grad) {
  with_row_kernel<kAvx2>(args, [&](const auto& kernel, auto t, auto sc) {
    using T = decltype(t);
    using scalar_t = decltype(sc);
    using Kernel = std::decay_t<decltype(kernel)>;
    const ShardRow<Kernel, T> r{kernel, label_cosines.defined() ? label_cosines.data_ptr<T>() : nullptr};
    ShardRowState<T> s{};
    ShardRowGradient<T> g{};
    if (grad.defined()) g = {gradient[0].data_ptr<T>(), gradient[1].data_ptr<T>(), gradient[2].data_ptr<T>(),
                             static_cast<T>(per_class)};
    else s = {state[0].data_ptr<T>(), state[1].data_ptr<T>(), state[2].data_ptr<T>(), state[3].data_ptr<T>(),
              state[4].data_ptr<T>()};
    scalar_t* out = grad.defined() ? grad.data_ptr<scalar_t>() : nullptr;
    parallel_rows(args.cos.size(0), row_grain(args.cos.size(1)), [&](int64_t begin, int64_t end) {
      const FlushDenormals flush_denormals;
      std::vector<T> buffer(static_cast<size_t>(kernel.classes));
      SubCenterScratch<T> sub_centers(kernel.classes, kernel.sub_centers);
      T* cos_scratch = sub_centers.cos();
      int32_t* which_scratch = sub_centers.which();
      if constexpr (kAvx2) {
#if ANGULAR_CPU_AVX2
        shard_rows_avx2(r, begin, end, buffer.data(), cos_scratch, which_scratch, out, s, g);
#endif
      } else {
        shard_rows_default(r, begin, end, buffer.data(), cos_scratch, which_scratch, out, s, g);
      }
    });
  });
}

inline void shard_sweep(const RowLossArgs& args, const at::Tensor& label_cosines, const std::vector<at::Tensor>& state,
                        const std::vector<at::Tensor>& gradient, double per_class, const at::Tensor& grad) {
#if ANGULAR_CPU_AVX2
  if (has_avx2()) return shard_sweep_on<true>(args, label_cosines, state, gradient, per_class, grad);
#endif
  shard_sweep_on<false>(args, label_cosines, state, gradient, per_class, grad);
}

}  // namespace angular::detail::cpu
