// The opt-in CUDA kernels of angular. Linking the CMake target angular::cuda adds this file to
// the consumer's program; at start-up it installs the fused CUDA launchers in the table that
// angular's functional layer consults for CUDA tensors (angular::kernel_path).

#include <angular/detail/cuda/margin_cross_entropy.cuh>

namespace {

const bool angular_cuda_kernels_installed = [] {
  angular::detail::cuda_row_kernels() = {&angular::detail::cuda::forward,
                                         &angular::detail::cuda::backward};
  return true;
}();

}  // namespace
