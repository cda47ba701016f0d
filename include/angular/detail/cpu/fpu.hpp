#pragma once
// The floating-point state of the CPU kernels' threads.

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace angular::detail::cpu {

/// Flushes denormal floats to zero, as inputs and as results, on this thread while it lives.
/// With a scale like ArcFace's 64 most of a row's e^(z − max) and gradient terms fall below
/// 2^−126, and on Intel cores every operation that reads or makes a denormal takes a
/// microcode assist of about a hundred cycles (the fused ArcFace kernel ran 5× slower than
/// Arc's); what is flushed is below 1.2e-38, nothing next to a row's e^0 = 1.
class FlushDenormals {
 public:
#if defined(__x86_64__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  static constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;
  unsigned saved_;
#endif
};

}  // namespace angular::detail::cpu
