#pragma once
// Splitting rows over threads from a header. at::parallel_for is inline in an OpenMP build of
// LibTorch (as the PyPI wheels are): in a consumer compiled without -fopenmp it runs on one
// thread. Without OpenMP this uses a pool of c10::ThreadPool threads, sized once from
// at::get_num_threads(); the calling thread takes a share too.

#include <ATen/Parallel.h>
#include <c10/core/thread_pool.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>

namespace angular::detail::cpu {

#if !defined(_OPENMP)
inline c10::ThreadPool& row_pool() {
  static c10::ThreadPool pool(std::max(1, at::get_num_threads() - 1));
  return pool;
}
#endif

/// Calls f(begin, end) on disjoint row ranges covering [0, rows), each of at least `grain`
/// rows where there are enough, on up to at::get_num_threads() threads. Returns once every
/// range is done; an exception from any of them is rethrown then (the first one thrown).
template <class F>
void parallel_rows(int64_t rows, int64_t grain, const F& f) {
  if (rows <= 0) return;
#if defined(_OPENMP)
  at::parallel_for(0, rows, grain, f);
#else
  c10::ThreadPool& pool = row_pool();
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), static_cast<int64_t>(pool.size()) + 1);
  const int64_t tasks = std::min<int64_t>(threads, (rows + grain - 1) / std::max<int64_t>(grain, 1));
  if (tasks <= 1 || pool.inThreadPool()) return f(int64_t{0}, rows);
  const int64_t chunk = (rows + tasks - 1) / tasks;
  // The pool's tasks hold references to these: the caller waits for every task, throw or not.
  std::mutex mutex;
  std::condition_variable done;
  int64_t pending = tasks - 1;
  std::exception_ptr error;
  const auto run = [&](int64_t begin, int64_t end) {
    try {
      if (begin < end) f(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!error) error = std::current_exception();
    }
  };
  for (int64_t t = 1; t < tasks; ++t) {
    const int64_t begin = t * chunk, end = std::min(rows, begin + chunk);
    pool.run([&, begin, end] {
      run(begin, end);
      std::lock_guard<std::mutex> lock(mutex);
      if (--pending == 0) done.notify_one();
    });
  }
  run(0, std::min(rows, chunk));
  std::unique_lock<std::mutex> lock(mutex);
  done.wait(lock, [&] { return pending == 0; });
  if (error) std::rethrow_exception(error);
#endif
}

}  // namespace angular::detail::cpu
