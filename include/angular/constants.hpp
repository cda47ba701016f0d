#pragma once
// Numeric constants of the public API.

namespace angular {

constexpr double kPi = 3.14159265358979323846;

}  // namespace angular
