#pragma once
// Memory of the CPU kernels: large fresh buffers in transparent huge pages.

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace angular::detail::cpu {

/// A fresh multi-megabyte gradient faults in 4 KiB pages as the kernel first writes it; at
/// C = 100 000 that costs more than the math. Ask Linux for transparent huge pages (the
/// default "madvise" mode honours this); purely advisory.
inline void prefer_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kPage = 4096;
  if (bytes < (size_t{8} << 20)) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kPage - 1) & ~(kPage - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kPage - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace angular::detail::cpu
