#pragma once
// Fused CPU kernel of the margin cross-entropy. The forward computes each row's loss and,
// when a gradient will be needed, the row's gradient too (as Liger-Kernel does), in place in
// the gradient row: logits and exponentials chunk by chunk in L1 with an online max, then
// the gradient. The backward only scales that gradient by the upstream one. arccos and exp
// run once per element; nothing [B, C] is allocated but the gradient itself.
//
// Element loops run on Math<T>::Vec (8 floats, or scalar doubles); on x86-64 a copy compiled
// for AVX2 + FMA, with a few one-instruction primitives in its math, is chosen at run time when
// the processor has it, whatever flags the consumer builds with. (No AVX-512 copy: it
// measured slower, bench/RESULTS.md.)

#include <angular/detail/cpu/math.hpp>
#include <angular/detail/cpu/parallel.hpp>
#include <angular/detail/margin_policy.hpp>
#include <angular/detail/row_loss.hpp>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#if defined(__GNUC__) && defined(__x86_64__)
#define ANGULAR_CPU_AVX2 1
#define ANGULAR_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define ANGULAR_CPU_AVX2 0
#endif

namespace angular::detail::cpu {

constexpr int64_t kChunk = 2048;  // columns whose logits stay in L1 between two sweeps

template <class V, class T>
ANGULAR_ALWAYS_INLINE V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class V, class T>
ANGULAR_ALWAYS_INLINE void store(T* p, const V& v) { std::memcpy(p, &v, sizeof v); }

/// Folds the lanes of v with `combine` (v itself when V is a scalar).
template <class V, class T, class Combine>
ANGULAR_ALWAYS_INLINE T fold_lanes(const V& v, Combine combine) {
  if constexpr (std::is_same_v<V, T>) {
    return v;
  } else {
    T lanes[sizeof(V) / sizeof(T)];
    std::memcpy(lanes, &v, sizeof v);
    T out = lanes[0];
    for (size_t l = 1; l < sizeof(V) / sizeof(T); ++l) out = combine(out, lanes[l]);
    return out;
  }
}

template <class V, class T>
ANGULAR_ALWAYS_INLINE T lane_max(const V& v) {
  return fold_lanes<V, T>(v, [](T a, T b) { return a > b ? a : b; });
}

template <class V, class T>
ANGULAR_ALWAYS_INLINE T lane_sum(const V& v) {
  return fold_lanes<V, T>(v, [](T a, T b) { return a + b; });
}

/// One row's worth of the loss: everything but the row index is fixed for the call. M is the
/// float math of the copy of the loops it runs in, the same as the policy's.
template <class Policy, class scalar_t, class T, class M>
struct RowKernel {
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

/// Whether the AVX2 copy runs: the processor has AVX2 and FMA, and ATen's own switch does
/// not ask for its portable kernels (ATEN_CPU_CAPABILITY=default), which also selects ours.
inline bool has_avx2() {
  static const bool available = [] {
    const char* capability = std::getenv("ATEN_CPU_CAPABILITY");
    if (capability != nullptr && std::strcmp(capability, "default") == 0) return false;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return available;
}
#endif

/// Rows per task: enough elements that a task outweighs the cost of scheduling it.
inline int64_t row_grain(int64_t classes) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(classes, 1));
}

/// The math of the copy of the loops compiled for AVX2 (kAvx2) or of the portable one.
template <class T, bool kAvx2>
struct KernelMath {
  using type = Math<T>;
};
#if ANGULAR_CPU_AVX2 && ANGULAR_CPU_AVX2_OPS
template <>
struct KernelMath<float, true> {
  using type = Avx2Math;
};
#endif

/// Calls f(kernel, T{}, scalar_t{}) with the RowKernel for the arguments' dtype and margin.
template <bool kAvx2, class F>
void with_row_kernel(const RowLossArgs& args, F&& f) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, args.cos.scalar_type(), "angular_margin_cross_entropy_cpu", [&] {
        using T = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
        using KernelMathT = typename KernelMath<T, kAvx2>::type;
        with_margin_policy<T, KernelMathT>(args.margin, args.params, [&](auto policy) {
          using Kernel = RowKernel<decltype(policy), scalar_t, T, KernelMathT>;
          const Kernel kernel{args.cos.data_ptr<scalar_t>(),
                              args.target.data_ptr<int64_t>(),
                              args.class_weight.defined() ? args.class_weight.data_ptr<T>() : nullptr,
                              args.column_scale.defined() ? args.column_scale.data_ptr<T>() : nullptr,
                              args.row_scale.defined() ? args.row_scale.data_ptr<T>() : nullptr,
                              args.row_params.defined() ? args.row_params.data_ptr<T>() : nullptr,
                              static_cast<T>(args.weight_sum.item<double>()),
                              args.cos.size(1) / args.params.sub_centers,
                              args.params.sub_centers,
                              static_cast<T>(args.label_smoothing),
                              args.ignore_index,
                              policy};
          f(kernel, T{}, scalar_t{});
        });
      });
}

/// A fresh multi-megabyte gradient faults in 4 KiB pages as the kernel first writes it; at
/// C = 100 000 that costs more than the math. Ask Linux for transparent huge pages (the
/// default "madvise" mode honours this); purely advisory.
inline void prefer_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kPage = 4096;
  if (bytes < (size_t{8} << 20)) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kPage - 1) & ~(kPage - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kPage - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

/// Flushes denormal floats to zero, as inputs and as results, on this thread while it lives.
/// With a scale like ArcFace's 64 most of a row's e^(z − max) and gradient terms fall below
/// 2^−126, and on Intel cores every operation that reads or makes a denormal takes a
/// microcode assist of about a hundred cycles (the fused ArcFace kernel ran 5× slower than
/// Arc's); what is flushed is below 1.2e-38, nothing next to a row's e^0 = 1.
class FlushDenormals {
 public:
#if defined(__x86_64__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  static constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;
  unsigned saved_;
#endif
};

/// forward() on the copy of the loops compiled for AVX2 (kAvx2) or on the portable one.
template <bool kAvx2>
void forward_rows(const RowLossArgs& args, RowOutputs& out, double scale) {
  with_row_kernel<kAvx2>(args, [&](const auto& kernel, auto t, auto s) {
    using T = decltype(t);
    using scalar_t = decltype(s);
    T* lse = out.lse.data_ptr<T>();
    T* loss = out.row_loss.data_ptr<T>();
    T* entropy = out.entropy.defined() ? out.entropy.data_ptr<T>() : nullptr;
    scalar_t* grad = out.grad_cos.defined() ? out.grad_cos.data_ptr<scalar_t>() : nullptr;
    if (grad != nullptr) prefer_huge_pages(grad, out.grad_cos.nbytes());
    const bool needs_scratch =
        grad == nullptr || !std::is_same_v<scalar_t, T> || grad == kernel.cos || kernel.sub_centers > 1;
    parallel_rows(args.cos.size(0), row_grain(args.cos.size(1)), [&](int64_t begin, int64_t end) {
      const FlushDenormals flush_denormals;
      std::vector<T> scratch(needs_scratch ? static_cast<size_t>(kernel.classes) : 0);
      std::vector<T> chunk_max(static_cast<size_t>((kernel.classes + kChunk - 1) / kChunk));
      const size_t sub_center_classes = kernel.sub_centers > 1 ? static_cast<size_t>(kernel.classes) : 0;
      std::vector<T> class_cos(sub_center_classes);
      std::vector<int32_t> class_which(sub_center_classes);
      T* cos_scratch = sub_center_classes > 0 ? class_cos.data() : nullptr;
      int32_t* which_scratch = sub_center_classes > 0 ? class_which.data() : nullptr;
      if constexpr (kAvx2) {
#if ANGULAR_CPU_AVX2
        rows_avx2(kernel, begin, end, scratch.data(), chunk_max.data(), cos_scratch, which_scratch, grad,
                  static_cast<T>(scale), lse, loss, entropy);
#endif
      } else {
        rows_default(kernel, begin, end, scratch.data(), chunk_max.data(), cos_scratch, which_scratch, grad,
                     static_cast<T>(scale), lse, loss, entropy);
      }
    });
  });
}

/// Per-row lse, loss (and entropy where out.entropy is defined); with out.grad_cos defined,
/// also the gradient of Σ_i scale·loss_i.
inline void forward(const RowLossArgs& args, RowOutputs& out, double scale) {
#if ANGULAR_CPU_AVX2
  if (has_avx2()) return forward_rows<true>(args, out, scale);
#endif
  forward_rows<false>(args, out, scale);
}

}  // namespace angular::detail::cpu
