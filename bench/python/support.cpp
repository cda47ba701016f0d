// What bench/python/bench.py needs from C++, built by it with torch.utils.cpp_extension: the
// counting CPU allocator of the C++ benchmarks (memory.hpp), and the C++ loop of the same
// features-level losses that the Python operators run, for the Python-to-C++ overhead.
#include <angular/loss.hpp>
#include <memory.hpp>

#include <torch/extension.h>

#include <chrono>
#include <vector>

namespace {

bench::CountingCpuAllocator* counting = nullptr;

void install_counting_allocator() { counting = &bench::CountingCpuAllocator::install(); }
int64_t live_bytes() { return counting->live_bytes(); }
int64_t peak_bytes() { return counting->peak_bytes(); }
void reset_peak() { counting->reset_peak(); }

/// Milliseconds of each of `repeats` forward + backward steps of `margin` ("arcface" or
/// "soft") called from C++, ∂W dropped between steps as the Python loop drops it.
std::vector<double> cpp_steps(const std::string& margin, const at::Tensor& features, const at::Tensor& weight,
                              const at::Tensor& target, int64_t repeats) {
  pybind11::gil_scoped_release no_gil;  // the autograd engine runs without it
  std::vector<double> ms;
  for (int64_t i = 0; i < repeats; ++i) {
    weight.mutable_grad() = at::Tensor();
    const auto start = std::chrono::steady_clock::now();
    const at::Tensor loss = margin == "arcface" ? angular::functional::linear_arcface_loss(features, weight, target)
                                                : angular::functional::softmax_loss(features, weight, target);
    loss.backward();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return ms;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("install_counting_allocator", &install_counting_allocator);
  m.def("live_bytes", &live_bytes);
  m.def("peak_bytes", &peak_bytes);
  m.def("reset_peak", &reset_peak);
  m.def("cpp_steps", &cpp_steps);
}
