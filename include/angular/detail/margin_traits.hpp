#pragma once
// The table of margins: for each functional options type, the facts that every layer derives
// from — its name, the kernels' MarginKind, its validated MarginParams, what it reads per row,
// whether its logits are of unit vectors, its logits for prediction. The functional losses
// (detail/margin_loss.hpp), the modules (detail/margin_module.hpp), the sharded loss and the
// trainers all go through it. A margin's settings are listed in its options header; its math
// is its policy (detail/margin_policy.hpp) and its composite reference (detail/reference.hpp).

#include <angular/detail/checks.hpp>
#include <angular/detail/margin_policy.hpp>
#include <angular/detail/margin_statistics.hpp>
#include <angular/detail/reference.hpp>
#include <angular/options/adaface.hpp>
#include <angular/options/arc.hpp>
#include <angular/options/arcface.hpp>
#include <angular/options/combined.hpp>
#include <angular/options/cosface.hpp>
#include <angular/options/curricularface.hpp>
#include <angular/options/normface.hpp>
#include <angular/options/softmax.hpp>
#include <angular/options/sphereface.hpp>
#include <angular/options/subcenter_arcface.hpp>

#include <array>
#include <cmath>

namespace angular::detail {

/// What a margin reads per row besides its cosines.
enum class RowInput {
  none,
  norms,            // the feature norms, with their gradient (SphereFace)
  norm_statistics,  // the feature norms without gradient, and their running mean and std (AdaFace)
  curriculum,       // the running mean t of the label cosines (CurricularFace)
};

/// A running statistic that a margin's module keeps (a buffer of one element): its name, the
/// value it starts from and its meaning.
struct Statistic {
  const char* name;
  double start;
  const char* doc;
};

/// The per-row inputs a loss takes (undefined where its margin reads none): norms [B], the
/// statistics one element each.
struct MarginInputs {
  at::Tensor norms, norm_mean, norm_std, t;

  /// The running statistic called `name` in a margin's kStatistics.
  at::Tensor& statistic(c10::string_view name) {
    if (name == "norm_mean") return norm_mean;
    if (name == "norm_std") return norm_std;
    TORCH_CHECK(name == "t", "angular: no running statistic is called '", name, "'");
    return t;
  }
};

/// MarginTraits<FuncOptions> has:
///   kName, kModule    the name the trainers and the Python package use, the module's class name
///   kFunction         the functional loss over cosines (arcface_loss; over features linear_ + it,
///                     but for the unnormalised softmax_loss, which exists over features only)
///   kSummary          its logits in one line
///   kStatistics       the running statistics its modules keep, in the order the functional
///                     losses take them
///   kKind             the kernels' margin
///   kNormalized       logits of cosines (false: of the raw products x·w_j, the modified softmax)
///   kRowInput         what it reads per row
///   sub_centers(o)    class vectors per class (1 but for sub-center ArcFace)
///   params(o, C)      the kernels' numbers, after checking each setting (C: the classes)
///   row_params(o, in, input, name)
///                     the kernels' per-row parameters [B, P] from the inputs `in` (checked
///                     against `input`, called `name`), or undefined
///   logits(o, c, x)   the logits without margin, for prediction, of class cosines c [B, C]
///                     of features x
template <class FuncOptions>
struct MarginTraits;

/// Defaults of the entries.
struct MarginTraitsBase {
  static constexpr bool kNormalized = true;
  static constexpr RowInput kRowInput = RowInput::none;
  static constexpr std::array<Statistic, 0> kStatistics{};
  template <class O>
  static int64_t sub_centers(const O&) { return 1; }
  template <class O>
  static at::Tensor row_params(const O&, const MarginInputs&, const at::Tensor&, const char*) { return {}; }
  template <class O>
  static at::Tensor logits(const O& o, const at::Tensor& c, const at::Tensor&) { return c * o.scale(); }
};

inline void check_angular_margin(const char* name, double m) {
  check_hyperparameter(name, m, m >= 0 && m < kPi, "in [0, pi) radians");
}

inline MarginParams scaled(double scale) {
  check_scale(scale);
  MarginParams p;
  p.scale = scale;
  return p;
}

template <>
struct MarginTraits<functional::SoftmaxLossFuncOptions> : MarginTraitsBase {
  static constexpr const char* kName = "soft";
  static constexpr const char* kFunction = "softmax_loss";
  static constexpr const char* kSummary =
      "the modified softmax: logits x·w_j, no bias";
  static constexpr const char* kModule = "SoftmaxLoss";
  static constexpr MarginKind kKind = MarginKind::normface;  // with s = 1: z = x·w_j
  static constexpr bool kNormalized = false;
  static MarginParams params(const functional::SoftmaxLossFuncOptions&, int64_t) { return MarginParams{}; }
};

template <>
struct MarginTraits<functional::ArcLossFuncOptions> : MarginTraitsBase {
  static constexpr const char* kName = "arc";
  static constexpr const char* kFunction = "arc_loss";
  static constexpr const char* kSummary =
      "the paper's angular loss: logits k·(π/2 − θ_j)";
  static constexpr const char* kModule = "ArcLoss";
  static constexpr MarginKind kKind = MarginKind::arc;
  static MarginParams params(const functional::ArcLossFuncOptions& o, int64_t classes) {
    MarginParams p;
    p.k = o.k().value_or(default_arc_k(classes));
    check_arc_k(p.k);
    return p;
  }
  static at::Tensor logits(const functional::ArcLossFuncOptions& o, const at::Tensor& c, const at::Tensor&) {
    return arc_logits(c, params(o, c.size(1)).k);
  }
};

template <>
struct MarginTraits<functional::ArcFaceLossFuncOptions> : MarginTraitsBase {
  static constexpr const char* kName = "arcface";
  static constexpr const char* kFunction = "arcface_loss";
  static constexpr const char* kSummary =
      "ArcFace: logits s·cos θ_j; the label's s·cos(θ + m), or s·(cos θ − m·sin m) once θ + m > π "
      "(with continuation)";
  static constexpr const char* kModule = "ArcFaceLoss";
  static constexpr MarginKind kKind = MarginKind::arcface;
  static MarginParams params(const functional::ArcFaceLossFuncOptions& o, int64_t) {
    MarginParams p = scaled(o.scale());
    check_angular_margin("margin", o.margin());
    p.margin = o.margin();
    p.exact_gradient = o.exact_gradient();
    p.continuation = o.continuation();
    return p;
  }
};

template <>
struct MarginTraits<functional::CosFaceLossFuncOptions> : MarginTraitsBase {
  static constexpr const char* kName = "cosface";
  static constexpr const char* kFunction = "cosface_loss";
  static constexpr const char* kSummary =
      "CosFace: logits s·cos θ_j; the label's s·(cos θ − m)";
  static constexpr const char* kModule = "CosFaceLoss";
  static constexpr MarginKind kKind = MarginKind::cosface;
  static MarginParams params(const functional::CosFaceLossFuncOptions& o, int64_t) {
    MarginParams p = scaled(o.scale());
    check_hyperparameter("margin", o.margin(), o.margin() >= 0, "a finite number >= 0");
    p.cosine_margin = o.margin();
    return p;
  }
};

template <>
struct MarginTraits<functional::NormFaceLossFuncOptions> : MarginTraitsBase {
  static constexpr const char* kName = "normface";
  static constexpr const char* kFunction = "normface_loss";
  static constexpr const char* kSummary =
      "NormFace: logits s·cos θ_j, no margin";
  static constexpr const char* kModule = "NormFaceLoss";
  static constexpr MarginKind kKind = MarginKind::normface;
  static MarginParams params(const functional::NormFaceLossFuncOptions& o, int64_t) { return scaled(o.scale()); }
};

template <>
struct MarginTraits<functional::CombinedMarginLossFuncOptions> : MarginTraitsBase {
  static constexpr const char* kName = "combined";
  static constexpr const char* kFunction = "combined_margin_loss";
  static constexpr const char* kSummary =
      "insightface's combined margin: logits s·cos θ_j; the label's s·(cos(m1·θ + m2) − m3)";
  static constexpr const char* kModule = "CombinedMarginLoss";
  static constexpr MarginKind kKind = MarginKind::combined;
  static MarginParams params(const functional::CombinedMarginLossFuncOptions& o, int64_t) {
    MarginParams p = scaled(o.scale());
    check_hyperparameter("m1", o.m1(), o.m1() > 0, "a finite number > 0");
    check_angular_margin("m2", o.m2());
    check_hyperparameter("m3", o.m3(), o.m3() >= 0, "a finite number >= 0");
    p.angle_factor = o.m1();
    p.margin = o.m2();
    p.cosine_margin = o.m3();
    return p;
  }
};

template <>
struct MarginTraits<functional::SphereFaceLossFuncOptions> : MarginTraitsBase {
  static constexpr const char* kName = "sphereface";
  static constexpr const char* kFunction = "sphereface_loss";
  static constexpr const char* kSummary =
      "SphereFace (A-Softmax): logits ‖x‖·cos θ_j; the label's ‖x‖·(λ·cos θ + ψ(θ))/(1 + λ), ψ(θ) = (−1)^k·cos(mθ) − 2k on [kπ/m, (k + 1)π/m]";
  static constexpr const char* kModule = "SphereFaceLoss";
  static constexpr MarginKind kKind = MarginKind::sphereface;
  static constexpr RowInput kRowInput = RowInput::norms;
  static MarginParams params(const functional::SphereFaceLossFuncOptions& o, int64_t) {
    const double m = o.margin();
    check_hyperparameter("margin", m, m >= 1 && m <= 64 && std::floor(m) == m,
                         "an integer in [1, 64] (SphereFace's m)");
    check_hyperparameter("lambda", o.lambda(), o.lambda() >= 0, "a finite number >= 0");
    MarginParams p;
    p.angle_factor = m;
    p.lambda = o.lambda();
    return p;
  }
  /// The norms, where given (the features-level path computes them itself, with their gradient).
  static at::Tensor row_params(const functional::SphereFaceLossFuncOptions&, const MarginInputs& in,
                               const at::Tensor&, const char*) {
    return in.norms.defined() ? in.norms.unsqueeze(1) : at::Tensor();
  }
  static at::Tensor logits(const functional::SphereFaceLossFuncOptions&, const at::Tensor& c, const at::Tensor& x) {
    return c * feature_norms(x.to(c.scalar_type())).unsqueeze(1);
  }
};

template <>
struct MarginTraits<functional::SubCenterArcFaceLossFuncOptions> : MarginTraitsBase {
  static constexpr const char* kName = "subcenter-arcface";
  static constexpr const char* kFunction = "subcenter_arcface_loss";
  static constexpr const char* kSummary =
      "sub-center ArcFace: ArcFace over cos θ_j = the largest cosine of class j's K vectors";
  static constexpr const char* kModule = "SubCenterArcFaceLoss";
  static constexpr MarginKind kKind = MarginKind::arcface;
  static int64_t sub_centers(const functional::SubCenterArcFaceLossFuncOptions& o) { return o.sub_centers(); }
  static MarginParams params(const functional::SubCenterArcFaceLossFuncOptions& o, int64_t) {
    check_sub_centers(o.sub_centers());
    MarginParams p = scaled(o.scale());
    check_angular_margin("margin", o.margin());
    p.margin = o.margin();
    p.sub_centers = o.sub_centers();
    return p;
  }
};

template <>
struct MarginTraits<functional::AdaFaceLossFuncOptions> : MarginTraitsBase {
  static constexpr const char* kName = "adaface";
  static constexpr const char* kFunction = "adaface_loss";
  static constexpr const char* kSummary =
      "AdaFace: logits s·cos θ_j; the label's s·(cos(θ + g_angle) − g_add), g_angle = −m·ẑ, g_add = m·ẑ + m, ẑ = clip(h·(‖x‖ − μ)/(σ + ε), −1, 1)";
  static constexpr const char* kModule = "AdaFaceLoss";
  static constexpr MarginKind kKind = MarginKind::adaface;
  static constexpr RowInput kRowInput = RowInput::norm_statistics;
  static constexpr std::array<Statistic, 2> kStatistics{{
      {"norm_mean", 20.0, "the running mean μ of the feature norms (its authors start it at 20)"},
      {"norm_std", 100.0, "the running standard deviation σ of the feature norms (from 100)"},
  }};
  static MarginParams params(const functional::AdaFaceLossFuncOptions& o, int64_t) {
    MarginParams p = scaled(o.scale());
    check_hyperparameter("margin", o.margin(), o.margin() >= 0 && o.margin() < kPi / 2, "in [0, pi/2) radians");
    check_hyperparameter("h", o.h(), o.h() > 0, "a finite number > 0");
    p.margin = o.margin();
    return p;
  }
  static at::Tensor row_params(const functional::AdaFaceLossFuncOptions& o, const MarginInputs& in,
                               const at::Tensor& input, const char* name) {
    check_statistic(in.norm_mean, "norm_mean", input, name);
    check_statistic(in.norm_std, "norm_std", input, name);
    return adaface_margins(in.norms, in.norm_mean, in.norm_std, o.margin(), o.h());
  }
};

template <>
struct MarginTraits<functional::CurricularFaceLossFuncOptions> : MarginTraitsBase {
  static constexpr const char* kName = "curricularface";
  static constexpr const char* kFunction = "curricularface_loss";
  static constexpr const char* kSummary =
      "CurricularFace: ArcFace's label logit; a negative with cos θ_j above the label's cos(θ + m) becomes s·cos θ_j·(t + cos θ_j)";
  static constexpr const char* kModule = "CurricularFaceLoss";
  static constexpr MarginKind kKind = MarginKind::curricularface;
  static constexpr RowInput kRowInput = RowInput::curriculum;
  static constexpr std::array<Statistic, 1> kStatistics{{{"t", 0.0, "the running mean t of the label cosines (from 0)"}}};
  static MarginParams params(const functional::CurricularFaceLossFuncOptions& o, int64_t) {
    MarginParams p = scaled(o.scale());
    check_angular_margin("margin", o.margin());
    p.margin = o.margin();
    return p;
  }
  static at::Tensor row_params(const functional::CurricularFaceLossFuncOptions&, const MarginInputs& in,
                               const at::Tensor& input, const char* name) {
    check_statistic(in.t, "t", input, name);
    return curriculum_rows(in.t, input.size(0));
  }
};

}  // namespace angular::detail
