// angular-compare's seeds: a row per run equal to its run folder's last epoch, each loss's mean
// and sample standard deviation equal to those of its rows, and a resumed comparison that
// trains nothing again.

#include <train/cli.hpp>
#include <train/compare.hpp>
#include <train/run_formats.hpp>

#include "support/fashion_mnist_files.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace fs = std::filesystem;

namespace {

/// compare.csv's rows by (loss, seed): its six numbers.
std::map<std::pair<std::string, std::string>, std::vector<double>> read_compare_csv(const fs::path& path) {
  std::istringstream in(angular::test::read_text(path));
  std::string line;
  std::getline(in, line);
  REQUIRE(line == "loss,seed,test_error_percent,map_at_r,w_inter,c_inter,wc_intra,seconds");
  std::map<std::pair<std::string, std::string>, std::vector<double>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::istringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) fields.push_back(cell);
    REQUIRE(fields.size() == 8);
    std::vector<double> numbers;
    for (size_t f = 2; f < fields.size(); ++f) numbers.push_back(std::stod(fields[f]));
    rows[{fields[0], fields[1]}] = numbers;
  }
  return rows;
}

/// The last epoch's row and the sum of the epochs' seconds of a run folder's metrics.csv.
std::pair<train::EpochRow, double> last_epoch(const fs::path& run, int64_t epochs) {
  const std::vector<train::EpochRow> rows =
      train::parse_metrics_csv(angular::test::read_text(run / "metrics.csv"), epochs, (run / "metrics.csv").string());
  double seconds = 0;
  for (const auto& r : rows) seconds += r.seconds;
  return {rows.back(), seconds};
}

int run_compare(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return train::compare_main(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

TEST_CASE("angular-compare's seed list: a count or a list, and what is wrong named", "[train][compare]") {
  CHECK(train::parse_seeds("3") == std::vector<uint64_t>{1, 2, 3});
  CHECK(train::parse_seeds("7,2,40") == std::vector<uint64_t>{7, 2, 40});
  CHECK_THROWS_WITH(train::parse_seeds("0"), Catch::Contains("--seeds 0: the count must be in [1, 1000]"));
  CHECK_THROWS_WITH(train::parse_seeds("two"), Catch::Contains("--seeds two: not a number"));
  CHECK_THROWS_WITH(train::parse_seeds("1,"), Catch::Contains("not a number"));
  CHECK_THROWS_WITH(train::parse_seeds("4,5,4"), Catch::Contains("seed 4 twice"));
}

TEST_CASE("angular-compare --seeds 2: each run's row, each loss's mean and sd, resumed without training",
          "[train][compare]") {
  const fs::path data = angular::test::fresh_dir("compare-data"), out = angular::test::fresh_dir("compare");
  angular::test::write_tiny_fashion_mnist(data, 32);
  const std::vector<std::string> args{"angular-compare", "--data", data.string(), "--losses",  "soft",         "arc",
                                      "--seeds",         "2",      "--epochs",    "2",         "--batch-size", "16",
                                      "--threads",       "1",      "--out",       out.string()};
  REQUIRE(run_compare(args) == 0);
  auto rows = read_compare_csv(out / "compare.csv");
  CHECK(rows.size() == 2 * 2 + 2 * 2);  // two runs and mean, sd per loss
  for (const std::string loss : {"soft", "arc"}) {
    INFO(loss);
    std::vector<std::vector<double>> runs;
    for (const std::string seed : {"1", "2"}) {
      REQUIRE(rows.count({loss, seed}) == 1);
      const std::vector<double>& row = rows[{loss, seed}];
      // The run's own folder, as angular-train writes it.
      const auto [last, seconds] = last_epoch(out / ("seed-" + seed) / loss, 2);
      CHECK(row[0] == Approx(100 * (1 - last.test_acc)).epsilon(1e-6));
      CHECK(row[1] == Approx(last.map_at_r).epsilon(1e-6));
      CHECK(row[2] == Approx(last.w_inter).epsilon(1e-6));
      CHECK(row[3] == Approx(last.c_inter).epsilon(1e-6));
      CHECK(row[4] == Approx(last.wc_intra).epsilon(1e-6));
      CHECK(row[5] == Approx(seconds).epsilon(1e-6));
      runs.push_back(row);
    }
    CHECK(runs[0][4] != runs[1][4]);  // the seeds made different runs
    const std::vector<double>&mean = rows[{loss, "mean"}], &sd = rows[{loss, "sd"}];
    for (size_t c = 0; c < 6; ++c) {
      INFO("column " << c);
      const double a = runs[0][c], b = runs[1][c];
      // compare.csv keeps 10 digits: the sd of two close values keeps fewer of its own.
      const double rounding = 1e-9 * (std::abs(a) + std::abs(b));
      CHECK(mean[c] == Approx((a + b) / 2).margin(rounding));
      CHECK(sd[c] == Approx(std::abs(a - b) / std::sqrt(2.0)).margin(rounding));  // n − 1 = 1
    }
  }
  const std::string markdown = angular::test::read_text(out / "compare.md");
  CHECK_THAT(markdown, Catch::Contains("| arc | 2 |") && Catch::Contains(" ± "));

  // --resume: every run is done, so nothing is trained or rewritten, and the table is the same
  // (to metrics.csv's 8 digits, which the runs are read back from).
  const fs::path checkpoint = out / "seed-2" / "arc" / "checkpoint.pt";
  const auto written = fs::last_write_time(checkpoint);
  std::vector<std::string> resumed = args;
  resumed.push_back("--resume");
  REQUIRE(run_compare(resumed) == 0);
  CHECK(fs::last_write_time(checkpoint) == written);
  const auto again = read_compare_csv(out / "compare.csv");
  REQUIRE(again.size() == rows.size());
  for (const auto& [key, numbers] : rows)
    for (size_t c = 0; c < numbers.size(); ++c) CHECK(again.at(key)[c] == Approx(numbers[c]).margin(1e-6));
}
