#pragma once
// One row of the fused CPU margin cross-entropy, and the loop over rows in its two copies:
// portable, and compiled for AVX2 + FMA (chosen at run time: detail/cpu/margin_cross_entropy.hpp).
// The forward computes each row's loss and, when a gradient will be needed, the row's gradient
// too (as Liger-Kernel does), in place in the gradient row: logits and exponentials chunk by
// chunk in L1 with an online max, then the gradient. arccos and exp run once per element;
// nothing [B, C] is allocated but the gradient itself.

#include <angular/detail/cpu/math.hpp>
#include <angular/detail/margin_policy.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__GNUC__) && defined(__x86_64__)
#define ANGULAR_CPU_AVX2 1
#define ANGULAR_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define ANGULAR_CPU_AVX2 0
#endif

namespace angular::detail::cpu {

constexpr int64_t kChunk = 2048;  // columns whose logits stay in L1 between two sweeps

/// One row's worth of the loss: everything but the row index is fixed for the call. M is the
/// float math of the copy of the loops it runs in, the same as the policy's.
template <class Policy, class scalar_t, class T, class M>
struct RowKernel {
  using Math = M;
  using V = typename M::Vec;
  static constexpr int64_t kWidth = sizeof(V) / sizeof(T);

  const scalar_t* cos;    // [B, C·K] contiguous
  const int64_t* target;  // [B]
  const T* class_weight;  // [C] or nullptr
  const T* column_scale;  // [C·K] or nullptr: the cosines are cos_ij·q_j, the gradient g_ij·q_j
  const T* row_scale;     // [B] or nullptr: row i's gradient is scaled by row_scale[i] too
  const T* row_params;    // [B, Policy::kRowParams] or nullptr
  T weight_sum;           // Σ_j w_j (C without weights)
  int64_t classes;        // C
  int64_t sub_centers;    // K
  T smoothing;
  int64_t ignore_index;
  Policy margin;

  /// Column k of a row, in T precision, times its column scale.
  ANGULAR_ALWAYS_INLINE T column(const scalar_t* row, int64_t k) const {
    return static_cast<T>(row[k]) * (column_scale != nullptr ? column_scale[k] : T(1));
  }
  /// The max of class j's K columns (a NaN wins, as at::max's), and which of them it is.
  ANGULAR_ALWAYS_INLINE T sub_center_max(const scalar_t* row, int64_t j, int32_t* which) const {
    T best = column(row, j * sub_centers);
    int32_t best_k = 0;
    for (int32_t k = 1; k < sub_centers; ++k) {
      const T c = column(row, j * sub_centers + k);
      if (c > best || (c != c && best == best)) best = c, best_k = k;
    }
    *which = best_k;
    return best;
  }
  /// A row's class cosines: its columns, or with sub-centers the K-column maxima gathered in
  /// `classes` [C] (and which column each is in `which`) before the sweeps, so that these read
  /// one contiguous cosine per class like the columns of K = 1.
  struct Cosines {
    const scalar_t* columns;
    const T* classes;       // or nullptr (K = 1)
    const int32_t* which;   // or nullptr (K = 1)
  };
  ANGULAR_ALWAYS_INLINE T cosine(const Cosines& row, int64_t j) const {
    return row.classes != nullptr ? row.classes[j] : column(row.columns, j);
  }
  /// Cosines of classes [j, j + kWidth) as V in T precision.
  ANGULAR_ALWAYS_INLINE V load_cos(const Cosines& row, int64_t j) const {
    if (row.classes != nullptr) return load<V>(row.classes + j);
    if constexpr (std::is_same_v<scalar_t, T>) {
      const V c = load<V>(row.columns + j);
      return column_scale != nullptr ? c * load<V>(column_scale + j) : c;
    } else {
      T lanes[kWidth];
      for (int64_t l = 0; l < kWidth; ++l) lanes[l] = column(row.columns, j + l);
      return load<V>(lanes);
    }
  }
  /// A gradient of cosines (U: V or T) as the gradient of what the row holds (times the
  /// column scales).
  template <class U>
  ANGULAR_ALWAYS_INLINE U scaled_gradient(const U& g, int64_t j) const {
    if (column_scale == nullptr) return g;
    if constexpr (std::is_same_v<U, T>) return g * column_scale[j];
    else return g * load<U>(column_scale + j);
  }

  ANGULAR_ALWAYS_INLINE V weights(int64_t j) const {
    return class_weight != nullptr ? load<V>(class_weight + j) : M::template broadcast<V>(T(1));
  }
  ANGULAR_ALWAYS_INLINE T weight(int64_t j) const {
    return class_weight != nullptr ? class_weight[j] : T(1);
  }

  /// Row i over `buffer` [C] (scratch, or the gradient row itself when it has the compute
  /// dtype and one column per class). Chunk by chunk, while the chunk is in L1: logits, then
  /// exponentials against the running max (kept per chunk in `chunk_max`), with an online sum
  /// (and Σ e_j z_j for the entropy where the policy scales rows). Then, when grad_row is
  /// given, one more sweep writes the gradient of scale·loss_i:
  ///   grad_j = scale·(coef·p_j − (ε/C)·w_j − (1 − ε)·w_y·[j = y])·dz_j/dc_j,
  ///   coef = (1 − ε)·w_y + (ε/C)·Σ w,  p = softmax(z).
  /// The loss is (1 − ε)·w_y·(lse − z_y) + (ε/C)·Σ_j w_j·(lse − z_j).
  /// With K > 1 sub-centers, class_cos and class_which [C] are scratch for the row's class
  /// cosines (nullptr where K = 1).
  ANGULAR_ALWAYS_INLINE void row(int64_t i, T* buffer, T* chunk_max, T* class_cos, int32_t* class_which,
                                 scalar_t* grad_row, T scale, T* lse_out, T* loss_out, T* entropy_out) const {
    const int64_t y = target[i];
    const int64_t width = classes * sub_centers;
    if (y == ignore_index) {
      *lse_out = T(0);
      *loss_out = T(0);
      if (entropy_out != nullptr) *entropy_out = T(0);
      if (grad_row != nullptr) std::fill(grad_row, grad_row + width, static_cast<scalar_t>(0));
      return;
    }
    const Cosines row{cos + i * width, class_cos, class_which};
    if (sub_centers > 1)
      for (int64_t j = 0; j < classes; ++j) class_cos[j] = sub_center_max(row.columns, j, class_which + j);
    const bool smoothed = smoothing != T(0);
    const T c_y = cosine(row, y);
    const int64_t y_column = y * sub_centers + (sub_centers > 1 ? class_which[y] : 0);
    const Policy policy =
        margin.at_row(row_params != nullptr ? row_params + i * Policy::kRowParams : nullptr, c_y);
    // Every logit is z + 0·c: NaN where a cosine is NaN or infinite, which the policies' clamp
    // would otherwise turn into a finite logit; a NaN logit makes the row's lse, loss and
    // gradient NaN.
    const T z_y = policy.target_logit(c_y) + T(0) * c_y;
    constexpr T lowest = -std::numeric_limits<T>::max();
    T running_max = lowest, sum = 0, weighted = 0, dot = 0;
    for (int64_t begin = 0, chunk = 0; begin < classes; begin += kChunk, ++chunk) {
      const int64_t end = std::min(classes, begin + kChunk);
      const int64_t vector_end = end - (end - begin) % kWidth;
      // Logits, their max and Σ_j w_j z_j.
      V vector_max = M::template broadcast<V>(lowest);
      V vector_weighted{};
      T chunk_top = lowest;
      for (int64_t j = begin; j < vector_end; j += kWidth) {
        const V c = load_cos(row, j);
        const V z = policy.logit(c) + T(0) * c;
        store(buffer + j, z);
        vector_max = select(z > vector_max, z, vector_max);
        if (smoothed) vector_weighted += weights(j) * z;
      }
      for (int64_t j = vector_end; j < end; ++j) {
        const T c = cosine(row, j);
        buffer[j] = policy.logit(c) + T(0) * c;
        chunk_top = std::max(chunk_top, buffer[j]);
        if (smoothed) weighted += weight(j) * buffer[j];
      }
      weighted += lane_sum<V, T>(vector_weighted);
      chunk_top = std::max(chunk_top, lane_max<V, T>(vector_max));
      if (y >= begin && y < end) {
        // The label's column went in as an off-label logit. Where that was the chunk's max it
        // must not stay the max: a max far above every logit (CurricularFace's, or any C = 1)
        // would underflow all the exponentials.
        const T off_label = buffer[y];
        if (smoothed) weighted += weight(y) * (z_y - off_label);
        buffer[y] = z_y;
        if (!(off_label < chunk_top)) chunk_top = max_of(buffer, begin, end);
        chunk_top = std::max(chunk_top, z_y);
      }
      const T top = std::max(running_max, chunk_top);
      // Exponentials against the new running max.
      const T rescale = M::exp(running_max - top);
      sum *= rescale;
      running_max = top;
      chunk_max[chunk] = top;
      V vector_sum{}, vector_dot{};
      for (int64_t j = begin; j < vector_end; j += kWidth) {
        const V z = load<V>(buffer + j);
        const V e = M::exp_nonpositive(z - top);
        store(buffer + j, e);
        vector_sum += e;
        if constexpr (Policy::kScalesRows) vector_dot += e * z;
      }
      if constexpr (Policy::kScalesRows) dot *= rescale;
      for (int64_t j = vector_end; j < end; ++j) {
        const T z = buffer[j];
        buffer[j] = M::exp_nonpositive(z - top);
        sum += buffer[j];
        if constexpr (Policy::kScalesRows) dot += buffer[j] * z;
      }
      sum += lane_sum<V, T>(vector_sum);
      if constexpr (Policy::kScalesRows) dot += lane_sum<V, T>(vector_dot);
    }
    const T lse = running_max + M::log(sum);
    const T w_y = weight(y);
    const T per_class = smoothing / static_cast<T>(classes);
    *lse_out = lse;
    *loss_out = (T(1) - smoothing) * w_y * (lse - z_y) + per_class * (weight_sum * lse - weighted);
    if (entropy_out != nullptr) *entropy_out = lse - dot / sum;
    if (grad_row == nullptr) return;

    // The gradient; p_j = e_j·exp(chunk max − lse). Then the label's column, with its own
    // slope and the one-hot term.
    const T numerator = scale * ((T(1) - smoothing) * w_y + per_class * weight_sum);
    const T uniform = scale * per_class;
    const T p_y = buffer[y] * M::exp(chunk_max[y / kChunk] - lse);
    // With sub-centers the other K − 1 columns of each class get 0 (the row's columns are not
    // read again: its class cosines are in class_cos).
    if (sub_centers > 1) std::fill(grad_row, grad_row + width, static_cast<scalar_t>(0));
    for (int64_t begin = 0, chunk = 0; begin < classes; begin += kChunk, ++chunk) {
      const int64_t end = std::min(classes, begin + kChunk);
      const T coef = numerator * M::exp(chunk_max[chunk] - lse);
      gradient_sweep(policy, row, buffer, grad_row, begin, end, coef, uniform, smoothed);
    }
    grad_row[y_column] = static_cast<scalar_t>(scaled_gradient(
        (numerator * p_y - uniform * w_y - scale * (T(1) - smoothing) * w_y) * policy.target_dlogit(c_y), y_column));
  }

  /// max of buffer[begin, end).
  ANGULAR_ALWAYS_INLINE static T max_of(const T* buffer, int64_t begin, int64_t end) {
    const int64_t vector_end = end - (end - begin) % kWidth;
    V vector_max = M::template broadcast<V>(-std::numeric_limits<T>::max());
    for (int64_t j = begin; j < vector_end; j += kWidth) {
      const V z = load<V>(buffer + j);
      vector_max = select(z > vector_max, z, vector_max);
    }
    T top = lane_max<V, T>(vector_max);
    for (int64_t j = vector_end; j < end; ++j) top = std::max(top, buffer[j]);
    return top;
  }

  /// grad_j = (coef·e_j − uniform·w_j)·dz_j/dc_j for classes [begin, end), into class j's
  /// column (with sub-centers, the column of its max).
  ANGULAR_ALWAYS_INLINE void gradient_sweep(const Policy& policy, const Cosines& row, const T* buffer,
                                            scalar_t* grad_row, int64_t begin, int64_t end, T coef,
                                            T uniform, bool smoothed) const {
    const int64_t vector_end = end - (end - begin) % kWidth;
    const auto write = [&](int64_t j, T g) ANGULAR_LAMBDA_INLINE {
      const int64_t k = row.which != nullptr ? j * sub_centers + row.which[j] : j;
      grad_row[k] = static_cast<scalar_t>(column_scale != nullptr ? g * column_scale[k] : g);
    };
    // Lambdas on vectors are always inlined, as everything below rows_avx2 is: the AVX2
    // math is only valid there, and vectors change ABI across a call into it.
    const auto sweep = [&](auto uniform_term) ANGULAR_LAMBDA_INLINE {
      for (int64_t j = begin; j < vector_end; j += kWidth) {
        const V g = (coef * load<V>(buffer + j) - uniform_term(j)) * policy.dlogit(load_cos(row, j));
        if constexpr (std::is_same_v<scalar_t, T>) {
          if (row.which == nullptr) {
            store(grad_row + j, scaled_gradient(g, j));
            continue;
          }
        }
        T lanes[kWidth];
        store(lanes, g);
        for (int64_t l = 0; l < kWidth; ++l) write(j + l, lanes[l]);
      }
    };
    // Without smoothing the (ε/C)·w_j term is 0: a loop without it.
    if (smoothed) sweep([&](int64_t j) ANGULAR_LAMBDA_INLINE { return uniform * weights(j); });
    else sweep([](int64_t) ANGULAR_LAMBDA_INLINE { return V{}; });
    for (int64_t j = vector_end; j < end; ++j)
      write(j, (coef * buffer[j] - uniform * weight(j)) * policy.dlogit(cosine(row, j)));
  }
};

/// Rows [begin, end); the scratch row is used when the gradient row cannot hold T values, is
/// the cosine row itself (a gradient written in place: each element is read before it is
/// written) or has K > 1 columns per class (written ahead of the logits still to be read).
template <class Kernel, class T, class scalar_t>
ANGULAR_ALWAYS_INLINE void rows(const Kernel& kernel, int64_t begin, int64_t end, T* scratch, T* chunk_max,
                                T* class_cos, int32_t* class_which, scalar_t* grad, T scale, T* lse, T* loss,
                                T* entropy) {
  const int64_t width = kernel.classes * kernel.sub_centers;
  for (int64_t i = begin; i < end; ++i) {
    scalar_t* grad_row = grad != nullptr ? grad + i * width : nullptr;
    T* buffer = scratch;
    if constexpr (std::is_same_v<scalar_t, T>) {
      if (grad_row != nullptr && grad != kernel.cos && kernel.sub_centers == 1) buffer = grad_row;
    }
    const T row_scale = kernel.row_scale != nullptr ? scale * kernel.row_scale[i] : scale;
    kernel.row(i, buffer, chunk_max, class_cos, class_which, grad_row, row_scale, lse + i, loss + i,
               entropy != nullptr ? entropy + i : nullptr);
  }
}

template <class Kernel, class T, class scalar_t>
void rows_default(const Kernel& kernel, int64_t begin, int64_t end, T* scratch, T* chunk_max, T* class_cos,
                  int32_t* class_which, scalar_t* grad, T scale, T* lse, T* loss, T* entropy) {
  rows(kernel, begin, end, scratch, chunk_max, class_cos, class_which, grad, scale, lse, loss, entropy);
}

#if ANGULAR_CPU_AVX2
// The same loop, compiled for AVX2 + FMA.
template <class Kernel, class T, class scalar_t>
ANGULAR_TARGET_AVX2 void rows_avx2(const Kernel& kernel, int64_t begin, int64_t end, T* scratch, T* chunk_max,
                                   T* class_cos, int32_t* class_which, scalar_t* grad, T scale, T* lse, T* loss,
                                   T* entropy) {
  rows(kernel, begin, end, scratch, chunk_max, class_cos, class_which, grad, scale, lse, loss, entropy);
}
#endif

/// Rows per task: enough elements that a task outweighs the cost of scheduling it.
inline int64_t row_grain(int64_t classes) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(classes, 1));
}

}  // namespace angular::detail::cpu
