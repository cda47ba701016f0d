#pragma once
// angular-compare's table: one row per run (loss and seed), and with several seeds per loss the
// mean and the sample standard deviation (n − 1) of every column over its seeds.

#include <cstdint>
#include <string>
#include <vector>

namespace train {

/// A run's numbers in the comparison, or a loss's mean or sd over its runs.
struct CompareRow {
  std::string loss;
  std::string seed;  // the run's seed, or "mean" / "sd" on a loss's summary rows
  double test_error_percent = 0, map_at_r = 0, w_inter = 0, c_inter = 0, wc_intra = 0, seconds = 0;
};

/// The columns of the table, in order: CSV name, title, the row's field, printf format.
struct CompareColumn {
  const char* csv_name;
  const char* title;
  double CompareRow::*value;
  const char* format;
};
inline constexpr CompareColumn kCompareColumns[] = {
    {"test_error_percent", "test error %", &CompareRow::test_error_percent, "%.2f"},
    {"map_at_r", "MAP@R", &CompareRow::map_at_r, "%.4f"},
    {"w_inter", "WInter", &CompareRow::w_inter, "%.4f"},
    {"c_inter", "CInter", &CompareRow::c_inter, "%.4f"},
    {"wc_intra", "WCIntra", &CompareRow::wc_intra, "%.4f"},
    {"seconds", "seconds", &CompareRow::seconds, "%.1f"},
};

/// --seeds: "N" is the seeds 1 … N, "a,b,c" those seeds (distinct). A bad list throws
/// std::invalid_argument that quotes it.
std::vector<uint64_t> parse_seeds(const std::string& text);

/// The mean and sd rows of each loss with two or more of `runs`, in the order the losses first
/// appear.
std::vector<CompareRow> summary_rows(const std::vector<CompareRow>& runs);

/// compare.csv: a header, the runs, then the summary rows (seed "mean" / "sd").
std::string compare_csv(const std::vector<CompareRow>& runs);

/// compare.md: the runs' table, and with several seeds the table of mean ± sd per loss.
std::string compare_markdown(const std::vector<CompareRow>& runs);

/// One line of the printed table (the header where `row` is null).
std::string compare_line(const CompareRow* row);

}  // namespace train
