#pragma once
// float32 math for the CPU kernels written with arithmetic and selects only, no libm calls,
// so that loops over it vectorise at any optimisation level and instruction set (a call to
// expf or acosf keeps a loop scalar). Each is accurate to a few float ulps (Cephes' methods);
// double precision uses libm.

#include <angular/detail/constants.hpp>
#include <angular/detail/margin_policy.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace angular::detail::cpu {

/// 1/√x for x > 0: bit-level estimate and three Newton steps (relative error < 1e-7).
ANGULAR_HOST_DEVICE float fast_rsqrt(float x) {
  int32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits = 0x5f375a86 - (bits >> 1);
  float y;
  std::memcpy(&y, &bits, sizeof y);
  const float half = 0.5f * x;
  y = y * (1.5f - half * y * y);
  y = y * (1.5f - half * y * y);
  y = y * (1.5f - half * y * y);
  return y;
}

/// e^x; 0 below −87.3 (where float underflows anyway), finite up to 88.7.
ANGULAR_HOST_DEVICE float fast_exp(float x) {
  const float underflow = -87.33654f;
  const float xc = x > 88.72283f ? 88.72283f : (x < underflow ? underflow : x);
  // x = n ln2 + r, |r| ≤ ln2/2; e^x = 2^n e^r.
  float n = static_cast<float>(static_cast<int32_t>(xc * 1.44269504088896341f + 0.5f));
  n = n > xc * 1.44269504088896341f + 0.5f ? n - 1.0f : n;  // floor for negative arguments
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < underflow ? 0.0f : er * scale;
}

/// arccos x for x ∈ [−1, 1], through Cephes' asin polynomial on [0, 0.5].
ANGULAR_HOST_DEVICE float fast_acos(float x) {
  const float a = x < 0 ? -x : x;
  const bool big = a > 0.5f;
  const float z = big ? 0.5f * (1.0f - a) : a * a;
  const float s = big ? z * fast_rsqrt(z > 1e-30f ? z : 1e-30f) : a;  // √z, 0 at z = 0
  float p = 4.2163199048e-2f;
  p = p * z + 2.4181311049e-2f;
  p = p * z + 4.5470025998e-2f;
  p = p * z + 7.4953002686e-2f;
  p = p * z + 1.6666752422e-1f;
  const float asin_s = p * z * s + s;  // asin(s), s ≤ 0.5
  const float pi = static_cast<float>(kPi), half_pi = static_cast<float>(kPi / 2);
  // |x| > 0.5: acos(a) = 2·asin(√((1 − a)/2)); otherwise acos(x) = π/2 − asin(x).
  const float big_value = x < 0 ? pi - 2.0f * asin_s : 2.0f * asin_s;
  const float small_value = half_pi - (x < 0 ? -asin_s : asin_s);
  return big ? big_value : small_value;
}

template <class T>
struct Math;

template <>
struct Math<float> {
  ANGULAR_HOST_DEVICE static float acos(float x) { return fast_acos(x); }
  ANGULAR_HOST_DEVICE static float rsqrt(float x) { return fast_rsqrt(x); }
  ANGULAR_HOST_DEVICE static float exp(float x) { return fast_exp(x); }
  static float log(float x) { return std::log(x); }
  static float cos(float x) { return std::cos(x); }
  static float sin(float x) { return std::sin(x); }
};

template <>
struct Math<double> {
  static double acos(double x) { return std::acos(x); }
  static double rsqrt(double x) { return 1.0 / std::sqrt(x); }
  static double exp(double x) { return std::exp(x); }
  static double log(double x) { return std::log(x); }
  static double cos(double x) { return std::cos(x); }
  static double sin(double x) { return std::sin(x); }
};

}  // namespace angular::detail::cpu
