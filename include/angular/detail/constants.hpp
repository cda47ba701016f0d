#pragma once
// Numeric constants shared by the reference math and the fused kernels (π: angular::kPi).

#include <angular/constants.hpp>

namespace angular::detail {

/// arccos is evaluated on cosines clamped to [−1 + eps, 1 − eps]: finite gradients everywhere.
/// eps = 2⁻²³ ≈ 1.19e-7 is what 1e-7 becomes next to 1 in float32, so float32 and float64
/// clamp at the same point and a float64 reference is an exact oracle for float32 kernels.
constexpr double kAcosEps = 1.1920928955078125e-7;
/// AdaFace's eps (its authors' code's 1e-3): θ + g_angle stays within [eps, π − eps], and the
/// norms' spread is σ + eps.
constexpr double kAdaFaceEps = 1e-3;
/// Norm floor of F::normalize.
constexpr double kNormEps = 1e-12;

}  // namespace angular::detail
