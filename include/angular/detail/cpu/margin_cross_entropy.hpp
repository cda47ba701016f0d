#pragma once
// The fused CPU kernel of the margin cross-entropy (detail/row_loss.hpp's contract): the
// dtype × margin dispatch onto RowKernel (detail/cpu/row_kernel.hpp), the rows spread over
// threads, and the copy of the loops for the processor: on x86-64 the one compiled for AVX2 +
// FMA, with a few one-instruction primitives in its math, when the processor has it, whatever
// flags the consumer builds with. (No AVX-512 copy: it measured slower, bench/RESULTS.md.)
// The backward only scales the gradient that the forward wrote.

#include <angular/detail/cpu/fpu.hpp>
#include <angular/detail/cpu/memory.hpp>
#include <angular/detail/cpu/parallel.hpp>
#include <angular/detail/cpu/row_kernel.hpp>
#include <angular/detail/row_loss.hpp>

#include <ATen/Dispatch.h>

#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

namespace angular::detail::cpu {

#if ANGULAR_CPU_AVX2
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

/// A row loop's per-thread scratch for K > 1 sub-centers: a row's class cosines and which
/// column each is (RowKernel::row's class_cos and class_which); null pointers where K = 1.
template <class T>
struct SubCenterScratch {
  SubCenterScratch(int64_t classes, int64_t sub_centers)
      : cos_(sub_centers > 1 ? static_cast<size_t>(classes) : 0), which_(cos_.size()) {}
  T* cos() { return cos_.empty() ? nullptr : cos_.data(); }
  int32_t* which() { return which_.empty() ? nullptr : which_.data(); }

 private:
  std::vector<T> cos_;
  std::vector<int32_t> which_;
};

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
      SubCenterScratch<T> sub_centers(kernel.classes, kernel.sub_centers);
      T* cos_scratch = sub_centers.cos();
      int32_t* which_scratch = sub_centers.which();
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
