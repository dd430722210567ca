// Options described once, in the manner of ceres-solver's Solver::Options with its types.h string conversions.
// Every options struct (SdeOptions, SamplerOptions, the study's, training's, likelihood's, ...) has one table of
// OptionSpec entries: key, member, default (the struct's own), help, allowed values or check, and conversions to
// and from text and JSON. Whatever names an option is derived from its table: the command-line and INI
// registration (experiments/cli/options_cli.hpp), the resolved-options record of every output file, the
// checkpoint's JSON, the study's list-valued axes with their study.ini, results.csv columns and run labels, and
// `scoresde list`. Adding an option to a struct is one entry in its table.
//
// Values travel as text (command line, INI, study lists) or JSON (records, checkpoints). A text value is checked
// by the entry that owns it, so a bad value gets the same message wherever it is given: "--steps = 0: must be
// >= 1", "--noise = x: choose one of independent, brownian_tree".
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/errors.hpp"

namespace scoresde {

// ------------------------------------------------------------------------------------------------ enum names

// Enum <-> name, once per enum: specialise EnumNames<E> with
//   static constexpr std::array<std::pair<E, std::string_view>, N> values{{{E::a, "a"}, ...}};
// and every to_string / from-string of that enum goes through enum_name / enum_from_name. Optionally also
//   static constexpr std::string_view what = "SDE";                 // "unknown SDE; choose one of ..."
//   static constexpr std::array<std::string_view, N> notes{...};     // per name, in parentheses after it there
//   static constexpr std::array<std::pair<E, std::string_view>, M> aliases{...};  // other spellings read, never
//                                                                                 // written
template <class E>
struct EnumNames;

template <class E>
concept NamedEnum = std::is_enum_v<E> && requires {
  EnumNames<E>::values;
};

// "unknown SDE; choose one of vp, subvp, ve" when EnumNames<E> has `static constexpr std::string_view what`,
// else "choose one of ..."; each name followed by its note, where EnumNames<E> has notes.
template <NamedEnum E>
std::string enum_choice_problem() {
  std::string names;
  for (std::size_t i = 0; i < EnumNames<E>::values.size(); ++i) {
    names += (names.empty() ? "" : ", ") + std::string(EnumNames<E>::values[i].second);
    if constexpr (requires { EnumNames<E>::notes; }) {
      static_assert(EnumNames<E>::notes.size() == EnumNames<E>::values.size(), "one note per name");
      if (!EnumNames<E>::notes[i].empty()) names += fmt::format(" ({})", EnumNames<E>::notes[i]);
    }
  }
  if constexpr (requires { EnumNames<E>::what; })
    return fmt::format("unknown {}; choose one of {}", EnumNames<E>::what, names);
  else
    return fmt::format("choose one of {}", names);
}

template <NamedEnum E>
std::string_view enum_name(E value) {
  for (const auto& [v, name] : EnumNames<E>::values)
    if (v == value) return name;
  return "?";
}

template <NamedEnum E>
std::vector<std::string> enum_names() {
  std::vector<std::string> names;
  for (const auto& [v, name] : EnumNames<E>::values) names.emplace_back(name);
  return names;
}

template <NamedEnum E>
std::optional<E> enum_from_name(std::string_view name) {
  for (const auto& [v, n] : EnumNames<E>::values)
    if (n == name) return v;
  if constexpr (requires { EnumNames<E>::aliases; })
    for (const auto& [v, n] : EnumNames<E>::aliases)
      if (n == name) return v;
  return std::nullopt;
}

// The value named `name`, or ConfigError "--option = name: choose one of a, b, c".
template <NamedEnum E>
E enum_from_name(std::string_view name, std::string_view option) {
  if (const auto v = enum_from_name<E>(name)) return *v;
  throw ConfigError(fmt::format("--{} = {}: {}", option, name, enum_choice_problem<E>()));
}

// ------------------------------------------------------------------------------------------------ text values

namespace option_text {

template <class T>
bool parses_as_integer(std::string_view text, T& value) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

// The problem with `text` as an integer of type T, or nothing.
template <class T>
std::optional<std::string> integer_problem(std::string_view text) {
  T value;
  if (parses_as_integer(text, value)) return std::nullopt;
  long long wide;
  unsigned long long uwide;
  if (parses_as_integer(text, wide) || parses_as_integer(text, uwide))
    return fmt::format("expected an integer in [{}, {}]", std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
  return std::string("expected an integer");
}

inline std::optional<std::string> number_problem(const std::string& text) {
  char* end = nullptr;
  std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) return std::string("expected a number");
  return std::nullopt;
}

inline std::optional<bool> on_off(std::string_view text) {
  if (text == "on" || text == "true" || text == "1" || text == "yes") return true;
  if (text == "off" || text == "false" || text == "0" || text == "no") return false;
  return std::nullopt;
}

// Comma-separated lists ("vp,ve", "10,100,1000"): items trimmed, empty items dropped.
inline std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    const auto first = item.find_first_not_of(" \t");
    const auto last = item.find_last_not_of(" \t");
    if (first != std::string::npos) items.push_back(item.substr(first, last - first + 1));
    start = end + 1;
  }
  return items;
}

inline std::string join_list(const std::vector<std::string>& items) {
  return fmt::format("{}", fmt::join(items, ","));
}

// The items of a comma-separated list into `out`, each checked by `item` (when given), which may rewrite it in place
// (to its canonical text). Returns the problem with an empty list, or with the first bad item: "\"x\": problem";
// `out` is left as it was then.
inline std::optional<std::string> read_list(const std::string& text, std::vector<std::string>& out,
                                            const std::function<std::optional<std::string>(std::string&)>& item = {}) {
  auto items = split_list(text);
  if (items.empty()) return std::string("the list is empty; give one or more comma-separated values");
  if (item)
    for (auto& value : items) {
      const std::string given = value;
      if (auto problem = item(value)) return fmt::format("\"{}\": {}", given, *problem);
    }
  out = std::move(items);
  return std::nullopt;
}

// A JSON value as the text a command line or INI file would give it (inf and nan as such: JSON writes them null).
inline std::string from_json(const nlohmann::ordered_json& value) {
  if (value.is_number_float() && !std::isfinite(value.template get<double>()))
    return fmt::format("{}", value.template get<double>());
  return value.is_string() ? value.template get<std::string>() : value.dump();
}

}  // namespace option_text

// ------------------------------------------------------------------------------------------------ the table

// The study's use of an option of SamplerOptions (experiments/study/).
enum class StudyRole {
  shared,  // one value for every run of the study
  axis,    // a comma-separated list: every value is a separate sampler configuration
  budget,  // a comma-separated list: the inner axis of a configuration (steps; tolerances of adaptive methods)
  own,     // the study has an option of its own for it (seed: first replicate seed; threads)
};

template <class S>
struct OptionSpec {
  std::string key;         // long option name: also the INI key and the JSON key of records
  char short_name = 0;     // e.g. 'n' for -n/--samples
  std::string value_name;  // N, X, NAME, on|off: for --help
  std::string help;
  std::string group;      // a heading for --help, where a command shows several groups
  // Absent unless given, so it has no default: an std::optional member, or a member whose default the command
  // works out when it is not given (train's SDE-dependent --parameterization, --time-sampling, --train-eps).
  bool optional = false;
  // Reads a text value into the struct: nothing, or the problem ("must be >= 1"), which the caller words as
  // "--key = text: problem" (command line) or "FILE: key "key" = text: problem" (INI).
  std::function<std::optional<std::string>(S&, const std::string&)> parse;
  // The value as JSON: what records, checkpoints and study.ini hold; null when an optional member is unset.
  std::function<nlohmann::ordered_json(const S&)> get;
  // The allowed names of a choice (enum names, or a registry's names), for --help and `scoresde list`.
  std::function<std::vector<std::string>()> choices;

  // For SamplerOptions: which --sampler values use the option (empty: all), and finer conditions of use (the
  // Langevin snr only with a corrector, tolerances only for adaptive methods). What the study crosses and
  // what results.csv and `scoresde list` show follow from these.
  std::vector<std::string> samplers;
  std::function<bool(const S&)> applies;
  // A default that depends on the sampler ({sampler, value text}), applied by resolve_sampler_defaults when the
  // option was not given; the struct's own default holds otherwise. Shown by --help.
  std::vector<std::pair<std::string, std::string>> sampler_defaults;
  StudyRole study = StudyRole::shared;
  std::string column;  // results.csv column ("" none); its cell is `cell`, or `get` where the option applies
  std::function<nlohmann::ordered_json(const S&)> cell;
  std::string label_format;                // a run label's part, e.g. " snr {}" (fmt, the value's text); "" none
  std::string id_format;                   // the run id's part, e.g. "_snr{}"
  std::string paired_with;                 // a budget whose empty list takes that budget's values (atol: rtol)
  std::function<bool(const S&)> in_label;  // shown in the label and id only then (default: where it applies)
  std::function<std::string(const S&)> label_value;  // the value as labels and ids show it (default: its text)

  // Setters for building tables: the samplers that use the option, its condition of use, its study role with its
  // results.csv column and run label/id parts, and when those parts are shown.
  OptionSpec& for_samplers(std::vector<std::string> names) {
    samplers = std::move(names);
    return *this;
  }
  OptionSpec& when(std::function<bool(const S&)> condition) {
    applies = std::move(condition);
    return *this;
  }
  OptionSpec& as_axis(std::string column_name, std::string label, std::string id) {
    study = StudyRole::axis;
    column = std::move(column_name);
    label_format = std::move(label);
    id_format = std::move(id);
    return *this;
  }
  OptionSpec& as_budget(std::string column_name, std::string id) {
    study = StudyRole::budget;
    column = std::move(column_name);
    id_format = std::move(id);
    return *this;
  }
  OptionSpec& shown_when(std::function<bool(const S&)> condition) {
    in_label = std::move(condition);
    return *this;
  }

  // "-n/--samples" or "--steps": how a user spells it.
  std::string display_name() const {
    return short_name ? fmt::format("-{}/--{}", short_name, key) : fmt::format("--{}", key);
  }
  bool used_by(const S& s) const { return !applies || applies(s); }
  bool shown(const S& s) const { return in_label ? used_by(s) && in_label(s) : used_by(s); }
  bool shown_in_label(const S& s) const { return !label_format.empty() && shown(s); }
  bool shown_in_id(const S& s) const { return !id_format.empty() && shown(s); }
  // Sets the value from text, or throws ConfigError "--key = text: problem".
  void set(S& s, const std::string& text) const {
    if (const auto problem = parse(s, text))
      throw ConfigError(fmt::format("{} = {}: {}", display_name(), text, *problem));
  }
  // The value as text (the form of --help defaults and study.ini); "" for an unset optional.
  std::string text(const S& s) const {
    const auto j = get(s);
    return j.is_null() ? std::string() : option_text::from_json(j);
  }
  // The value as a run label or id shows it.
  std::string label_text(const S& s) const { return label_value ? label_value(s) : text(s); }
  // The sampler-dependent default for `sampler`, if one is declared.
  std::optional<std::string> default_for(const std::string& sampler) const {
    for (const auto& [name, value] : sampler_defaults)
      if (name == sampler) return value;
    return std::nullopt;
  }
};

template <class S>
using OptionTable = std::vector<OptionSpec<S>>;

// The entry for `key`, or nullptr.
template <class S>
const OptionSpec<S>* find_option(const OptionTable<S>& table, std::string_view key) {
  for (const auto& spec : table)
    if (spec.key == key) return &spec;
  return nullptr;
}

// Every option into `out` under its key, in table order (nulls for unset optionals are left out).
template <class S>
void record_options(const OptionTable<S>& table, const S& s, nlohmann::ordered_json& out) {
  for (const auto& spec : table) {
    auto value = spec.get(s);
    if (!value.is_null()) out[spec.key] = std::move(value);
  }
}

// Checks every value of `s` against its entry, as if it had been given as text: what a C++ caller who sets the
// struct directly gets from validate(). ConfigError "--key = text: problem".
template <class S>
void check_options(const OptionTable<S>& table, const S& s) {
  for (const auto& spec : table) {
    const std::string text = spec.text(s);
    if (spec.optional && text.empty()) continue;
    S scratch;
    spec.set(scratch, text);
  }
}

// Reads every key of `table` that `j` holds (JSON written by record_options). Unknown keys are left alone; a value
// of the wrong type or out of range is an InputError naming `source` and the key.
template <class S>
void read_options(const OptionTable<S>& table, const nlohmann::json& j, S& s, const std::string& source) {
  for (const auto& spec : table) {
    if (!j.contains(spec.key) || j[spec.key].is_null()) continue;
    const auto& value = j[spec.key];
    // An array is read as its JSON text (an option holding a list of numbers: the discrete schedule's).
    if (!value.is_string() && !value.is_number() && !value.is_boolean() && !value.is_array())
      throw InputError(fmt::format("{}: \"{}\" is not a value ({})", source, spec.key, value.dump()));
    const std::string text = value.is_string() ? value.template get<std::string>() : value.dump();
    if (const auto problem = spec.parse(s, text))
      throw InputError(fmt::format("{}: \"{}\" = {}: {}", source, spec.key, text, *problem));
  }
}

// ------------------------------------------------------------------------------------------------ builders

// Checks of one value: nothing when the value is allowed, else what is allowed.
template <class T>
using ValueCheck = std::function<std::optional<std::string>(const T&)>;

template <class T>
ValueCheck<T> at_least(T low) {
  return [low](const T& v) -> std::optional<std::string> {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isfinite(v) && v >= low) return std::nullopt;
    } else {
      if (v >= low) return std::nullopt;
    }
    return fmt::format("must be >= {}", low);
  };
}

template <class T>
ValueCheck<T> positive() {
  return [](const T& v) -> std::optional<std::string> {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isfinite(v) && v > 0) return std::nullopt;
    } else {
      if (v > 0) return std::nullopt;
    }
    return std::string("must be > 0");
  };
}

// A check that `ok` holds for the value, else the problem `requirement` ("must be in [0, 1)").
template <class T>
ValueCheck<T> check_that(std::function<bool(const T&)> ok, std::string requirement) {
  return [ok = std::move(ok), requirement = std::move(requirement)](const T& v) -> std::optional<std::string> {
    if (ok(v)) return std::nullopt;
    return requirement;
  };
}

namespace option_detail {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {
  using value_type = T;
  using type = T;
};

// The value type of a member: T for T and for std::optional<T>.
template <class M>
using value_type_t = typename std::conditional_t<is_optional<M>::value, is_optional<M>, std::type_identity<M>>::type;

template <class T>
std::optional<std::string> parse_value(const std::string& text, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    const auto v = option_text::on_off(text);
    if (!v) return std::string("choose on or off");
    out = *v;
  } else if constexpr (NamedEnum<T>) {
    const auto v = enum_from_name<T>(text);
    if (!v) return enum_choice_problem<T>();
    out = *v;
  } else if constexpr (std::is_integral_v<T>) {
    if (auto problem = option_text::integer_problem<T>(text)) return problem;
    option_text::parses_as_integer(text, out);
  } else if constexpr (std::is_floating_point_v<T>) {
    if (auto problem = option_text::number_problem(text)) return problem;
    out = std::strtod(text.c_str(), nullptr);
  } else {
    static_assert(std::is_same_v<T, std::string>);
    out = text;
  }
  return std::nullopt;
}

template <class T>
nlohmann::ordered_json to_json_value(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "on" : "off";
  } else if constexpr (NamedEnum<T>) {
    return std::string(enum_name(v));
  } else {
    return v;
  }
}

template <class T>
std::string value_name() {
  if constexpr (std::is_same_v<T, bool>)
    return "on|off";
  else if constexpr (NamedEnum<T>)
    return "NAME";
  else if constexpr (std::is_integral_v<T>)
    return "N";
  else if constexpr (std::is_floating_point_v<T>)
    return "X";
  else
    return "TEXT";
}

}  // namespace option_detail

// An entry for a member of type T (an integer, a floating-point number, bool written on|off, std::string, an
// enum with EnumNames, or an std::optional of one of these), with an optional check of its value.
template <class S, class M>
OptionSpec<S> option(std::string key, M S::*member, std::string help,
                     ValueCheck<option_detail::value_type_t<M>> check = {}) {
  OptionSpec<S> spec;
  spec.key = std::move(key);
  spec.help = std::move(help);
  using T = option_detail::value_type_t<M>;
  spec.optional = option_detail::is_optional<M>::value;
  spec.value_name = option_detail::value_name<T>();
  spec.parse = [member, check](S& s, const std::string& text) -> std::optional<std::string> {
    T value{};
    if (auto problem = option_detail::parse_value(text, value)) return problem;
    if (check)
      if (auto problem = check(value)) return problem;
    s.*member = value;
    return std::nullopt;
  };
  spec.get = [member](const S& s) -> nlohmann::ordered_json {
    const auto& v = s.*member;
    if constexpr (option_detail::is_optional<M>::value)
      return v ? option_detail::to_json_value(*v) : nlohmann::ordered_json();
    else
      return option_detail::to_json_value(v);
  };
  if constexpr (NamedEnum<T>) spec.choices = [] { return enum_names<T>(); };
  return spec;
}

// An entry for a value of type T (as for option) that the struct holds in another form, such as a layer width of
// MlpArchitecture::hidden: `get` reads it from the struct and `put` stores a value that passed `check`.
template <class S, class T>
OptionSpec<S> derived_option(std::string key, std::function<T(const S&)> get, std::function<void(S&, const T&)> put,
                             std::string help, ValueCheck<T> check = {}) {
  OptionSpec<S> spec;
  spec.key = std::move(key);
  spec.help = std::move(help);
  spec.value_name = option_detail::value_name<T>();
  spec.parse = [put, check](S& s, const std::string& text) -> std::optional<std::string> {
    T value{};
    if (auto problem = option_detail::parse_value(text, value)) return problem;
    if (check)
      if (auto problem = check(value)) return problem;
    put(s, value);
    return std::nullopt;
  };
  spec.get = [get](const S& s) { return option_detail::to_json_value(get(s)); };
  if constexpr (NamedEnum<T>) spec.choices = [] { return enum_names<T>(); };
  return spec;
}

// An entry for a std::string member whose value is one of `names()` (a registry's names, read when checked).
template <class S>
OptionSpec<S> choice(std::string key, std::string S::*member, std::string help,
                     std::function<std::vector<std::string>()> names, std::string unknown = "unknown") {
  OptionSpec<S> spec;
  spec.key = std::move(key);
  spec.help = std::move(help);
  spec.value_name = "NAME";
  spec.choices = names;
  spec.parse = [member, names, unknown](S& s, const std::string& text) -> std::optional<std::string> {
    const auto allowed = names();
    if (std::find(allowed.begin(), allowed.end(), text) == allowed.end())
      return fmt::format("{}; choose one of {}", unknown, fmt::join(allowed, ", "));
    s.*member = text;
    return std::nullopt;
  };
  spec.get = [member](const S& s) { return nlohmann::ordered_json(s.*member); };
  return spec;
}

// An entry of a struct's member struct (the study's SDE parameters, say) as an entry of the outer struct: same key,
// help and checks.
template <class Outer, class Inner>
OptionSpec<Outer> nested_option(const OptionSpec<Inner>& inner, Inner Outer::*member) {
  OptionSpec<Outer> spec;
  spec.key = inner.key;
  spec.short_name = inner.short_name;
  spec.value_name = inner.value_name;
  spec.help = inner.help;
  spec.group = inner.group;
  spec.optional = inner.optional;
  spec.choices = inner.choices;
  spec.parse = [parse = inner.parse, member](Outer& s, const std::string& text) { return parse(s.*member, text); };
  spec.get = [get = inner.get, member](const Outer& s) { return get(s.*member); };
  return spec;
}

// A comma-separated list of strings, each item checked by `item_check` (when given); an empty list is refused.
template <class S>
OptionSpec<S> list_option(std::string key, std::vector<std::string> S::*member, std::string help,
                          std::function<std::optional<std::string>(const std::string&)> item_check = {}) {
  OptionSpec<S> spec;
  spec.key = std::move(key);
  spec.help = std::move(help);
  spec.value_name = "LIST";
  spec.parse = [member, item_check](S& s, const std::string& text) {
    if (!item_check) return option_text::read_list(text, s.*member);
    return option_text::read_list(text, s.*member, [&](std::string& item) { return item_check(item); });
  };
  spec.get = [member](const S& s) { return nlohmann::ordered_json(option_text::join_list(s.*member)); };
  return spec;
}

}  // namespace scoresde
