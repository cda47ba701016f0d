#pragma once
// Multi-process tests: this program starts copies of itself as the ranks of a group on
// 127.0.0.1 (a free port each time, torchrun's variables), waits a bounded time, and kills
// every rank still running when the time is up or the test process dies.

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace angular::test {

/// The variable that makes this program a rank running a named worker.
constexpr const char* kWorkerVariable = "ANGULAR_TEST_WORKER";

/// A TCP port that was free on 127.0.0.1 a moment ago.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    throw std::runtime_error("no free port on 127.0.0.1");
  ::close(fd);
  return ntohs(address.sin_port);
}

/// How the ranks ended: each one's exit status (−signal if killed by one), and whether the
/// time ran out (the ranks still running were then killed).
struct RanksOutcome {
  std::vector<int> status;
  bool timed_out = false;
  bool all_passed() const {
    for (int s : status)
      if (s != 0) return false;
    return !timed_out;
  }
};

/// Runs `worker` in `world_size` copies of the program `self` (a path) as ranks 0…N−1, rank r
/// with the command-line arguments args_of_rank(r).
inline RanksOutcome run_ranks(const std::string& self, const std::string& worker, int world_size,
                              std::chrono::seconds limit,
                              const std::function<std::vector<std::string>(int rank)>& args_of_rank) {
  const std::string port = std::to_string(free_port());
  std::vector<pid_t> pids;
  for (int rank = 0; rank < world_size; ++rank) {
    const std::vector<std::string> args = args_of_rank(rank);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // no rank outlives the test
      ::setenv(kWorkerVariable, worker.c_str(), 1);
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world_size).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", port.c_str(), 1);
      std::vector<char*> argv{const_cast<char*>(self.c_str())};
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(self.c_str(), argv.data());
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  RanksOutcome outcome;
  outcome.status.assign(pids.size(), 0);
  std::vector<bool> done(pids.size(), false);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  size_t remaining = pids.size();
  while (remaining > 0) {
    for (size_t i = 0; i < pids.size(); ++i) {
      int status = 0;
      if (done[i] || ::waitpid(pids[i], &status, WNOHANG) != pids[i]) continue;
      done[i] = true;
      --remaining;
      outcome.status[i] = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    if (remaining == 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      outcome.timed_out = true;
      for (size_t i = 0; i < pids.size(); ++i) {
        if (done[i]) continue;
        ::kill(pids[i], SIGKILL);
        int status = 0;
        ::waitpid(pids[i], &status, 0);
        outcome.status[i] = -SIGKILL;
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return outcome;
}

/// The same, every rank with the arguments `args`.
inline RanksOutcome run_ranks(const std::string& self, const std::string& worker, int world_size,
                              std::chrono::seconds limit, const std::vector<std::string>& args = {}) {
  return run_ranks(self, worker, world_size, limit, [&args](int) { return args; });
}

}  // namespace angular::test
