#pragma once
// Math for the CPU kernels over V, a float or an 8-float SIMD vector (GCC/Clang vector
// extensions, lowered to AVX2 inside functions compiled for it and to SSE elsewhere). The
// float functions are arithmetic and selects only (Cephes' methods, a few ulps): a libm call
// would keep a loop scalar. Double precision is scalar and uses libm.

#include <angular/detail/constants.hpp>
#include <angular/detail/margin_policy.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__GNUC__)
// SIMD vectors only pass between always-inline functions: GCC's note on their ABI is moot.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace angular::detail::cpu {

template <class V>
struct Lanes {  // scalar
  using Int = int32_t;
};
template <class I>
struct FloatLanes {
  using Float = float;
};

#if defined(__GNUC__)
#define ANGULAR_CPU_SIMD 1
/// 8 floats (one AVX2 register, two SSE ones) and their int32 twin.
using FloatVec = float __attribute__((vector_size(32)));
using IntVec = int32_t __attribute__((vector_size(32)));
template <>
struct Lanes<FloatVec> {
  using Int = IntVec;
};
template <>
struct FloatLanes<IntVec> {
  using Float = FloatVec;
};
#else
#define ANGULAR_CPU_SIMD 0
using FloatVec = float;
#endif

template <class V>
using IntFor = typename Lanes<V>::Int;
template <class I>
using FloatFor = typename FloatLanes<I>::Float;

template <class V>
ANGULAR_HOST_DEVICE V broadcast(float x) {
  if constexpr (std::is_same_v<V, float>) {
    return x;
  } else {
    return V{} + x;
  }
}

/// a where mask, else b: lane by lane for vectors (mask from a vector comparison).
template <class M, class V>
ANGULAR_HOST_DEVICE V select(M mask, V a, V b) { return mask ? a : b; }

template <class V>
ANGULAR_HOST_DEVICE IntFor<V> truncate_to_int(V x) {
  if constexpr (std::is_same_v<V, float>) {
    return static_cast<int32_t>(x);
  } else {
    return __builtin_convertvector(x, IntFor<V>);
  }
}

template <class I>
ANGULAR_HOST_DEVICE auto to_float(I x) {
  if constexpr (std::is_same_v<I, int32_t>) {
    return static_cast<float>(x);
  } else {
    return __builtin_convertvector(x, FloatFor<I>);
  }
}

template <class V, class I>
ANGULAR_HOST_DEVICE V bit_cast_float(I bits) {
  static_assert(sizeof(V) == sizeof(I));
  V out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

template <class V>
ANGULAR_HOST_DEVICE V clamp(V x, float lo, float hi) {
  return select(x < lo, broadcast<V>(lo), select(x > hi, broadcast<V>(hi), x));
}

/// 1/√x for x > 0: bit-level estimate and three Newton steps (relative error < 2e-7).
template <class V>
ANGULAR_HOST_DEVICE V fast_rsqrt(V x) {
  const auto bits = IntFor<V>{} + 0x5f375a86 - (bit_cast_float<IntFor<V>>(x) >> 1);
  V y = bit_cast_float<V>(bits);
  const V half = 0.5f * x;
  y = y * (1.5f - half * y * y);
  y = y * (1.5f - half * y * y);
  y = y * (1.5f - half * y * y);
  return y;
}

/// e^x; 0 below −87.3 (where float underflows anyway), finite up to 88.7.
template <class V>
ANGULAR_HOST_DEVICE V fast_exp(V x) {
  constexpr float underflow = -87.33654f, overflow = 88.72283f, log2e = 1.44269504088896341f;
  const V xc = clamp(x, underflow, overflow);
  // x = n ln2 + r with n = round(x log2e); e^x = 2^n e^r.
  const V t = xc * log2e + 0.5f;
  V n = to_float(truncate_to_int(t));
  n = select(n > t, n - 1.0f, n);  // truncation rounds negative values up
  const V r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  V p = broadcast<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V scale = bit_cast_float<V>((truncate_to_int(n) + 127) << 23);
  return select(x < underflow, broadcast<V>(0.0f), (p * r * r + r + 1.0f) * scale);
}

/// arccos x for x ∈ [−1, 1], through Cephes' asin polynomial on [0, 0.5].
template <class V>
ANGULAR_HOST_DEVICE V fast_acos(V x) {
  const V a = select(x < 0.0f, -x, x);
  const auto big = a > 0.5f;
  const V z = select(big, 0.5f * (1.0f - a), a * a);
  const V s = select(big, z * fast_rsqrt(select(z > 1e-30f, z, broadcast<V>(1e-30f))), a);  // √z
  V p = broadcast<V>(4.2163199048e-2f);
  p = p * z + 2.4181311049e-2f;
  p = p * z + 4.5470025998e-2f;
  p = p * z + 7.4953002686e-2f;
  p = p * z + 1.6666752422e-1f;
  const V asin_s = p * z * s + s;  // asin(s), s ≤ 0.5
  constexpr float pi = static_cast<float>(kPi), half_pi = static_cast<float>(kPi / 2);
  // |x| > 0.5: acos(|x|) = 2·asin(√((1 − |x|)/2)); otherwise acos(x) = π/2 − asin(x).
  const V big_value = select(x < 0.0f, pi - 2.0f * asin_s, 2.0f * asin_s);
  const V small_value = half_pi - select(x < 0.0f, -asin_s, asin_s);
  return select(big, big_value, small_value);
}

template <class T>
struct Math;

/// float32: V is float or FloatVec.
template <>
struct Math<float> {
  using Vec = FloatVec;
  template <class V>
  ANGULAR_HOST_DEVICE static V broadcast(float x) { return cpu::broadcast<V>(x); }
  template <class V>
  ANGULAR_HOST_DEVICE static V clamp(V x, float lo, float hi) { return cpu::clamp(x, lo, hi); }
  /// value where lo ≤ x ≤ hi, else 0.
  template <class V>
  ANGULAR_HOST_DEVICE static V where_in(V x, float lo, float hi, V value) {
    return select(x < lo, broadcast<V>(0.0f), select(x > hi, broadcast<V>(0.0f), value));
  }
  template <class V>
  ANGULAR_HOST_DEVICE static V acos(V x) { return fast_acos(x); }
  template <class V>
  ANGULAR_HOST_DEVICE static V rsqrt(V x) { return fast_rsqrt(x); }
  template <class V>
  ANGULAR_HOST_DEVICE static V exp(V x) { return fast_exp(x); }
  static float log(float x) { return std::log(x); }
  static float cos(float x) { return std::cos(x); }
  static float sin(float x) { return std::sin(x); }
};

/// float64: scalar, libm.
template <>
struct Math<double> {
  using Vec = double;
  template <class V>
  static V broadcast(double x) { return x; }
  static double clamp(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }
  static double where_in(double x, double lo, double hi, double value) {
    return x >= lo && x <= hi ? value : 0.0;
  }
  static double acos(double x) { return std::acos(x); }
  static double rsqrt(double x) { return 1.0 / std::sqrt(x); }
  static double exp(double x) { return std::exp(x); }
  static double log(double x) { return std::log(x); }
  static double cos(double x) { return std::cos(x); }
  static double sin(double x) { return std::sin(x); }
};

}  // namespace angular::detail::cpu

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
