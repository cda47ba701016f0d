#pragma once
// Fused CUDA kernels of the margin cross-entropy, compiled only by the angular::cuda source
// (cuda/angular_cuda.cu). One group of threads per row: a warp when C is small, a block of
// kBlockThreads otherwise. Forward: online max / sum-exp per thread over 16-byte loads, then
// a shuffle (and shared-memory) reduction; writes the row's logsumexp and loss. Backward:
// recomputes each logit from cos and the logsumexp and writes grad_cos. Rows of any length
// (C up to 2^31 and beyond) stream through registers; nothing [B, C] is allocated.

#include <angular/detail/margin_policy.hpp>
#include <angular/detail/row_loss.hpp>

#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <cfloat>
#include <cstdint>
#include <type_traits>

namespace angular::detail::cuda {

constexpr int kBlockThreads = 256;

template <class T>
ANGULAR_HOST_DEVICE constexpr T lowest_finite() {
  return std::is_same_v<T, double> ? -DBL_MAX : -FLT_MAX;
}

template <class T>
struct DeviceMath {
  template <class V>
  ANGULAR_HOST_DEVICE static V broadcast(T x) { return x; }
  ANGULAR_HOST_DEVICE static T clamp(T x, T lo, T hi) { return x < lo ? lo : (x > hi ? hi : x); }
  ANGULAR_HOST_DEVICE static T where_inside(T x, T lo, T hi, T value) {
    return x > lo && x < hi ? value : T(0);
  }
  ANGULAR_HOST_DEVICE static T where_greater(T x, T threshold, T a, T b) { return x > threshold ? a : b; }
  ANGULAR_HOST_DEVICE static T acos(T x) { return ::acos(x); }
  ANGULAR_HOST_DEVICE static T asin(T x) { return ::asin(x); }
  ANGULAR_HOST_DEVICE static T rsqrt(T x) {
#if defined(__CUDA_ARCH__)
    return ::rsqrt(x);
#else
    return T(1) / ::sqrt(x);
#endif
  }
  ANGULAR_HOST_DEVICE static T exp(T x) {
#if defined(__CUDA_ARCH__)
    // The hardware exp2 for float (a few ulp, well inside the kernels' 1e-4 tolerance): the
    // backward takes one exp per element, the forward one or two.
    if constexpr (std::is_same_v<T, float>) return __expf(x);
#endif
    return ::exp(x);
  }
  ANGULAR_HOST_DEVICE static T log(T x) { return ::log(x); }
  ANGULAR_HOST_DEVICE static T cos(T x) { return ::cos(x); }
  ANGULAR_HOST_DEVICE static T sin(T x) { return ::sin(x); }
  ANGULAR_HOST_DEVICE static T next_below(T x) { return ::nextafter(x, lowest_finite<T>()); }
};

/// Everything a kernel reads, as raw pointers.
template <class scalar_t, class T>
struct RowData {
  using input_type = scalar_t;
  using compute_type = T;
  const scalar_t* cos;
  const int64_t* target;
  const T* class_weight;  // or nullptr
  const T* weight_sum;    // device scalar
  const T* row_params;    // [rows, kRowParams] or nullptr
  int64_t rows;
  int64_t classes;        // C
  int64_t sub_centers;    // K: a row has C·K columns
  T smoothing;
  int64_t ignore_index;

  /// Class j's cosine in row `row`: its column, or the max of its K columns (a NaN wins, as
  /// at::max's), and which of them it is.
  __device__ __forceinline__ T cosine(const scalar_t* row, int64_t j, int64_t* which = nullptr) const {
    if (sub_centers == 1) return static_cast<T>(row[j]);
    T best = static_cast<T>(row[j * sub_centers]);
    int64_t best_k = 0;
    for (int64_t k = 1; k < sub_centers; ++k) {
      const T c = static_cast<T>(row[j * sub_centers + k]);
      if (c > best || (c != c && best == best)) best = c, best_k = k;
    }
    if (which != nullptr) *which = best_k;
    return best;
  }
  /// Row i's policy (its parameters and its label's cosine).
  template <class Policy>
  __device__ __forceinline__ Policy policy_of_row(const Policy& margin, int64_t i, int64_t y) const {
    const T* params = row_params != nullptr ? row_params + i * Policy::kRowParams : nullptr;
    return margin.at_row(params, cosine(cos + i * classes * sub_centers, y));
  }
};

template <class scalar_t>
struct alignas(16) Pack {
  static constexpr int kSize = 16 / sizeof(scalar_t);
  scalar_t v[kSize];
};

/// Visits the columns j ≡ lane (mod step) of a row, reading 16 bytes at a time wherever the
/// row is aligned for it, kUnroll packs in flight per thread (the loads are issued before any
/// is used: what keeps HBM busy with one row per block). f(j, value) either returns nothing
/// (forward) or the value to store at out[j] (backward: 16-byte stores too, where `out` is
/// aligned like `row`).
template <class scalar_t, class F>
__device__ __forceinline__ void for_each_column(const scalar_t* __restrict__ row, scalar_t* __restrict__ out,
                                                int64_t classes, int lane, int step, F&& f) {
  constexpr int kPack = Pack<scalar_t>::kSize;
  constexpr int kUnroll = 4;
  constexpr bool kWrites = !std::is_void_v<decltype(f(int64_t{0}, scalar_t{}))>;
  const auto visit = [&](int64_t j, scalar_t value) {
    if constexpr (kWrites) out[j] = f(j, value);
    else f(j, value);
  };
  const auto misalignment = reinterpret_cast<uintptr_t>(row) % 16;
  if (kWrites && reinterpret_cast<uintptr_t>(out) % 16 != misalignment) {
    for (int64_t j = lane; j < classes; j += step) visit(j, row[j]);
    return;
  }
  int64_t head = misalignment == 0 ? 0 : static_cast<int64_t>((16 - misalignment) / sizeof(scalar_t));
  head = head < classes ? head : classes;
  for (int64_t j = lane; j < head; j += step) visit(j, row[j]);
  const int64_t packs = (classes - head) / kPack;
  const Pack<scalar_t>* packed = reinterpret_cast<const Pack<scalar_t>*>(row + head);
  Pack<scalar_t>* packed_out = kWrites ? reinterpret_cast<Pack<scalar_t>*>(out + head) : nullptr;
  const auto visit_pack = [&](int64_t q, const Pack<scalar_t>& p) {
    const int64_t j = head + q * kPack;
    if constexpr (kWrites) {
      Pack<scalar_t> result;
#pragma unroll
      for (int l = 0; l < kPack; ++l) result.v[l] = f(j + l, p.v[l]);
      packed_out[q] = result;
    } else {
#pragma unroll
      for (int l = 0; l < kPack; ++l) f(j + l, p.v[l]);
    }
  };
  int64_t q = lane;
  for (; q + (kUnroll - 1) * step < packs; q += kUnroll * step) {
    Pack<scalar_t> p[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) p[u] = packed[q + u * step];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) visit_pack(q + u * step, p[u]);
  }
  for (; q < packs; q += step) visit_pack(q, packed[q]);
  for (int64_t j = head + packs * kPack + lane; j < classes; j += step) visit(j, row[j]);
}

/// Running (max, Σ exp(z − max)) of a thread, and with kDot Σ exp(z − max)·z (for the
/// entropy), merged across threads.
template <class T, bool kDot>
struct OnlineSum {
  T max;
  T sum;
  T dot;
  __device__ __forceinline__ void add(T z) {
    if (z > max) {
      const T rescale = DeviceMath<T>::exp(max - z);
      sum = sum * rescale + T(1);
      if constexpr (kDot) dot = dot * rescale + z;
      max = z;
    } else {
      const T e = DeviceMath<T>::exp(z - max);
      sum += e;
      if constexpr (kDot) dot += e * z;
    }
  }
  __device__ __forceinline__ void merge(T other_max, T other_sum, T other_dot) {
    const T top = max > other_max ? max : other_max;
    const T mine = DeviceMath<T>::exp(max - top), theirs = DeviceMath<T>::exp(other_max - top);
    sum = sum * mine + other_sum * theirs;
    if constexpr (kDot) dot = dot * mine + other_dot * theirs;
    max = top;
  }
  __device__ __forceinline__ void merge_lane(int offset) {
    merge(__shfl_xor_sync(0xffffffffu, max, offset), __shfl_xor_sync(0xffffffffu, sum, offset),
          kDot ? __shfl_xor_sync(0xffffffffu, dot, offset) : T(0));
  }
};

template <class T, int kThreadsPerRow, bool kDot>
__device__ __forceinline__ void reduce_row(OnlineSum<T, kDot>& online, T& weighted) {
#pragma unroll
  for (int offset = (kThreadsPerRow < 32 ? kThreadsPerRow : 32) / 2; offset > 0; offset /= 2) {
    online.merge_lane(offset);
    weighted += __shfl_xor_sync(0xffffffffu, weighted, offset);
  }
  if constexpr (kThreadsPerRow > 32) {
    // One row per block: combine the warps through shared memory.
    constexpr int kWarps = kThreadsPerRow / 32;
    __shared__ T maxes[kWarps], sums[kWarps], dots[kWarps], weights[kWarps];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
      maxes[warp] = online.max;
      sums[warp] = online.sum;
      dots[warp] = online.dot;
      weights[warp] = weighted;
    }
    __syncthreads();
    if (warp == 0) {
      online = {lane < kWarps ? maxes[lane] : lowest_finite<T>(), lane < kWarps ? sums[lane] : T(0),
                lane < kWarps ? dots[lane] : T(0)};
      weighted = lane < kWarps ? weights[lane] : T(0);
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) {
        online.merge_lane(offset);
        weighted += __shfl_xor_sync(0xffffffffu, weighted, offset);
      }
    }
  }
}

/// Visits each class j ≡ lane (mod step) of row i with f(j, its cosine in T): the columns
/// themselves through for_each_column, or with sub-centers the max of each class's K.
template <class scalar_t, class T, class F>
__device__ __forceinline__ void for_each_class(const RowData<scalar_t, T>& data, const scalar_t* row, int lane,
                                               int step, F&& f) {
  if (data.sub_centers == 1) {
    for_each_column(row, static_cast<scalar_t*>(nullptr), data.classes, lane, step,
                    [&](int64_t j, scalar_t value) { f(j, static_cast<T>(value)); });
    return;
  }
  for (int64_t j = lane; j < data.classes; j += step) f(j, data.cosine(row, j));
}

template <class Policy, class scalar_t, class T, int kThreadsPerRow>
ANGULAR_KERNEL void __launch_bounds__(kBlockThreads)
    forward_kernel(RowData<scalar_t, T> data, Policy margin, T* lse_out, T* loss_out, T* entropy_out) {
  constexpr int kRowsPerBlock = kBlockThreads / kThreadsPerRow;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kThreadsPerRow;
  const int lane = threadIdx.x % kThreadsPerRow;
  // Every thread of a row group stays to the end: the reductions need them all.
  const bool active = i < data.rows;
  const int64_t y = active ? data.target[i] : data.ignore_index;
  const bool kept = active && y != data.ignore_index;
  // A label out of range (checked later, without waiting for the device: label_checks.hpp)
  // is read nowhere; its row's loss is NaN.
  const bool in_range = y >= 0 && y < data.classes;
  OnlineSum<T, Policy::kScalesRows> online{lowest_finite<T>(), T(0), T(0)};
  T weighted = 0;
  const Policy policy = kept && in_range ? data.policy_of_row(margin, i, y) : margin;
  const scalar_t* row = data.cos + i * data.classes * data.sub_centers;
  if (kept && in_range) {
    const bool smoothed = data.smoothing != T(0);
    for_each_class(data, row, lane, kThreadsPerRow, [&](int64_t j, T c) {
      // z + 0·c: NaN where a cosine is NaN or infinite (which the policies' clamp would make
      // finite), so that the row's lse, loss and gradient are NaN.
      const T z = (j == y ? policy.target_logit(c) : policy.logit(c)) + T(0) * c;
      online.add(z);
      if (smoothed) weighted += (data.class_weight != nullptr ? data.class_weight[j] : T(1)) * z;
    });
  }
  reduce_row<T, kThreadsPerRow>(online, weighted);
  if (!active || lane != 0) return;
  if (!kept || !in_range) {
    const T value = kept ? static_cast<T>(::nan("")) : T(0);
    lse_out[i] = value;
    loss_out[i] = value;
    if (entropy_out != nullptr) entropy_out[i] = value;
    return;
  }
  const T lse = online.max + DeviceMath<T>::log(online.sum);
  const T c_y = data.cosine(row, y);
  const T w_y = data.class_weight != nullptr ? data.class_weight[y] : T(1);
  const T per_class = data.smoothing / static_cast<T>(data.classes);
  lse_out[i] = lse;
  loss_out[i] = (T(1) - data.smoothing) * w_y * (lse - policy.target_logit(c_y)) +
                per_class * (*data.weight_sum * lse - weighted);
  if (entropy_out != nullptr) entropy_out[i] = lse - online.dot / online.sum;
}

template <class Policy, class scalar_t, class T, int kThreadsPerRow>
ANGULAR_KERNEL void __launch_bounds__(kBlockThreads)
    backward_kernel(RowData<scalar_t, T> data, Policy margin, const T* lse, const T* row_grad,
                    scalar_t* grad_cos) {
  constexpr int kRowsPerBlock = kBlockThreads / kThreadsPerRow;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kThreadsPerRow;
  if (i >= data.rows) return;
  const int lane = threadIdx.x % kThreadsPerRow;
  const int64_t y = data.target[i];
  const int64_t width = data.classes * data.sub_centers;
  scalar_t* out = grad_cos + i * width;
  if (y == data.ignore_index || y < 0 || y >= data.classes) {  // ignored: 0; out of range: NaN
    const scalar_t value = static_cast<scalar_t>(y == data.ignore_index ? T(0) : static_cast<T>(::nan("")));
    for (int64_t j = lane; j < width; j += kThreadsPerRow) out[j] = value;
    return;
  }
  const Policy policy = data.policy_of_row(margin, i, y);
  const T g = row_grad[i], row_lse = lse[i];
  const T w_y = data.class_weight != nullptr ? data.class_weight[y] : T(1);
  const T per_class = data.smoothing / static_cast<T>(data.classes);
  const T coef = g * ((T(1) - data.smoothing) * w_y + per_class * *data.weight_sum);
  const T uniform = g * per_class;
  const T one_hot = g * (T(1) - data.smoothing) * w_y;
  const auto gradient = [&](int64_t j, T c) {
    const bool is_target = j == y;
    const T z = is_target ? policy.target_logit(c) : policy.logit(c);
    const T slope = is_target ? policy.target_dlogit(c) : policy.dlogit(c);
    const T w = data.class_weight != nullptr ? data.class_weight[j] : T(1);
    const T p = DeviceMath<T>::exp(z - row_lse);
    return (coef * p - uniform * w - (is_target ? one_hot : T(0))) * slope;
  };
  const scalar_t* row = data.cos + i * width;
  if (data.sub_centers == 1) {
    for_each_column(row, out, data.classes, lane, kThreadsPerRow, [&](int64_t j, scalar_t value) {
      return static_cast<scalar_t>(gradient(j, static_cast<T>(value)));
    });
    return;
  }
  // Each class's gradient on the column of its max, 0 on its other K − 1.
  for (int64_t j = lane; j < data.classes; j += kThreadsPerRow) {
    int64_t which = 0;
    const T value = gradient(j, data.cosine(row, j, &which));
    for (int64_t k = 0; k < data.sub_centers; ++k)
      out[j * data.sub_centers + k] = static_cast<scalar_t>(k == which ? value : T(0));
  }
}

/// On cos's device and current stream, calls launch(policy, data, width, blocks, stream) for
/// the arguments' dtype and margin, with width the threads per row (std::integral_constant):
/// a warp up to 1024 classes, a block beyond.
template <class Launch>
void launch_rows(const RowLossArgs& args, Launch&& launch) {
  const c10::cuda::CUDAGuard guard(args.cos.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, args.cos.scalar_type(), "angular_margin_cross_entropy_cuda", [&] {
        using T = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
        const RowData<scalar_t, T> data{
            args.cos.data_ptr<scalar_t>(),
            args.target.data_ptr<int64_t>(),
            args.class_weight.defined() ? args.class_weight.data_ptr<T>() : nullptr,
            args.weight_sum.data_ptr<T>(),
            args.row_params.defined() ? args.row_params.data_ptr<T>() : nullptr,
            args.cos.size(0),
            args.cos.size(1) / args.params.sub_centers,
            args.params.sub_centers,
            static_cast<T>(args.label_smoothing),
            args.ignore_index};
        with_margin_policy<T, DeviceMath<T>>(args.margin, args.params, [&](auto policy) {
          if (data.classes * data.sub_centers <= 1024) {
            constexpr int kRows = kBlockThreads / 32;
            launch(policy, data, std::integral_constant<int, 32>{}, (data.rows + kRows - 1) / kRows, stream);
          } else {
            launch(policy, data, std::integral_constant<int, kBlockThreads>{}, data.rows, stream);
          }
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
      });
}

inline void forward(const RowLossArgs& args, RowOutputs& out, double) {
  launch_rows(args, [&](auto policy, const auto& data, auto width, int64_t blocks, cudaStream_t stream) {
    using Data = std::decay_t<decltype(data)>;
    using T = typename Data::compute_type;
    forward_kernel<decltype(policy), typename Data::input_type, T, decltype(width)::value>
        <<<blocks, kBlockThreads, 0, stream>>>(data, policy, out.lse.data_ptr<T>(), out.row_loss.data_ptr<T>(),
                                               out.entropy.defined() ? out.entropy.data_ptr<T>() : nullptr);
  });
}

inline void backward(const RowLossArgs& args, const at::Tensor& lse, const at::Tensor& row_grad,
                     at::Tensor& grad_cos) {
  launch_rows(args, [&](auto policy, const auto& data, auto width, int64_t blocks, cudaStream_t stream) {
    using Data = std::decay_t<decltype(data)>;
    using T = typename Data::compute_type;
    backward_kernel<decltype(policy), typename Data::input_type, T, decltype(width)::value>
        <<<blocks, kBlockThreads, 0, stream>>>(data, policy, lse.data_ptr<T>(), row_grad.data_ptr<T>(),
                                               grad_cos.data_ptr<typename Data::input_type>());
  });
}

}  // namespace angular::detail::cuda
