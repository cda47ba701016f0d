#pragma once
// Margin policies: how each loss turns a cosine into a logit, and that logit's derivative to
// the cosine. The fused kernels are written once against this interface:
//   logit(c), dlogit(c)                 every column that is not the sample's label
//   target_logit(c), target_dlogit(c)   the label's column
// `Math` supplies acos, cos, sin and rsqrt for the device and precision at hand. Arc and
// ArcFace follow the composite reference (detail/reference.hpp) formula for formula: the
// clamp to [−1 + eps, 1 − eps] before arccos, and its gradient mask c ∈ [lo, hi] (the
// closed interval, as at::clamp's backward).

#include <angular/detail/constants.hpp>

#include <cmath>

#if defined(__CUDACC__)
#define ANGULAR_HOST_DEVICE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define ANGULAR_HOST_DEVICE inline __attribute__((always_inline))
#else
#define ANGULAR_HOST_DEVICE inline
#endif

namespace angular::detail {

/// Which margin a fused kernel applies. Arc: k(π/2 − θ). ArcFace: s·cos(θ + m) on the
/// label. CosFace: s·(c − m) on the label. NormFace: s·c.
enum class MarginKind { arc, arcface, cosface, normface };

/// The numbers of a margin: Arc uses `scale` as k; ArcFace and CosFace use both.
struct MarginParams {
  double scale = 1.0;
  double margin = 0.0;
};

template <class T>
struct CosineClamp {
  static constexpr T lo = static_cast<T>(-1 + kAcosEps);
  static constexpr T hi = static_cast<T>(1 - kAcosEps);
  ANGULAR_HOST_DEVICE static T clamp(T c) { return c < lo ? lo : (c > hi ? hi : c); }
  /// at::clamp's backward lets the gradient through on the closed interval.
  ANGULAR_HOST_DEVICE static bool passes_gradient(T c) { return c >= lo && c <= hi; }
  /// d arccos(c)/dc = −1/√(1 − c²); (1 − c)(1 + c) keeps precision near ±1.
  template <class Math>
  ANGULAR_HOST_DEVICE static T acos_slope(T c) {
    return passes_gradient(c) ? -Math::rsqrt((T(1) - c) * (T(1) + c)) : T(0);
  }
};

template <class T, class Math>
struct ArcPolicy {
  T k;
  explicit ArcPolicy(MarginParams p) : k(static_cast<T>(p.scale)) {}

  ANGULAR_HOST_DEVICE T logit(T c) const {
    return k * (static_cast<T>(kPi / 2) - Math::acos(CosineClamp<T>::clamp(c)));
  }
  ANGULAR_HOST_DEVICE T dlogit(T c) const {
    return -k * CosineClamp<T>::template acos_slope<Math>(c);
  }
  ANGULAR_HOST_DEVICE T target_logit(T c) const { return logit(c); }
  ANGULAR_HOST_DEVICE T target_dlogit(T c) const { return dlogit(c); }
};

template <class T, class Math>
struct ArcFacePolicy {
  T s, m, m_sin_m;
  explicit ArcFacePolicy(MarginParams p)
      : s(static_cast<T>(p.scale)),
        m(static_cast<T>(p.margin)),
        m_sin_m(static_cast<T>(p.margin * std::sin(p.margin))) {}

  ANGULAR_HOST_DEVICE T logit(T c) const { return s * c; }
  ANGULAR_HOST_DEVICE T dlogit(T) const { return s; }
  /// s·cos(θ + m) while θ + m ≤ π, then the monotone continuation s·(c − m sin m).
  ANGULAR_HOST_DEVICE T target_logit(T c) const {
    const T theta = Math::acos(CosineClamp<T>::clamp(c));
    if (theta + m <= static_cast<T>(kPi)) return s * Math::cos(theta + m);
    return s * (c - m_sin_m);
  }
  ANGULAR_HOST_DEVICE T target_dlogit(T c) const {
    const T theta = Math::acos(CosineClamp<T>::clamp(c));
    if (theta + m <= static_cast<T>(kPi)) {
      // d cos(θ + m)/dc = −sin(θ + m)·dθ/dc
      return -s * Math::sin(theta + m) * CosineClamp<T>::template acos_slope<Math>(c);
    }
    return s;
  }
};

template <class T, class Math>
struct CosFacePolicy {
  T s, m;
  explicit CosFacePolicy(MarginParams p)
      : s(static_cast<T>(p.scale)), m(static_cast<T>(p.margin)) {}

  ANGULAR_HOST_DEVICE T logit(T c) const { return s * c; }
  ANGULAR_HOST_DEVICE T dlogit(T) const { return s; }
  ANGULAR_HOST_DEVICE T target_logit(T c) const { return s * (c - m); }
  ANGULAR_HOST_DEVICE T target_dlogit(T) const { return s; }
};

template <class T, class Math>
struct NormFacePolicy {
  T s;
  explicit NormFacePolicy(MarginParams p) : s(static_cast<T>(p.scale)) {}

  ANGULAR_HOST_DEVICE T logit(T c) const { return s * c; }
  ANGULAR_HOST_DEVICE T dlogit(T) const { return s; }
  ANGULAR_HOST_DEVICE T target_logit(T c) const { return s * c; }
  ANGULAR_HOST_DEVICE T target_dlogit(T) const { return s; }
};

/// Calls f(Policy<T, Math>{params}) for the runtime `kind`.
template <class T, class Math, class F>
decltype(auto) with_margin_policy(MarginKind kind, MarginParams params, F&& f) {
  switch (kind) {
    case MarginKind::arc: return f(ArcPolicy<T, Math>(params));
    case MarginKind::arcface: return f(ArcFacePolicy<T, Math>(params));
    case MarginKind::cosface: return f(CosFacePolicy<T, Math>(params));
    default: return f(NormFacePolicy<T, Math>(params));
  }
}

}  // namespace angular::detail
