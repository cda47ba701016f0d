#pragma once
// Margin policies: how each loss turns a cosine into a logit, and that logit's derivative to
// the cosine. The fused kernels are written once against this interface:
//   logit(c), dlogit(c)                 every column but the sample's label; templates over
//                                       V, a scalar or a SIMD vector of cosines
//   target_logit(c), target_dlogit(c)   the label's column (one scalar per row)
// `Math` supplies acos, asin, rsqrt, clamp, where_in and broadcast for V (and cos, sin for scalars)
// on the device and precision at hand. Arc and ArcFace follow the composite reference
// (detail/reference.hpp) formula for formula: the clamp to [lo, hi] = [−1 + eps, 1 − eps]
// before arccos, and the gradient passing only on the closed interval, as at::clamp's.

#include <angular/detail/constants.hpp>
#include <angular/detail/macros.hpp>

#include <c10/util/Exception.h>

#include <cmath>

#if defined(__GNUC__)
// The CPU kernel's SIMD vectors pass only between always-inline functions (these policies and
// detail/cpu/math.hpp), so GCC's warning that returning them changes the ABI is moot. GCC
// gives it where it compiles those functions, at the end of the including file, past any push
// / pop around a header: it is therefore off from here to the end of that file, and no flag
// joins the consumer's build. Vectors are taken by const reference, on which GCC has no note.
#pragma GCC diagnostic ignored "-Wpsabi"
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
};

template <class T, class Math>
struct ArcPolicy {
  T k;
  explicit ArcPolicy(MarginParams p) : k(static_cast<T>(p.scale)) {}

  template <class V>
  ANGULAR_HOST_DEVICE V logit(const V& c) const {
    using Clamp = CosineClamp<T>;
    return k * Math::asin(Math::clamp(c, Clamp::lo, Clamp::hi));  // k(π/2 − θ) = k·arcsin c
  }
  /// k / √(1 − c²) inside the clamp, 0 outside.
  template <class V>
  ANGULAR_HOST_DEVICE V dlogit(const V& c) const {
    using Clamp = CosineClamp<T>;
    return Math::where_in(c, Clamp::lo, Clamp::hi, k * Math::rsqrt((T(1) - c) * (T(1) + c)));
  }
  ANGULAR_HOST_DEVICE T target_logit(T c) const { return logit(c); }
  ANGULAR_HOST_DEVICE T target_dlogit(T c) const { return dlogit(c); }
};

template <class T, class Math>
struct ArcFacePolicy {
  T s, m, m_sin_m, cos_m, sin_m;
  explicit ArcFacePolicy(MarginParams p)
      : s(static_cast<T>(p.scale)),
        m(static_cast<T>(p.margin)),
        m_sin_m(static_cast<T>(p.margin * std::sin(p.margin))),
        cos_m(static_cast<T>(std::cos(p.margin))),
        sin_m(static_cast<T>(std::sin(p.margin))) {}

  template <class V>
  ANGULAR_HOST_DEVICE V logit(const V& c) const { return s * c; }
  template <class V>
  ANGULAR_HOST_DEVICE V dlogit(const V&) const { return Math::template broadcast<V>(s); }
  /// s·cos(θ + m) while θ + m ≤ π, then the monotone continuation s·(c − m sin m).
  ANGULAR_HOST_DEVICE T target_logit(T c) const {
    using Clamp = CosineClamp<T>;
    const T theta = Math::acos(Math::clamp(c, Clamp::lo, Clamp::hi));
    if (theta + m <= static_cast<T>(kPi)) return s * Math::cos(theta + m);
    return s * (c - m_sin_m);
  }
  ANGULAR_HOST_DEVICE T target_dlogit(T c) const {
    using Clamp = CosineClamp<T>;
    const T theta = Math::acos(Math::clamp(c, Clamp::lo, Clamp::hi));
    if (theta + m > static_cast<T>(kPi)) return s;
    // d cos(θ + m)/dc = sin(θ + m) / sin θ = cos m + c·sin m / √(1 − c²): no θ, whose
    // rounding near c = −1 (θ ≈ π) would be divided by the small sin θ.
    return Math::where_in(c, Clamp::lo, Clamp::hi,
                          s * (cos_m + c * sin_m * Math::rsqrt((T(1) - c) * (T(1) + c))));
  }
};

template <class T, class Math>
struct CosFacePolicy {
  T s, m;
  explicit CosFacePolicy(MarginParams p)
      : s(static_cast<T>(p.scale)), m(static_cast<T>(p.margin)) {}

  template <class V>
  ANGULAR_HOST_DEVICE V logit(const V& c) const { return s * c; }
  template <class V>
  ANGULAR_HOST_DEVICE V dlogit(const V&) const { return Math::template broadcast<V>(s); }
  ANGULAR_HOST_DEVICE T target_logit(T c) const { return s * (c - m); }
  ANGULAR_HOST_DEVICE T target_dlogit(T) const { return s; }
};

template <class T, class Math>
struct NormFacePolicy {
  T s;
  explicit NormFacePolicy(MarginParams p) : s(static_cast<T>(p.scale)) {}

  template <class V>
  ANGULAR_HOST_DEVICE V logit(const V& c) const { return s * c; }
  template <class V>
  ANGULAR_HOST_DEVICE V dlogit(const V&) const { return Math::template broadcast<V>(s); }
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
    case MarginKind::normface: return f(NormFacePolicy<T, Math>(params));
  }
  TORCH_CHECK(false, "angular: unknown MarginKind ", static_cast<int>(kind));
}

}  // namespace angular::detail

