#pragma once
// The table of angular's losses as JSON, for the Python package to build its functions and
// modules from (angular/_table.py): per margin of MarginTraits its names, its logits in one
// line, what it reads per row, its running statistics and their starting values, and each
// setting with its type, C++ default and one-line meaning; the center loss likewise.

#include <angular/loss.hpp>

#include <optional>
#include <sstream>
#include <vector>
#include <string>
#include <type_traits>

namespace angular::ops {

/// `text` as a JSON string.
inline std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

inline std::string json_number(double value) {
  std::ostringstream s;
  s.precision(17);
  s << value;
  return s.str();
}

/// A setting's type and default as JSON fields.
template <class T>
std::string json_typed_value(const T& value) {
  if constexpr (std::is_same_v<T, std::optional<double>>)
    return "\"type\": \"float?\", \"default\": " + (value ? json_number(*value) : std::string("null"));
  else if constexpr (std::is_same_v<T, bool>)
    return std::string("\"type\": \"bool\", \"default\": ") + (value ? "true" : "false");
  else if constexpr (std::is_integral_v<T>)
    return "\"type\": \"int\", \"default\": " + std::to_string(value);
  else if constexpr (std::is_enum_v<T>)  // CenterUpdate
    return "\"type\": \"str\", \"default\": " + json_string(c10::str(value));
  else
    return "\"type\": \"float\", \"default\": " + json_number(value);
}

/// {"name": name, FIELDS, "doc": doc}.
inline std::string json_entry(const char* name, const std::string& fields, const char* doc) {
  return std::string("{\"name\": ") + json_string(name) + ", " + fields + ", \"doc\": " + json_string(doc) + "}";
}

inline std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out + "]";
}

/// The settings of an options object (its defaults as it holds them), but those that the
/// options type `Skip` has too (a module's settings beyond its functional options').
template <class Skip = void, class Options>
std::string json_settings(const Options& options) {
  std::vector<const char*> docs;
  Options::for_each_setting_doc([&](const char*, const char* doc) { docs.push_back(doc); });
  std::vector<std::string> entries;
  size_t i = 0;
  options.for_each_setting([&](const char* name, const auto& value) {
    const char* doc = docs[i++];
    if constexpr (!std::is_void_v<Skip>) {
      bool shared = false;
      Skip::for_each_setting_doc([&](const char* other, const char*) { shared |= std::string(other) == name; });
      if (shared) return;
    }
    entries.push_back(json_entry(name, json_typed_value(value), doc));
  });
  return json_list(entries);
}

inline const char* row_input_name(detail::RowInput input) {
  switch (input) {
    case detail::RowInput::none: return "none";
    case detail::RowInput::norms: return "norms";
    case detail::RowInput::norm_statistics: return "norm_statistics";
    case detail::RowInput::curriculum: return "curriculum";
  }
  TORCH_CHECK(false, "angular: unknown RowInput ", static_cast<int>(input));
}

/// One margin's entry.
template <class Module>
std::string json_margin() {
  using Options = typename Module::ModuleOptions;
  using FuncOptions = typename Module::FuncOptions;
  using Traits = detail::MarginTraits<FuncOptions>;
  std::vector<std::string> statistics;
  for (const detail::Statistic& s : Traits::kStatistics)
    statistics.push_back(json_entry(s.name, "\"start\": " + json_number(s.start), s.doc));
  return std::string("{\"name\": ") + json_string(Traits::kName) + ", \"module\": " + json_string(Traits::kModule) +
         ", \"function\": " + json_string(Traits::kFunction) + ", \"summary\": " + json_string(Traits::kSummary) +
         ", \"normalized\": " + (Traits::kNormalized ? "true" : "false") +
         ", \"row_input\": " + json_string(row_input_name(Traits::kRowInput)) +
         ", \"statistics\": " + json_list(statistics) +
         ", \"settings\": " + json_settings(FuncOptions{}) +
         ", \"module_settings\": " + json_settings<FuncOptions>(Options(1, 1)) + "}";
}

/// The cross-entropy's arguments that every loss takes, with the defaults of its options.
inline std::string json_cross_entropy() {
  const functional::ArcFaceLossFuncOptions o;
  const int64_t reduction = torch::enumtype::reduction_get_enum(o.reduction());
  const char* reduction_name = reduction == at::Reduction::None  ? "none"
                               : reduction == at::Reduction::Sum ? "sum"
                                                                 : "mean";
  return json_list({
      json_entry("reduction", "\"type\": \"str\", \"default\": " + json_string(reduction_name),
                 "\"mean\" (over the labelled samples, weighted by class_weight), \"sum\", or \"none\" (a loss per "
                 "sample)"),
      json_entry("ignore_index", json_typed_value(o.ignore_index()),
                 "samples with this label add nothing to the loss, nor to its mean"),
      json_entry("label_smoothing", json_typed_value(o.label_smoothing()),
                 "in [0, 1]: the target mixes (1 − ε)·one-hot with ε/C uniform"),
      json_entry("class_weight", "\"type\": \"Tensor?\", \"default\": null",
                 "per-class weights [C], as the weight of torch.nn.functional.cross_entropy"),
      json_entry("chunk_rows", json_typed_value(o.chunk_rows()),
                 "features-level losses: samples per chunk, each holding [chunk_rows, C] logits; 0: as many as fit "
                 "128 MiB"),
  });
}

/// {"margins": [...], "center": {"settings": [...], "module_settings": [...]}, "cross_entropy": [...]}.
inline std::string loss_table() {
  std::vector<std::string> margins;
  for_each_margin_module([&](auto tag) { margins.push_back(json_margin<typename decltype(tag)::type>()); });
  return "{\"margins\": " + json_list(margins) +
         ", \"center\": {\"settings\": " + json_settings(functional::CenterLossFuncOptions{}) +
         ", \"module_settings\": " + json_settings(CenterLossOptions(1, 1)) +
         "}, \"cross_entropy\": " + json_cross_entropy() + "}";
}

}  // namespace angular::ops
