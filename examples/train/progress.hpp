#pragma once
// Progress of an epoch on stderr: a bar with rate and ETA on a terminal, a line per 10 %
// otherwise, nothing when quiet.

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>

#include <unistd.h>

namespace train {

class Progress {
 public:
  Progress(bool quiet, int64_t epoch, int64_t epochs, int64_t batches)
      : quiet_(quiet),
        tty_(isatty(fileno(stderr)) != 0),
        epoch_(epoch),
        epochs_(epochs),
        batches_(batches),
        start_(std::chrono::steady_clock::now()) {}

  /// Whether update() would show something now: the caller then reads the loss from the
  /// device (each read waits for the GPU, so a GPU run reads only this often).
  bool due(int64_t done) const {
    if (quiet_ || done == batches_) return done == batches_;
    if (tty_) return std::chrono::steady_clock::now() - last_shown_ > std::chrono::milliseconds(200);
    return done * 10 / batches_ != (done - 1) * 10 / batches_;
  }

  void update(int64_t done, int64_t images, double loss) {
    if (quiet_) return;
    last_shown_ = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(last_shown_ - start_).count();
    const double rate = static_cast<double>(images) / std::max(elapsed, 1e-9);
    const double eta = elapsed / static_cast<double>(done) * static_cast<double>(batches_ - done);
    if (tty_) {
      const int filled = static_cast<int>(30 * done / batches_);
      std::fprintf(stderr,
                   "\repoch %" PRId64 "/%" PRId64 " [%s%s] %" PRId64 "/%" PRId64 "  %.0f img/s  ETA %3.0fs  loss %.4f ",
                   epoch_, epochs_, std::string(filled, '#').c_str(), std::string(30 - filled, '.').c_str(), done,
                   batches_, rate, eta, loss);
      if (done == batches_) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr,
                   "epoch %" PRId64 "/%" PRId64 ": %" PRId64 "/%" PRId64 " batches, %.0f img/s, ETA %.0fs, loss %.4f\n",
                   epoch_, epochs_, done, batches_, rate, eta, loss);
    }
  }

 private:
  bool quiet_, tty_;
  int64_t epoch_, epochs_, batches_;
  std::chrono::steady_clock::time_point start_, last_shown_;
};

}  // namespace train
