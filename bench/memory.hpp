#pragma once
// Bytes held by tensors: a counting wrapper around LibTorch's CPU allocator, with its peak.
// The benchmarks read it between forward and backward to report what each implementation
// keeps alive for its backward pass, and around a step for its peak; the tests assert on it.

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstring>

namespace bench {

class CountingCpuAllocator final : public c10::Allocator {
 public:
  explicit CountingCpuAllocator(c10::Allocator* base) : base_(base) {}

  c10::DataPtr allocate(size_t bytes) override {
    auto* context = new Context{base_->allocate(bytes), bytes, this};
    const int64_t live = live_ += static_cast<int64_t>(bytes);
    for (int64_t peak = peak_.load(); live > peak && !peak_.compare_exchange_weak(peak, live);) {
    }
    void* data = context->inner.get();
    return {data, context, &release, context->inner.device()};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    std::memcpy(dest, src, count);
  }
  int64_t live_bytes() const { return live_.load(); }
  /// The most bytes live at once since the last reset_peak().
  int64_t peak_bytes() const { return peak_.load(); }
  void reset_peak() { peak_ = live_.load(); }

  /// Installs itself as the CPU allocator (one per process, never freed: the tensors it
  /// allocated free through it).
  static CountingCpuAllocator& install() {
    static CountingCpuAllocator* counting = new CountingCpuAllocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(counting, kPriority);
    return *counting;
  }

  /// The counting allocator while it lives, then the CPU allocator it wraps again. For the
  /// tests: LibTorch's raw_allocate (serialization) needs a data pointer that is its own
  /// context, which this allocator's is not.
  class Scope {
   public:
    Scope() : previous_(c10::GetCPUAllocator()), counting_(install()) {}
    ~Scope() { c10::SetCPUAllocator(previous_, kPriority); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    CountingCpuAllocator& operator*() const { return counting_; }

   private:
    c10::Allocator* previous_;
    CountingCpuAllocator& counting_;
  };

 private:
  static constexpr uint8_t kPriority = 100;
  struct Context {
    c10::DataPtr inner;
    size_t bytes;
    CountingCpuAllocator* owner;
  };
  static void release(void* p) {
    auto* context = static_cast<Context*>(p);
    context->owner->live_ -= static_cast<int64_t>(context->bytes);
    delete context;
  }
  c10::Allocator* base_;
  std::atomic<int64_t> live_{0};
  std::atomic<int64_t> peak_{0};
};

}  // namespace bench
