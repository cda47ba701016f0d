// The fuzz targets (fuzz/targets.hpp) on every file of tests/fuzz-regressions/<target>/: the
// inputs that once crashed a target, and hand-made hostile files, must be rejected cleanly or
// accepted with the target's invariants, in every build (the asan preset's included).

#include "../fuzz/targets.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace fs = std::filesystem;

TEST_CASE("the fuzz targets take every regression file cleanly", "[train][data][fuzz]") {
  const fs::path root = fs::path(ANGULAR_SOURCE_DIR) / "tests" / "fuzz-regressions";
  int files = 0;
  for (const fuzz::Target& target : fuzz::kTargets) {
    const fs::path dir = root / target.name;
    if (!fs::is_directory(dir)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      INFO(entry.path().string());
      std::ifstream in(entry.path(), std::ios::binary);
      const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      CHECK_NOTHROW(target.run(bytes.data(), bytes.size()));
      ++files;
    }
  }
  CHECK(files > 0);
}
