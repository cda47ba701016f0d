// angular::cuda inside a static library: the fused CUDA kernels are installed when the program
// calls angular::register_cuda_kernels() (CALL_REGISTER=1) and missing when it does not, as the
// linker leaves the library's kernel object out (CALL_REGISTER=0: exits 0 if they are missing).

#include <angular/loss.hpp>

#include <cstdio>

int main() {
#if CALL_REGISTER
  angular::register_cuda_kernels();
  const bool expected = true;
#else
  const bool expected = false;
#endif
  const bool registered = angular::cuda_kernels_registered();
  std::printf("CALL_REGISTER=%d: CUDA kernels %s\n", CALL_REGISTER, registered ? "registered" : "missing");
  return registered == expected ? 0 : 1;
}
