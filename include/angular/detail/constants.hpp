#pragma once
// Numeric constants shared by the reference math and the fused kernels.

namespace angular::detail {

constexpr double kPi = 3.14159265358979323846;
/// arccos is evaluated on cosines clamped to [-1 + eps, 1 - eps]: finite gradients everywhere.
constexpr double kAcosEps = 1e-7;
/// Norm floor of F::normalize.
constexpr double kNormEps = 1e-12;

}  // namespace angular::detail
