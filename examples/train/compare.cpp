#include "compare.hpp"

#include "run_formats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace train {

std::vector<uint64_t> parse_seeds(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return std::invalid_argument("--seeds " + text + ": " + why + " (a count N for the seeds 1 to N, or a list a,b,c)");
  };
  std::vector<uint64_t> seeds;
  std::string_view rest(text);
  while (true) {
    const size_t comma = rest.find(',');
    uint64_t seed = 0;
    if (!parse_number(rest.substr(0, comma), seed)) throw bad("not a number");
    if (std::find(seeds.begin(), seeds.end(), seed) != seeds.end())
      throw bad("seed " + std::to_string(seed) + " twice");
    seeds.push_back(seed);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (seeds.size() > 1) return seeds;
  const uint64_t count = seeds[0];
  if (count < 1 || count > 1000) throw bad("the count must be in [1, 1000]");
  seeds.clear();
  for (uint64_t s = 1; s <= count; ++s) seeds.push_back(s);
  return seeds;
}

std::vector<CompareRow> summary_rows(const std::vector<CompareRow>& runs) {
  std::vector<std::string> losses;
  for (const auto& r : runs)
    if (std::find(losses.begin(), losses.end(), r.loss) == losses.end()) losses.push_back(r.loss);
  std::vector<CompareRow> summaries;
  for (const auto& loss : losses) {
    std::vector<const CompareRow*> own;
    for (const auto& r : runs)
      if (r.loss == loss) own.push_back(&r);
    if (own.size() < 2) continue;
    CompareRow mean{loss, "mean"}, sd{loss, "sd"};
    const auto n = static_cast<double>(own.size());
    for (const auto& column : kCompareColumns) {
      double sum = 0, squares = 0;
      for (const CompareRow* r : own) sum += r->*column.value;
      const double m = sum / n;
      for (const CompareRow* r : own) squares += (r->*column.value - m) * (r->*column.value - m);
      mean.*column.value = m;
      sd.*column.value = std::sqrt(squares / (n - 1));
    }
    summaries.push_back(mean);
    summaries.push_back(sd);
  }
  return summaries;
}

std::string compare_csv(const std::vector<CompareRow>& runs) {
  std::ostringstream out;
  out.precision(10);
  out << "loss,seed";
  for (const auto& column : kCompareColumns) out << ',' << column.csv_name;
  out << "\n";
  std::vector<CompareRow> rows = runs;
  const std::vector<CompareRow> summaries = summary_rows(runs);
  rows.insert(rows.end(), summaries.begin(), summaries.end());
  for (const auto& r : rows) {
    out << r.loss << ',' << r.seed;
    for (const auto& column : kCompareColumns) out << ',' << r.*column.value;
    out << "\n";
  }
  return out.str();
}

namespace {

std::string formatted(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

}  // namespace

std::string compare_markdown(const std::vector<CompareRow>& runs) {
  std::ostringstream md;
  const auto header = [&](const char* second) {
    md << "| loss | " << second << " |";
    for (const auto& column : kCompareColumns) md << ' ' << column.title << " |";
    md << "\n|---|---|";
    for (size_t c = 0; c < std::size(kCompareColumns); ++c) md << "---|";
    md << "\n";
  };
  header("seed");
  for (const auto& r : runs) {
    md << "| " << r.loss << " | " << r.seed << " |";
    for (const auto& column : kCompareColumns) md << ' ' << formatted(column.format, r.*column.value) << " |";
    md << "\n";
  }
  const std::vector<CompareRow> summaries = summary_rows(runs);
  if (summaries.empty()) return md.str();
  md << "\nMean ± sample standard deviation over the seeds:\n\n";
  header("seeds");
  for (size_t i = 0; i < summaries.size(); i += 2) {
    const CompareRow &mean = summaries[i], &sd = summaries[i + 1];
    const auto seeds =
        std::count_if(runs.begin(), runs.end(), [&](const CompareRow& r) { return r.loss == mean.loss; });
    md << "| " << mean.loss << " | " << seeds << " |";
    for (const auto& column : kCompareColumns)
      md << ' ' << formatted(column.format, mean.*column.value) << " ± " << formatted(column.format, sd.*column.value)
         << " |";
    md << "\n";
  }
  return md.str();
}

std::string compare_line(const CompareRow* row) {
  char line[256];
  if (!row) {
    std::snprintf(line, sizeof line, "%-17s %6s %12s %8s %8s %8s %8s %8s\n", "loss", "seed", "test error %", "MAP@R",
                  "WInter", "CInter", "WCIntra", "seconds");
    return line;
  }
  std::snprintf(line, sizeof line, "%-17s %6s %12.2f %8.4f %8.4f %8.4f %8.4f %8.1f\n", row->loss.c_str(),
                row->seed.c_str(), row->test_error_percent, row->map_at_r, row->w_inter, row->c_inter, row->wc_intra,
                row->seconds);
  return line;
}

}  // namespace train
