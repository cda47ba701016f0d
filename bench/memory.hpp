#pragma once
// Bytes held by tensors: a counting wrapper around LibTorch's CPU allocator, with its peak and
// its largest single allocation. The benchmarks read it between forward and backward to report
// what each implementation keeps alive for its backward pass, and around a step for its peak;
// the tests assert on it (the trainer's test: that no process allocates every class's vectors
// as one tensor).

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace bench {

class CountingCpuAllocator final : public c10::Allocator {
 public:
  explicit CountingCpuAllocator(c10::Allocator* base) : base_(base) {}

  /// The base allocator's block, under a data pointer that is its own context (as LibTorch's
  /// raw_allocate, used by its serialization, requires); the block is found again by it.
  c10::DataPtr allocate(size_t bytes) override {
    c10::DataPtr inner = base_->allocate(bytes);
    void* data = inner.get();
    if (data == nullptr) return inner;  // nothing to count
    const c10::Device device = inner.device();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks_.emplace(data, Block{std::move(inner), bytes});
    }
    const int64_t size = static_cast<int64_t>(bytes), live = live_ += size;
    for (int64_t peak = peak_.load(); live > peak && !peak_.compare_exchange_weak(peak, live);) {
    }
    for (int64_t largest = largest_.load(); size > largest && !largest_.compare_exchange_weak(largest, size);) {
    }
    return {data, data, &release, device};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    std::memcpy(dest, src, count);
  }
  int64_t live_bytes() const { return live_.load(); }
  /// The most bytes live at once since the last reset_peak().
  int64_t peak_bytes() const { return peak_.load(); }
  /// The largest single allocation since the last reset_peak().
  int64_t largest_bytes() const { return largest_.load(); }
  void reset_peak() {
    peak_ = live_.load();
    largest_ = 0;
  }

  /// Installs itself as the CPU allocator (one per process, never freed: the tensors it
  /// allocated free through it).
  static CountingCpuAllocator& install() {
    c10::SetCPUAllocator(&instance(), kPriority);
    return instance();
  }

  /// The counting allocator while it lives, then the CPU allocator it wraps again.
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
  struct Block {
    c10::DataPtr inner;
    size_t bytes;
  };
  static CountingCpuAllocator& instance() {
    static CountingCpuAllocator* counting = new CountingCpuAllocator(c10::GetCPUAllocator());
    return *counting;
  }
  /// Frees a block of ours; one that is not (oneDNN frees through whichever CPU allocator is
  /// installed then: a block from before, or the null pointer of 0 bytes) goes to the base.
  static void release(void* data) {
    CountingCpuAllocator& self = instance();
    Block block;
    {
      std::lock_guard<std::mutex> lock(self.mutex_);
      const auto found = self.blocks_.find(data);
      if (found == self.blocks_.end()) {
        if (data != nullptr && self.base_->raw_deleter() != nullptr) self.base_->raw_deleter()(data);
        return;
      }
      block = std::move(found->second);
      self.blocks_.erase(found);
    }
    self.live_ -= static_cast<int64_t>(block.bytes);
  }  // block.inner frees the memory through the base allocator
  c10::Allocator* base_;
  std::mutex mutex_;
  std::unordered_map<void*, Block> blocks_;
  std::atomic<int64_t> live_{0};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> largest_{0};
};

}  // namespace bench
