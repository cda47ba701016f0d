#pragma once
// Math for the CPU kernels over V, a float or an 8-float SIMD vector (GCC/Clang vector
// extensions, lowered to AVX2 inside functions compiled for it and to SSE elsewhere). The
// float functions are arithmetic, selects and a few one-instruction primitives (`Ops`) only
// (Cephes' exp, Abramowitz & Stegun's arccos, a few ulps; tested in kernels_test.cpp): a libm
// call would keep a loop scalar. Double precision is scalar and uses libm.

#include <angular/detail/constants.hpp>
#include <angular/detail/margin_policy.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace angular::detail::cpu {

// The bits of floats as unsigned integers: a shift of any float's bits (a NaN's included, which
// exp's exponent arithmetic meets) is then defined.
template <class V>
struct Lanes {  // scalar
  using Int = uint32_t;
};

#if defined(__GNUC__)
/// 8 floats (one AVX2 register, two SSE ones) and their uint32 twin.
using FloatVec = float __attribute__((vector_size(32)));
using IntVec = uint32_t __attribute__((vector_size(32)));
template <>
struct Lanes<FloatVec> {
  using Int = IntVec;
};
#else
using FloatVec = float;
#endif

template <class V>
using IntFor = typename Lanes<V>::Int;

template <class V>
ANGULAR_ALWAYS_INLINE V broadcast(float x) {
  if constexpr (std::is_same_v<V, float>) {
    return x;
  } else {
    return V{} + x;
  }
}

/// Unaligned loads and stores of a V at p.
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

/// a where mask, else b: lane by lane for vectors (mask from a vector comparison).
template <class M, class V>
ANGULAR_ALWAYS_INLINE V select(const M& mask, const V& a, const V& b) { return mask ? a : b; }

template <class V, class I>
ANGULAR_ALWAYS_INLINE V bit_cast_float(const I& bits) {
  static_assert(sizeof(V) == sizeof(I));
  V out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

/// 1/√x for x > 0 to < 6.6e-4 relative: a bit-level guess, then one step with Kadlec's
/// tuned constants.
template <class V>
ANGULAR_ALWAYS_INLINE V rsqrt_estimate(const V& x) {
  const auto bits = IntFor<V>{} + 0x5F1FFFF9 - (bit_cast_float<IntFor<V>>(x) >> 1);
  const V y = bit_cast_float<V>(bits);
  return y * (0.703952253f * (2.38924456f - x * y * y));
}

/// One Newton step from y ≈ 1/√x: a relative error e becomes about 1.5·e².
template <class V>
ANGULAR_ALWAYS_INLINE V rsqrt_step(const V& x, const V& y) { return y * (1.5f - (0.5f * x) * y * y); }

/// The primitives that an instruction set may do in one instruction; the float math below is
/// written once on top of them. Portable: selects and the bit-level 1/√x estimate.
struct PortableOps {
  template <class V>
  ANGULAR_ALWAYS_INLINE static V rsqrt_estimate(const V& x) { return cpu::rsqrt_estimate(x); }
  /// The larger of x and lo; a NaN x stays NaN.
  template <class V>
  ANGULAR_ALWAYS_INLINE static V max(const V& x, float lo) { return select(x < lo, broadcast<V>(lo), x); }
  /// The smaller of x and hi; a NaN x stays NaN.
  template <class V>
  ANGULAR_ALWAYS_INLINE static V min(const V& x, float hi) { return select(x > hi, broadcast<V>(hi), x); }
};

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ANGULAR_CPU_AVX2_OPS 1
/// In the loops compiled for AVX2: vrsqrtps (relative error < 1.5·2⁻¹²), vmaxps and vminps,
/// one instruction each where GCC would emit a compare and a blend. Inline assembly rather
/// than intrinsics: GCC admits an intrinsic only into functions compiled for AVX, and these
/// always-inline helpers are shared with the portable copy of the loops. Only ever inlined
/// into rows_avx2 (and the tests' AVX2 functions).
struct Avx2Ops : PortableOps {
  using PortableOps::max, PortableOps::min, PortableOps::rsqrt_estimate;  // on scalars

  ANGULAR_ALWAYS_INLINE static FloatVec rsqrt_estimate(const FloatVec& x) {
    FloatVec y;
    asm("vrsqrtps %1, %0" : "=x"(y) : "x"(x));
    return y;
  }
  // vmaxps / vminps return their last (AT&T: first) operand where either is NaN: x.
  ANGULAR_ALWAYS_INLINE static FloatVec max(const FloatVec& x, float lo) {
    FloatVec y;
    asm("vmaxps %1, %2, %0" : "=x"(y) : "x"(x), "x"(broadcast<FloatVec>(lo)));
    return y;
  }
  ANGULAR_ALWAYS_INLINE static FloatVec min(const FloatVec& x, float hi) {
    FloatVec y;
    asm("vminps %1, %2, %0" : "=x"(y) : "x"(x), "x"(broadcast<FloatVec>(hi)));
    return y;
  }
};
#else
#define ANGULAR_CPU_AVX2_OPS 0
#endif

/// x clamped to [lo, hi]; a NaN x stays NaN.
template <class Ops = PortableOps, class V>
ANGULAR_ALWAYS_INLINE V clamp(const V& x, float lo, float hi) { return Ops::min(Ops::max(x, lo), hi); }

/// 1/√x for x > 0: the estimate and one Newton step (< 8e-7 relative).
template <class Ops = PortableOps, class V>
ANGULAR_ALWAYS_INLINE V fast_rsqrt(const V& x) { return rsqrt_step(x, Ops::rsqrt_estimate(x)); }

/// √x for x ≥ 0: x·(1/√x), then one Newton step of √ itself (< 2e-7 relative).
template <class Ops = PortableOps, class V>
ANGULAR_ALWAYS_INLINE V fast_sqrt(const V& x) {
  const V y = fast_rsqrt<Ops>(Ops::max(x, 1e-30f));
  const V root = x * y;  // 0 at x = 0
  return root + 0.5f * y * (x - root * root);
}

constexpr float kExpUnderflow = -87.33654f, kExpOverflow = 88.72283f;

/// e^x for x already in [kExpUnderflow, kExpOverflow].
template <class V>
ANGULAR_ALWAYS_INLINE V exp_in_range(const V& x) {
  constexpr float log2e = 1.44269504088896341f;
  // x = n ln2 + r with n = round(x log2e): adding 1.5·2²³ rounds to an integer kept in the
  // low mantissa bits, where 2^n's exponent is read from below.
  constexpr float shifter = 12582912.0f;  // 1.5·2²³, bits 0x4B400000
  const V shifted = x * log2e + shifter;
  const V n = shifted - shifter;
  const V r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  V p = broadcast<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V scale = bit_cast_float<V>((bit_cast_float<IntFor<V>>(shifted) - (0x4B400000 - 127)) << 23);
  return (p * r * r + r + 1.0f) * scale;
}

/// e^x; 0 below −87.3 (where float underflows anyway), finite up to 88.7.
template <class V>
ANGULAR_ALWAYS_INLINE V fast_exp(const V& x) {
  return select(x < kExpUnderflow, broadcast<V>(0.0f), exp_in_range(clamp(x, kExpUnderflow, kExpOverflow)));
}

/// e^x for x ≤ 0, as a softmax's terms e^(z − max) are: 2^−126 rather than 0 below −87.3,
/// nothing next to the e^0 = 1 that every row's sum holds.
template <class Ops = PortableOps, class V>
ANGULAR_ALWAYS_INLINE V fast_exp_nonpositive(const V& x) {
  return exp_in_range(Ops::max(x, kExpUnderflow));
}

/// arccos a for a ∈ [0, 1] as √(1 − a)·P(a), Abramowitz & Stegun's degree-7 polynomial
/// (4.4.46, error ≤ 2e-8 before rounding).
template <class Ops = PortableOps, class V>
ANGULAR_ALWAYS_INLINE V acos_of_magnitude(const V& a) {
  V p = broadcast<V>(-0.0012624911f);
  p = p * a + 0.0066700901f;
  p = p * a - 0.0170881256f;
  p = p * a + 0.0308918810f;
  p = p * a - 0.0501743046f;
  p = p * a + 0.0889789874f;
  p = p * a - 0.2145988016f;
  p = p * a + 1.5707963050f;
  return fast_sqrt<Ops>(1.0f - a) * p;
}

template <class V>
ANGULAR_ALWAYS_INLINE V magnitude(const V& x) {
  return bit_cast_float<V>(bit_cast_float<IntFor<V>>(x) & 0x7fffffff);
}

/// arccos x for x ∈ [−1, 1]; arccos(−a) = π − arccos a.
template <class Ops = PortableOps, class V>
ANGULAR_ALWAYS_INLINE V fast_acos(const V& x) {
  const V r = acos_of_magnitude<Ops>(magnitude(x));
  return select(x < 0.0f, static_cast<float>(kPi) - r, r);
}

/// arcsin x = π/2 − arccos x for x ∈ [−1, 1], odd: the sign of x on π/2 − arccos|x| ≥ 0.
template <class Ops = PortableOps, class V>
ANGULAR_ALWAYS_INLINE V fast_asin(const V& x) {
  const V positive = static_cast<float>(kPi / 2) - acos_of_magnitude<Ops>(magnitude(x));
  const auto sign = bit_cast_float<IntFor<V>>(x) & 0x80000000u;
  return bit_cast_float<V>(bit_cast_float<IntFor<V>>(positive) ^ sign);
}

template <class T>
struct Math;

/// float32: V is float or FloatVec, on the primitives of `Ops`.
template <class Ops>
struct FloatMath {
  using Vec = FloatVec;
  template <class V>
  ANGULAR_ALWAYS_INLINE static V broadcast(float x) { return cpu::broadcast<V>(x); }
  template <class V>
  ANGULAR_ALWAYS_INLINE static V clamp(const V& x, float lo, float hi) { return cpu::clamp<Ops>(x, lo, hi); }
  /// value where lo < x < hi, else 0.
  template <class V>
  ANGULAR_ALWAYS_INLINE static V where_inside(const V& x, float lo, float hi, const V& value) {
    return select(x <= lo, broadcast<V>(0.0f), select(x >= hi, broadcast<V>(0.0f), value));
  }
  /// a where x > threshold, else b.
  template <class V>
  ANGULAR_ALWAYS_INLINE static V where_greater(const V& x, float threshold, const V& a, const V& b) {
    return select(x > broadcast<V>(threshold), a, b);
  }
  template <class V>
  ANGULAR_ALWAYS_INLINE static V acos(const V& x) { return fast_acos<Ops>(x); }
  template <class V>
  ANGULAR_ALWAYS_INLINE static V asin(const V& x) { return fast_asin<Ops>(x); }
  /// Only gradient slopes take it (Arc's k/√(1 − c²), ArcFace's label column): 8e-7 is ample.
  template <class V>
  ANGULAR_ALWAYS_INLINE static V rsqrt(const V& x) { return fast_rsqrt<Ops>(x); }
  template <class V>
  ANGULAR_ALWAYS_INLINE static V exp(const V& x) { return fast_exp(x); }
  template <class V>
  ANGULAR_ALWAYS_INLINE static V exp_nonpositive(const V& x) { return fast_exp_nonpositive<Ops>(x); }
  static float log(float x) { return std::log(x); }
  static float cos(float x) { return std::cos(x); }
  static float sin(float x) { return std::sin(x); }
  /// The next float below x.
  static float next_below(float x) { return std::nextafter(x, -INFINITY); }
};

template <>
struct Math<float> : FloatMath<PortableOps> {};

#if ANGULAR_CPU_AVX2_OPS
/// The float math of the loops compiled for AVX2.
using Avx2Math = FloatMath<Avx2Ops>;
#endif

/// float64: scalar, libm.
template <>
struct Math<double> {
  using Vec = double;
  template <class V>
  static V broadcast(double x) { return x; }
  static double clamp(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }
  static double where_inside(double x, double lo, double hi, double value) {
    return x > lo && x < hi ? value : 0.0;
  }
  static double where_greater(double x, double threshold, double a, double b) { return x > threshold ? a : b; }
  static double acos(double x) { return std::acos(x); }
  static double asin(double x) { return std::asin(x); }
  static double rsqrt(double x) { return 1.0 / std::sqrt(x); }
  static double exp(double x) { return std::exp(x); }
  static double exp_nonpositive(double x) { return std::exp(x); }
  static double log(double x) { return std::log(x); }
  static double cos(double x) { return std::cos(x); }
  static double sin(double x) { return std::sin(x); }
  static double next_below(double x) { return std::nextafter(x, -INFINITY); }
};

}  // namespace angular::detail::cpu

