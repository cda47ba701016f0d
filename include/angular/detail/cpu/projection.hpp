#pragma once
// The projection of a class-vector gradient onto the tangents of the unit class vectors,
//   a_j ← a_j − q_j²·(w_j · a_j)·w_j   (q_j = 1/‖w_j‖, rows whose norm passes only),
// one visit per row in SIMD vectors (the AVX2 + FMA copy where the processor has it): ATen's
// ops take three sweeps and a temporary, and plain loops stay scalar (a dot is a reduction
// the compiler may not reorder).

#include <angular/detail/cpu/fpu.hpp>
#include <angular/detail/cpu/margin_cross_entropy.hpp>
#include <angular/detail/cpu/math.hpp>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <type_traits>

namespace angular::detail::cpu {

template <class T>
struct ProjectedRows {
  T* gradient;
  const T* vectors;
  int64_t gradient_stride, vectors_stride, dim;
  const T* inverse_norms;
  const bool* passes;
};

template <class T>
ANGULAR_ALWAYS_INLINE void project_rows(const ProjectedRows<T>& p, int64_t begin, int64_t end) {
  using V = std::conditional_t<std::is_same_v<T, float>, FloatVec, T>;
  constexpr int64_t kWidth = sizeof(V) / sizeof(T);
  const int64_t vector_end = p.dim - p.dim % (2 * kWidth);
  for (int64_t j = begin; j < end; ++j) {
    if (!p.passes[j]) continue;
    const T* w = p.vectors + j * p.vectors_stride;
    T* a = p.gradient + j * p.gradient_stride;
    V first{}, second{};  // two chains of adds in flight
    for (int64_t d = 0; d < vector_end; d += 2 * kWidth) {
      first += load<V>(w + d) * load<V>(a + d);
      second += load<V>(w + d + kWidth) * load<V>(a + d + kWidth);
    }
    T dot = lane_sum<V, T>(first + second);
    for (int64_t d = vector_end; d < p.dim; ++d) dot += w[d] * a[d];
    const T along = dot * p.inverse_norms[j] * p.inverse_norms[j];
    const V along_v = V{} + along;
    for (int64_t d = 0; d < vector_end; d += kWidth) store(a + d, load<V>(a + d) - along_v * load<V>(w + d));
    for (int64_t d = vector_end; d < p.dim; ++d) a[d] -= along * w[d];
  }
}

template <class T>
void project_rows_default(const ProjectedRows<T>& p, int64_t begin, int64_t end) {
  project_rows(p, begin, end);
}

#if ANGULAR_CPU_AVX2
template <class T>
ANGULAR_TARGET_AVX2 void project_rows_avx2(const ProjectedRows<T>& p, int64_t begin, int64_t end) {
  project_rows(p, begin, end);
}
#endif

/// gradient [n, D] and vectors [n, D] of one dtype (float or double), rows contiguous;
/// inverse_norms [n] of that dtype and passes [n] bool.
inline void project_onto_tangents(at::Tensor& gradient, const at::Tensor& vectors, const at::Tensor& inverse_norms,
                                  const at::Tensor& passes) {
  const at::Tensor q = inverse_norms.contiguous(), pass = passes.contiguous();
  AT_DISPATCH_FLOATING_TYPES(gradient.scalar_type(), "project_onto_tangents", [&] {
    const ProjectedRows<scalar_t> p{gradient.mutable_data_ptr<scalar_t>(),
                                    vectors.const_data_ptr<scalar_t>(),
                                    gradient.stride(0),
                                    vectors.stride(0),
                                    gradient.size(1),
                                    q.const_data_ptr<scalar_t>(),
                                    pass.const_data_ptr<bool>()};
    at::parallel_for(0, gradient.size(0), 64, [&](int64_t begin, int64_t end) {
      const FlushDenormals flush_denormals;  // ArcFace's gradients are mostly denormal floats
#if ANGULAR_CPU_AVX2
      if (has_avx2()) return project_rows_avx2(p, begin, end);
#endif
      project_rows_default(p, begin, end);
    });
  });
}

}  // namespace angular::detail::cpu
