#pragma once
// Fused CPU kernels of the margin cross-entropy: per row, one pass over cos [C] in the
// forward (online max / sum-exp in blocks of kBlock logits kept on the stack) and one pass
// in the backward (recomputing the logits from cos and the saved logsumexp). No [B, C]
// temporary is allocated. Rows are split over threads with at::parallel_for.
//
// The element loops run over fixed-width lanes with branch-free math (cpu/math.hpp) so the
// compiler vectorises them; on x86-64 a copy compiled for AVX2 + FMA is picked at run time
// when the processor has it, whatever flags the consumer builds with.

#include <angular/detail/cpu/math.hpp>
#include <angular/detail/margin_policy.hpp>
#include <angular/detail/row_loss.hpp>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <limits>
#include <type_traits>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ANGULAR_CPU_AVX2 1
#define ANGULAR_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define ANGULAR_CPU_AVX2 0
#endif

namespace angular::detail::cpu {

constexpr int64_t kLanes = 16;   // floats per step of the lane loops (one AVX-512 register)
constexpr int64_t kBlock = 256;  // logits held on the stack per block of a row

/// One row's worth of the loss: everything but the row index is fixed for the call.
template <class Policy, class scalar_t, class T>
struct RowKernel {
  const scalar_t* cos;    // [B, C] contiguous
  const int64_t* target;  // [B]
  const T* class_weight;  // [C] or nullptr
  T weight_sum;           // Σ_j w_j (C without weights)
  int64_t classes;
  T smoothing;
  int64_t ignore_index;
  Policy policy;

  /// cos[begin, begin + n) as T into c[0, kBlock), zero-padded.
  ANGULAR_HOST_DEVICE static void load_block(const scalar_t* row, int64_t begin, int64_t n, T* c) {
    for (int64_t j = 0; j < n; ++j) c[j] = static_cast<T>(row[begin + j]);
    for (int64_t j = n; j < kBlock; ++j) c[j] = T(0);
  }

  /// Logits of cos[begin, begin + n) into z[0, kBlock); padding gets a logit whose
  /// exponential is zero.
  ANGULAR_HOST_DEVICE void block_logits(const scalar_t* row, int64_t begin, int64_t n, int64_t y,
                                        T* z) const {
    load_block(row, begin, n, z);
    for (int64_t j = 0; j < kBlock; ++j) z[j] = policy.logit(z[j]);
    for (int64_t j = n; j < kBlock; ++j) z[j] = -std::numeric_limits<T>::max();
    if (y >= begin && y < begin + n) z[y - begin] = policy.target_logit(static_cast<T>(row[y]));
  }

  /// The row's logsumexp and loss (1 − ε)·w_y·(lse − z_y) + (ε/C)·Σ_j w_j·(lse − z_j).
  ANGULAR_HOST_DEVICE void forward(int64_t i, T* lse_out, T* loss_out) const {
    const int64_t y = target[i];
    if (y == ignore_index) {
      *lse_out = T(0);
      *loss_out = T(0);
      return;
    }
    const scalar_t* row = cos + i * classes;
    T z[kBlock];
    T max_lanes[kLanes], sum_lanes[kLanes], weighted_lanes[kLanes];
    T running_max = -std::numeric_limits<T>::max(), running_sum = 0, weighted = 0;
    for (int64_t begin = 0; begin < classes; begin += kBlock) {
      const int64_t n = classes - begin < kBlock ? classes - begin : kBlock;
      block_logits(row, begin, n, y, z);
      for (int64_t l = 0; l < kLanes; ++l) max_lanes[l] = z[l];
      for (int64_t j = kLanes; j < kBlock; j += kLanes)
        for (int64_t l = 0; l < kLanes; ++l) max_lanes[l] = z[j + l] > max_lanes[l] ? z[j + l] : max_lanes[l];
      T block_max = max_lanes[0];
      for (int64_t l = 1; l < kLanes; ++l) block_max = max_lanes[l] > block_max ? max_lanes[l] : block_max;
      if (block_max > running_max) {
        running_sum *= Math<T>::exp(running_max - block_max);
        running_max = block_max;
      }
      for (int64_t l = 0; l < kLanes; ++l) sum_lanes[l] = 0, weighted_lanes[l] = 0;
      for (int64_t j = 0; j < kBlock; j += kLanes)
        for (int64_t l = 0; l < kLanes; ++l) sum_lanes[l] += Math<T>::exp(z[j + l] - running_max);
      for (int64_t l = 0; l < kLanes; ++l) running_sum += sum_lanes[l];
      if (smoothing != T(0)) {
        // Σ_j w_j z_j over the block's real columns.
        if (class_weight != nullptr) {
          for (int64_t j = 0; j < n; ++j) weighted_lanes[j % kLanes] += class_weight[begin + j] * z[j];
        } else {
          for (int64_t j = 0; j < n; ++j) weighted_lanes[j % kLanes] += z[j];
        }
        for (int64_t l = 0; l < kLanes; ++l) weighted += weighted_lanes[l];
      }
    }
    const T lse = running_max + Math<T>::log(running_sum);
    const T target_z = policy.target_logit(static_cast<T>(row[y]));
    const T w_y = class_weight != nullptr ? class_weight[y] : T(1);
    *lse_out = lse;
    *loss_out = (T(1) - smoothing) * w_y * (lse - target_z) +
                smoothing / static_cast<T>(classes) * (weight_sum * lse - weighted);
  }

  /// grad_cos_j = g·(coef·p_j − (ε/C)·w_j − (1 − ε)·w_y·[j = y])·dz_j/dc_j,
  /// coef = (1 − ε)·w_y + (ε/C)·Σ w, p = softmax(z) recomputed from the saved lse.
  ANGULAR_HOST_DEVICE void backward(int64_t i, T lse, T grad, scalar_t* grad_row) const {
    const int64_t y = target[i];
    if (y == ignore_index || grad == T(0)) {
      for (int64_t j = 0; j < classes; ++j) grad_row[j] = static_cast<scalar_t>(0);
      return;
    }
    const scalar_t* row = cos + i * classes;
    const T w_y = class_weight != nullptr ? class_weight[y] : T(1);
    const T per_class = smoothing / static_cast<T>(classes);
    const T coef = grad * ((T(1) - smoothing) * w_y + per_class * weight_sum);
    const T uniform = grad * per_class;
    T c[kBlock], w[kBlock];
    for (int64_t j = 0; j < kBlock; ++j) w[j] = T(1);
    for (int64_t begin = 0; begin < classes; begin += kBlock) {
      const int64_t n = classes - begin < kBlock ? classes - begin : kBlock;
      load_block(row, begin, n, c);
      if (class_weight != nullptr) {
        for (int64_t j = 0; j < n; ++j) w[j] = class_weight[begin + j];
      }
      for (int64_t j = 0; j < kBlock; ++j) {
        const T p = Math<T>::exp(policy.logit(c[j]) - lse);
        c[j] = (coef * p - uniform * w[j]) * policy.dlogit(c[j]);
      }
      for (int64_t j = 0; j < n; ++j) grad_row[begin + j] = static_cast<scalar_t>(c[j]);
    }
    // The label's column: its own logit, and the one-hot part of the target distribution.
    const T c_y = static_cast<T>(row[y]);
    const T p_y = Math<T>::exp(policy.target_logit(c_y) - lse);
    grad_row[y] = static_cast<scalar_t>(
        (coef * p_y - uniform * w_y - grad * (T(1) - smoothing) * w_y) * policy.target_dlogit(c_y));
  }
};

template <class Kernel, class T>
void forward_rows(const Kernel& kernel, int64_t begin, int64_t end, T* lse, T* loss) {
  for (int64_t i = begin; i < end; ++i) kernel.forward(i, lse + i, loss + i);
}

template <class Kernel, class T, class scalar_t>
void backward_rows(const Kernel& kernel, int64_t begin, int64_t end, const T* lse,
                   const T* grad, scalar_t* grad_cos) {
  for (int64_t i = begin; i < end; ++i)
    kernel.backward(i, lse[i], grad[i], grad_cos + i * kernel.classes);
}

#if ANGULAR_CPU_AVX2
template <class Kernel, class T>
ANGULAR_TARGET_AVX2 void forward_rows_avx2(const Kernel& kernel, int64_t begin, int64_t end,
                                           T* lse, T* loss) {
  for (int64_t i = begin; i < end; ++i) kernel.forward(i, lse + i, loss + i);
}

template <class Kernel, class T, class scalar_t>
ANGULAR_TARGET_AVX2 void backward_rows_avx2(const Kernel& kernel, int64_t begin, int64_t end,
                                            const T* lse, const T* grad, scalar_t* grad_cos) {
  for (int64_t i = begin; i < end; ++i)
    kernel.backward(i, lse[i], grad[i], grad_cos + i * kernel.classes);
}

inline bool has_avx2() {
  static const bool available = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return available;
}
#endif

/// Rows per task: enough elements that a task outweighs the cost of scheduling it.
inline int64_t row_grain(int64_t classes) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(classes, 1)); }

/// Calls f(RowKernel<Policy, scalar_t, T>) for the arguments' dtype and margin.
template <class F>
void with_row_kernel(const RowLossArgs& args, F&& f) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, args.cos.scalar_type(), "angular_margin_cross_entropy_cpu", [&] {
    using T = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    with_margin_policy<T, Math<T>>(args.margin, args.params, [&](auto policy) {
      using Kernel = RowKernel<decltype(policy), scalar_t, T>;
      const Kernel kernel{args.cos.data_ptr<scalar_t>(),
                          args.target.data_ptr<int64_t>(),
                          args.class_weight.defined() ? args.class_weight.data_ptr<T>() : nullptr,
                          static_cast<T>(args.weight_sum.item<double>()),
                          args.cos.size(1),
                          static_cast<T>(args.label_smoothing),
                          args.ignore_index,
                          policy};
      f(kernel, T{}, scalar_t{});
    });
  });
}

inline void forward(const RowLossArgs& args, at::Tensor& lse, at::Tensor& row_loss) {
  with_row_kernel(args, [&](const auto& kernel, auto t, auto) {
    using T = decltype(t);
    T* lse_data = lse.data_ptr<T>();
    T* loss_data = row_loss.data_ptr<T>();
    at::parallel_for(0, args.cos.size(0), row_grain(args.cos.size(1)), [&](int64_t begin, int64_t end) {
#if ANGULAR_CPU_AVX2
      if (has_avx2()) return forward_rows_avx2(kernel, begin, end, lse_data, loss_data);
#endif
      forward_rows(kernel, begin, end, lse_data, loss_data);
    });
  });
}

inline void backward(const RowLossArgs& args, const at::Tensor& lse, const at::Tensor& row_grad,
                     at::Tensor& grad_cos) {
  with_row_kernel(args, [&](const auto& kernel, auto t, auto s) {
    using T = decltype(t);
    using scalar_t = decltype(s);
    const T* lse_data = lse.data_ptr<T>();
    const T* grad_data = row_grad.data_ptr<T>();
    scalar_t* out = grad_cos.data_ptr<scalar_t>();
    at::parallel_for(0, args.cos.size(0), row_grain(args.cos.size(1)), [&](int64_t begin, int64_t end) {
#if ANGULAR_CPU_AVX2
      if (has_avx2()) return backward_rows_avx2(kernel, begin, end, lse_data, grad_data, out);
#endif
      backward_rows(kernel, begin, end, lse_data, grad_data, out);
    });
  });
}

}  // namespace angular::detail::cpu
