#pragma once
// Margin policies: how each loss turns a cosine into a logit, and that logit's derivative to
// the cosine. The fused kernels are written once against this interface:
//   at_row(params, c_y)                 the policy of one row, given the row's kRowParams
//                                       per-row numbers (feature norm, adaptive margins,
//                                       curriculum weight) and its label's cosine
//   logit(c), dlogit(c)                 every column but the sample's label; templates over
//                                       V, a scalar or a SIMD vector of cosines
//   target_logit(c), target_dlogit(c)   the label's column (one scalar per row)
//   kScalesRows                         logits are proportional to the row's first parameter
//                                       (SphereFace's ‖x‖): the kernels then report each
//                                       row's softmax entropy, from which that parameter's
//                                       gradient follows (detail/row_parameters.hpp)
// `Math` supplies acos, asin, rsqrt, clamp, where_inside, where_greater and broadcast for V (and
// cos, sin, next_below for scalars) on the device and precision at hand. Every policy follows the
// composite reference (detail/reference.hpp) formula for formula: the clamp to [lo, hi] =
// [−1 + eps, 1 − eps] before arccos, and the gradient passing only strictly inside (the
// reference's clamp_passing_inside).

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

/// Which margin a fused kernel applies (the README's loss table has the formulas).
enum class MarginKind { arc, arcface, cosface, normface, combined, sphereface, adaface, curricularface };

/// The numbers of a margin, each field in one role.
struct MarginParams {
  double scale = 1.0;          // s, the scale of the scaled-cosine logits
  double k = 1.0;              // Arc's k
  double margin = 0.0;         // the additive angular margin: ArcFace's, CurricularFace's and
                               // AdaFace's m, the combined margin's m2
  double angle_factor = 1.0;   // the multiplicative angular margin: the combined margin's m1,
                               // SphereFace's integer m
  double cosine_margin = 0.0;  // the additive cosine margin: CosFace's m, the combined margin's m3
  double lambda = 0.0;         // SphereFace's annealing λ
  bool exact_gradient = true;  // ArcFace: false takes the margin's slope as 1 (straight through)
  bool continuation = true;    // ArcFace: false keeps cos(θ + m) past θ + m > π
  int64_t sub_centers = 1;     // K cosine columns per class, of which the kernels take the max
};

/// Calls f(name, field) for each field of `params` (a MarginParams, const or not), in order.
template <class Params, class F>
void for_each_param(Params& params, F&& f) {
  f("scale", params.scale);
  f("k", params.k);
  f("margin", params.margin);
  f("angle_factor", params.angle_factor);
  f("cosine_margin", params.cosine_margin);
  f("lambda", params.lambda);
  f("exact_gradient", params.exact_gradient);
  f("continuation", params.continuation);
  f("sub_centers", params.sub_centers);
}

template <class T>
struct CosineClamp {
  static constexpr T lo = static_cast<T>(-1 + kAcosEps);
  static constexpr T hi = static_cast<T>(1 - kAcosEps);
};

/// Policies whose logits do not depend on the row: at_row is the policy itself.
template <class Self>
struct SameForEveryRow {
  static constexpr int kRowParams = 0;
  static constexpr bool kScalesRows = false;
  template <class T>
  ANGULAR_HOST_DEVICE Self at_row(const T*, T) const { return static_cast<const Self&>(*this); }
};

/// Logits s·c off the label.
template <class T, class Math>
struct ScaledCosine {
  T s;
  template <class V>
  ANGULAR_HOST_DEVICE V logit(const V& c) const { return s * c; }
  template <class V>
  ANGULAR_HOST_DEVICE V dlogit(const V&) const { return Math::template broadcast<V>(s); }
};

/// cos(θ + m) while θ + m ≤ π, then the monotone continuation c − m sin m (optionally none:
/// cos(θ + m) there too), and its slope (optionally 1, the straight-through gradient):
/// ArcFace's and CurricularFace's label column.
template <class T, class Math>
struct AdditiveAngularMargin {
  T m, m_sin_m, cos_m, sin_m;
  bool exact_gradient, continuation;
  explicit AdditiveAngularMargin(double margin, bool exact = true, bool continued = true)
      : m(static_cast<T>(margin)),
        m_sin_m(static_cast<T>(margin * std::sin(margin))),
        cos_m(static_cast<T>(std::cos(margin))),
        sin_m(static_cast<T>(std::sin(margin))),
        exact_gradient(exact),
        continuation(continued) {}

  ANGULAR_HOST_DEVICE T value(T c) const {
    using Clamp = CosineClamp<T>;
    const T theta = Math::acos(Math::clamp(c, Clamp::lo, Clamp::hi));
    if (!continuation || theta + m <= static_cast<T>(kPi)) return Math::cos(theta + m);
    return c - m_sin_m;
  }
  ANGULAR_HOST_DEVICE T slope(T c) const {
    using Clamp = CosineClamp<T>;
    if (!exact_gradient) return T(1);
    const T theta = Math::acos(Math::clamp(c, Clamp::lo, Clamp::hi));
    if (continuation && theta + m > static_cast<T>(kPi)) return T(1);
    // d cos(θ + m)/dc = sin(θ + m) / sin θ = cos m + c·sin m / √(1 − c²): no θ, whose
    // rounding near c = −1 (θ ≈ π) would be divided by the small sin θ.
    return Math::where_inside(c, Clamp::lo, Clamp::hi, cos_m + c * sin_m * Math::rsqrt((T(1) - c) * (T(1) + c)));
  }
};

template <class T, class Math>
struct ArcPolicy : SameForEveryRow<ArcPolicy<T, Math>> {
  T k;
  explicit ArcPolicy(const MarginParams& p) : k(static_cast<T>(p.k)) {}

  template <class V>
  ANGULAR_HOST_DEVICE V logit(const V& c) const {
    using Clamp = CosineClamp<T>;
    return k * Math::asin(Math::clamp(c, Clamp::lo, Clamp::hi));  // k(π/2 − θ) = k·arcsin c
  }
  /// k / √(1 − c²) inside the clamp, 0 outside.
  template <class V>
  ANGULAR_HOST_DEVICE V dlogit(const V& c) const {
    using Clamp = CosineClamp<T>;
    return Math::where_inside(c, Clamp::lo, Clamp::hi, k * Math::rsqrt((T(1) - c) * (T(1) + c)));
  }
  ANGULAR_HOST_DEVICE T target_logit(T c) const { return logit(c); }
  ANGULAR_HOST_DEVICE T target_dlogit(T c) const { return dlogit(c); }
};

template <class T, class Math>
struct ArcFacePolicy : SameForEveryRow<ArcFacePolicy<T, Math>>, ScaledCosine<T, Math> {
  AdditiveAngularMargin<T, Math> target;
  explicit ArcFacePolicy(const MarginParams& p)
      : ScaledCosine<T, Math>{static_cast<T>(p.scale)}, target(p.margin, p.exact_gradient, p.continuation) {}

  ANGULAR_HOST_DEVICE T target_logit(T c) const { return this->s * target.value(c); }
  ANGULAR_HOST_DEVICE T target_dlogit(T c) const { return this->s * target.slope(c); }
};

template <class T, class Math>
struct CosFacePolicy : SameForEveryRow<CosFacePolicy<T, Math>>, ScaledCosine<T, Math> {
  T m;
  explicit CosFacePolicy(const MarginParams& p)
      : ScaledCosine<T, Math>{static_cast<T>(p.scale)}, m(static_cast<T>(p.cosine_margin)) {}

  ANGULAR_HOST_DEVICE T target_logit(T c) const { return this->s * (c - m); }
  ANGULAR_HOST_DEVICE T target_dlogit(T) const { return this->s; }
};

template <class T, class Math>
struct NormFacePolicy : SameForEveryRow<NormFacePolicy<T, Math>>, ScaledCosine<T, Math> {
  explicit NormFacePolicy(const MarginParams& p) : ScaledCosine<T, Math>{static_cast<T>(p.scale)} {}

  ANGULAR_HOST_DEVICE T target_logit(T c) const { return this->s * c; }
  ANGULAR_HOST_DEVICE T target_dlogit(T) const { return this->s; }
};

/// The combined margin cos(m1·θ + m2) − m3 on the label while m1·θ + m2 ≤ π; past that,
/// c − m3 − (cos θ₀ + cos m2 + m2·sin m2) with θ₀ = (π − m2)/m1 the switch: slope 1 in c, and
/// at θ₀ a step down to −m3 − (cos m2 + m2·sin m2) ≤ −1 − m3, as ArcFace's continuation
/// (which it is for m1 = 1).
template <class T, class Math>
struct CombinedPolicy : SameForEveryRow<CombinedPolicy<T, Math>>, ScaledCosine<T, Math> {
  T m1, m2, m3, continuation_offset, cos_m2, sin_m2;
  bool unit_factor;
  explicit CombinedPolicy(const MarginParams& p)
      : ScaledCosine<T, Math>{static_cast<T>(p.scale)},
        m1(static_cast<T>(p.angle_factor)),
        m2(static_cast<T>(p.margin)),
        m3(static_cast<T>(p.cosine_margin)),
        continuation_offset(static_cast<T>(std::cos((kPi - p.margin) / p.angle_factor) + std::cos(p.margin) +
                                           p.margin * std::sin(p.margin) + p.cosine_margin)),
        cos_m2(static_cast<T>(std::cos(p.margin))),
        sin_m2(static_cast<T>(std::sin(p.margin))),
        unit_factor(p.angle_factor == 1.0) {}

  ANGULAR_HOST_DEVICE T target_logit(T c) const {
    using Clamp = CosineClamp<T>;
    const T angle = m1 * Math::acos(Math::clamp(c, Clamp::lo, Clamp::hi)) + m2;
    if (angle <= static_cast<T>(kPi)) return this->s * (Math::cos(angle) - m3);
    return this->s * (c - continuation_offset);
  }
  ANGULAR_HOST_DEVICE T target_dlogit(T c) const {
    using Clamp = CosineClamp<T>;
    const T theta = Math::acos(Math::clamp(c, Clamp::lo, Clamp::hi));
    if (m1 * theta + m2 > static_cast<T>(kPi)) return this->s;
    const T inverse_sin = Math::rsqrt((T(1) - c) * (T(1) + c));
    // m1·sin(m1θ + m2)/sin θ; for m1 = 1 without θ, as ArcFace's.
    const T slope = unit_factor ? cos_m2 + c * sin_m2 * inverse_sin : m1 * Math::sin(m1 * theta + m2) * inverse_sin;
    return Math::where_inside(c, Clamp::lo, Clamp::hi, this->s * slope);
  }
};

/// SphereFace (A-Softmax): logits ‖x‖·c, and on the label ‖x‖·(λc + ψ(θ))/(1 + λ) with
/// ψ(θ) = (−1)^k cos(mθ) − 2k on θ ∈ [kπ/m, (k + 1)π/m]. The row's parameter is ‖x‖. cos(mθ)
/// and its slope are Chebyshev polynomials of c (T_m and m·U_{m−1}): exact next to c = ±1,
/// where θ's rounding would be divided by a small sin θ. ψ is continuous with a continuous
/// slope, so the segment of a c on a boundary does not matter.
template <class T, class Math>
struct SphereFacePolicy {
  static constexpr int kRowParams = 1;
  static constexpr bool kScalesRows = true;
  int m;
  T lambda, norm;
  explicit SphereFacePolicy(const MarginParams& p)
      : m(static_cast<int>(p.angle_factor)), lambda(static_cast<T>(p.lambda)), norm(T(1)) {}

  ANGULAR_HOST_DEVICE SphereFacePolicy at_row(const T* params, T) const {
    SphereFacePolicy row = *this;
    row.norm = params[0];
    return row;
  }
  template <class V>
  ANGULAR_HOST_DEVICE V logit(const V& c) const { return norm * c; }
  template <class V>
  ANGULAR_HOST_DEVICE V dlogit(const V&) const { return Math::template broadcast<V>(norm); }

  /// ψ(c) (`slope` false) or dψ/dc inside the clamp (`slope` true).
  ANGULAR_HOST_DEVICE T psi(T c, bool slope) const {
    using Clamp = CosineClamp<T>;
    const T x = Math::clamp(c, Clamp::lo, Clamp::hi);
    // The segment index is bounded before the conversion: a NaN cosine must not become an int.
    const T segment = static_cast<T>(m) * Math::acos(x) / static_cast<T>(kPi);
    const int k = segment >= T(1) ? (segment < static_cast<T>(m - 1) ? static_cast<int>(segment) : m - 1) : 0;
    T t_prev = 1, t = x, u_prev = 1, u = 2 * x;  // T_0, T_1, U_0, U_1
    for (int n = 1; n < m; ++n) {
      const T t_next = 2 * x * t - t_prev, u_next = 2 * x * u - u_prev;
      t_prev = t, t = t_next, u_prev = u, u = u_next;
    }
    const T sign = k % 2 == 0 ? T(1) : T(-1);
    if (slope) return sign * static_cast<T>(m) * u_prev;  // U_{m−1}
    return sign * t - static_cast<T>(2 * k);
  }
  ANGULAR_HOST_DEVICE T target_logit(T c) const { return norm * (lambda * c + psi(c, false)) / (1 + lambda); }
  ANGULAR_HOST_DEVICE T target_dlogit(T c) const {
    using Clamp = CosineClamp<T>;
    return norm * (lambda + Math::where_inside(c, Clamp::lo, Clamp::hi, psi(c, true))) / (1 + lambda);
  }
};

/// AdaFace: on the label s·(cos(clamp(θ + g_angle, eps, π − eps)) − g_add), the two margins
/// per row (from the feature norm's batch statistics, detail/row_parameters.hpp).
template <class T, class Math>
struct AdaFacePolicy : ScaledCosine<T, Math> {
  static constexpr int kRowParams = 2;
  static constexpr bool kScalesRows = false;
  T g_angle = 0, g_add = 0, cos_g = 1, sin_g = 0;
  explicit AdaFacePolicy(const MarginParams& p) : ScaledCosine<T, Math>{static_cast<T>(p.scale)} {}

  ANGULAR_HOST_DEVICE AdaFacePolicy at_row(const T* params, T) const {
    AdaFacePolicy row = *this;
    row.g_angle = params[0];
    row.g_add = params[1];
    row.cos_g = Math::cos(row.g_angle);
    row.sin_g = Math::sin(row.g_angle);
    return row;
  }
  ANGULAR_HOST_DEVICE T target_logit(T c) const {
    using Clamp = CosineClamp<T>;
    const T lo = static_cast<T>(kAdaFaceEps), hi = static_cast<T>(kPi - kAdaFaceEps);
    const T angle = Math::clamp(Math::acos(Math::clamp(c, Clamp::lo, Clamp::hi)) + g_angle, lo, hi);
    return this->s * (Math::cos(angle) - g_add);
  }
  ANGULAR_HOST_DEVICE T target_dlogit(T c) const {
    using Clamp = CosineClamp<T>;
    const T lo = static_cast<T>(kAdaFaceEps), hi = static_cast<T>(kPi - kAdaFaceEps);
    const T angle = Math::acos(Math::clamp(c, Clamp::lo, Clamp::hi)) + g_angle;
    if (!(angle > lo && angle < hi)) return T(0);
    // sin(θ + g)/sin θ = cos g + c·sin g/√(1 − c²), as ArcFace's.
    return Math::where_inside(c, Clamp::lo, Clamp::hi,
                          this->s * (cos_g + c * sin_g * Math::rsqrt((T(1) - c) * (T(1) + c))));
  }
};

/// CurricularFace: ArcFace's label column; off the label, a cosine above the label's
/// cos(θ_y + m) (a hard negative) becomes c·(t + c), t the row's parameter (the running mean
/// of the label cosines).
template <class T, class Math>
struct CurricularFacePolicy {
  static constexpr int kRowParams = 1;
  static constexpr bool kScalesRows = false;
  T s, t = 0, threshold = 0;
  double margin;
  AdditiveAngularMargin<T, Math> target;
  explicit CurricularFacePolicy(const MarginParams& p)
      : s(static_cast<T>(p.scale)), margin(p.margin), target(p.margin) {}

  /// The threshold in float64, rounded down to T: then c > threshold for a cosine c in T is
  /// the comparison of float64 math (next to c = −1, where θ_y + m ≈ π, float rounding of
  /// the threshold would flip cosines between the two branches).
  ANGULAR_HOST_DEVICE CurricularFacePolicy at_row(const T* params, T c_y) const {
    using Clamp = CosineClamp<double>;
    CurricularFacePolicy row = *this;
    row.t = params[0];
    const double c = static_cast<double>(c_y);
    const double exact = ::cos(::acos(c < Clamp::lo ? Clamp::lo : (c > Clamp::hi ? Clamp::hi : c)) + margin);
    row.threshold = static_cast<T>(exact);
    if (static_cast<double>(row.threshold) > exact) row.threshold = Math::next_below(row.threshold);
    return row;
  }
  template <class V>
  ANGULAR_HOST_DEVICE V logit(const V& c) const {
    return s * Math::where_greater(c, threshold, c * (t + c), c);
  }
  template <class V>
  ANGULAR_HOST_DEVICE V dlogit(const V& c) const {
    return s * Math::where_greater(c, threshold, t + T(2) * c, Math::template broadcast<V>(T(1)));
  }
  ANGULAR_HOST_DEVICE T target_logit(T c) const { return s * target.value(c); }
  ANGULAR_HOST_DEVICE T target_dlogit(T c) const { return s * target.slope(c); }
};

/// Calls f(Policy<T, Math>{params}) for the runtime `kind`.
template <class T, class Math, class F>
decltype(auto) with_margin_policy(MarginKind kind, const MarginParams& params, F&& f) {
  switch (kind) {
    case MarginKind::arc: return f(ArcPolicy<T, Math>(params));
    case MarginKind::arcface: return f(ArcFacePolicy<T, Math>(params));
    case MarginKind::cosface: return f(CosFacePolicy<T, Math>(params));
    case MarginKind::normface: return f(NormFacePolicy<T, Math>(params));
    case MarginKind::combined: return f(CombinedPolicy<T, Math>(params));
    case MarginKind::sphereface: return f(SphereFacePolicy<T, Math>(params));
    case MarginKind::adaface: return f(AdaFacePolicy<T, Math>(params));
    case MarginKind::curricularface: return f(CurricularFacePolicy<T, Math>(params));
  }
  TORCH_CHECK(false, "angular: unknown MarginKind ", static_cast<int>(kind));
}

/// The policies' constants for a runtime `kind` (the math type is never used).
struct NoMath {};

/// Per-row parameters each margin reads (its policy's kRowParams).
inline int row_parameter_count(MarginKind kind) {
  return with_margin_policy<float, NoMath>(kind, MarginParams{}, [](auto policy) { return decltype(policy)::kRowParams; });
}

/// Whether every logit of a row scales with the row's first parameter (its policy's kScalesRows).
inline bool margin_scales_rows(MarginKind kind) {
  return with_margin_policy<float, NoMath>(kind, MarginParams{}, [](auto policy) { return decltype(policy)::kScalesRows; });
}

}  // namespace angular::detail
