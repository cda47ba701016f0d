#pragma once
// The table of angular's losses as JSON, for the Python package to build its functions and
// modules from (angular/_table.py): per margin of MarginTraits its names, its logits in one
// line, what it reads per row, its running statistics and their starting values, and each
// setting with its type, C++ default and one-line meaning; the center loss likewise.

#include <angular/loss.hpp>

#include <optional>
#include <sstream>
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

/// The settings of an options object (its defaults as it holds them) as a JSON list.
template <class Options>
std::string json_settings(const Options& options) {
  std::vector<std::string> docs;
  Options::for_each_setting_doc([&](const char*, const char* doc) { docs.emplace_back(doc); });
  std::string out = "[";
  size_t i = 0;
  options.for_each_setting([&](const char* name, const auto& value) {
    out += (i ? ", {" : "{") + std::string("\"name\": ") + json_string(name) + ", " + json_typed_value(value) +
           ", \"doc\": " + json_string(docs[i]) + "}";
    ++i;
  });
  return out + "]";
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
  std::string statistics = "[";
  for (const detail::Statistic& s : Traits::kStatistics)
    statistics += (statistics.size() > 1 ? ", {" : "{") + std::string("\"name\": ") + json_string(s.name) +
                  ", \"start\": " + json_number(s.start) + ", \"doc\": " + json_string(s.doc) + "}";
  statistics += "]";
  // The module's own settings beyond the functional ones (the momentum of the statistics).
  std::string module_only = "[";
  Options::for_each_setting_doc([&](const char* name, const char* doc) {
    bool functional = false;
    FuncOptions::for_each_setting_doc([&](const char* f, const char*) { functional |= std::string(f) == name; });
    if (functional) return;
    double value = 0;
    Options(1, 1).for_each_setting([&](const char* n, const auto& v) {
      if constexpr (std::is_arithmetic_v<std::decay_t<decltype(v)>>)
        if (std::string(n) == name) value = static_cast<double>(v);
    });
    module_only += (module_only.size() > 1 ? ", {" : "{") + std::string("\"name\": ") + json_string(name) +
                   ", \"type\": \"float\", \"default\": " + json_number(value) + ", \"doc\": " + json_string(doc) +
                   "}";
  });
  module_only += "]";
  return std::string("{\"name\": ") + json_string(Traits::kName) + ", \"module\": " + json_string(Traits::kModule) +
         ", \"function\": " + json_string(Traits::kFunction) + ", \"summary\": " + json_string(Traits::kSummary) +
         ", \"normalized\": " + (Traits::kNormalized ? "true" : "false") +
         ", \"row_input\": " + json_string(row_input_name(Traits::kRowInput)) + ", \"statistics\": " + statistics +
         ", \"settings\": " + json_settings(FuncOptions{}) + ", \"module_settings\": " + module_only + "}";
}

/// The cross-entropy's arguments that every loss takes, with the defaults of its options.
inline std::string json_cross_entropy() {
  const functional::ArcFaceLossFuncOptions o;
  const int64_t reduction = torch::enumtype::reduction_get_enum(o.reduction());
  const char* reduction_name = reduction == at::Reduction::None  ? "none"
                               : reduction == at::Reduction::Sum ? "sum"
                                                                 : "mean";
  const auto field = [](const char* name, const std::string& typed, const char* doc) {
    return std::string("{\"name\": ") + json_string(name) + ", " + typed + ", \"doc\": " + json_string(doc) + "}";
  };
  return "[" +
         field("reduction", "\"type\": \"str\", \"default\": " + json_string(reduction_name),
               "\"mean\" (over the labelled samples, weighted by class_weight), \"sum\", or \"none\" (a loss per sample)") +
         ", " +
         field("ignore_index", json_typed_value(o.ignore_index()),
               "samples with this label add nothing to the loss, nor to its mean") +
         ", " +
         field("label_smoothing", json_typed_value(o.label_smoothing()),
               "in [0, 1]: the target mixes (1 − ε)·one-hot with ε/C uniform") +
         ", " +
         field("class_weight", "\"type\": \"Tensor?\", \"default\": null",
               "per-class weights [C], as the weight of torch.nn.functional.cross_entropy") +
         ", " +
         field("chunk_rows", json_typed_value(o.chunk_rows()),
               "features-level losses: samples per chunk, each holding [chunk_rows, C] logits; 0: as many as fit "
               "128 MiB") +
         "]";
}

/// {"margins": [...], "center": {"settings": [...], "module_settings": [...]}, "cross_entropy": [...]}.
inline std::string loss_table() {
  std::string margins;
  for_each_margin_module([&](auto tag) {
    margins += (margins.empty() ? "" : ", ") + json_margin<typename decltype(tag)::type>();
  });
  const std::string center_settings = json_settings(functional::CenterLossFuncOptions{});
  return "{\"margins\": [" + margins + "], \"center\": {\"settings\": " + center_settings +
         ", \"module_settings\": " + json_settings(CenterLossOptions(1, 1)) +
         "}, \"cross_entropy\": " + json_cross_entropy() + "}";
}

}  // namespace angular::ops
