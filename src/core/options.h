// Command-line options, declared once.
//
// Each option is declared with its name, optional alias, help text, optional environment variable and
// the variable it sets; the variable's value at declaration time is the default shown in --help. The same
// declaration drives parsing, validation (type, range, choices), environment lookup and help output.
// Precedence: declared default < environment variable < command line.
//
// Parsing errors are UsageError with the nearest valid option or choice in the remedy.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace detkit {

class Option {
 public:
  enum class Kind { flag, integer, number, text, bytes };

  Option& alias(std::string a) { alias_ = std::move(a); return *this; }  // must not clash with another name
  Option& env(std::string name) { env_ = std::move(name); return *this; }
  Option& value_name(std::string name) { value_name_ = std::move(name); return *this; }
  Option& choices(std::vector<std::string> allowed) { choices_ = std::move(allowed); return *this; }
  Option& range(double lo, double hi) { min_ = lo; max_ = hi; return *this; }
  Option& required() { required_ = true; return *this; }

  const std::string& name() const { return name_; }
  const std::string& alias_name() const { return alias_; }
  const std::string& env_name() const { return env_; }
  const std::string& help() const { return help_; }
  const std::string& default_text() const { return default_text_; }
  const std::vector<std::string>& allowed() const { return choices_; }
  Kind kind() const { return kind_; }
  bool is_required() const { return required_; }
  bool was_set() const { return set_; }
  std::string value_label() const;

 private:
  friend class OptionSet;
  std::string name_, alias_, help_, env_, value_name_, default_text_;
  Kind kind_ = Kind::text;
  std::vector<std::string> choices_;
  std::optional<double> min_, max_;
  bool required_ = false;
  bool set_ = false;
  // Parses and stores a value; returns an error description, empty when accepted.
  std::function<std::string(const std::string&)> assign_;
};

class OptionSet {
 public:
  // `command` is the full invocation name ("detkit synth"); `summary` one line for --help.
  OptionSet(std::string command, std::string summary);

  Option& add(const std::string& name, bool* target, std::string help);
  Option& add(const std::string& name, int64_t* target, std::string help);
  Option& add(const std::string& name, int* target, std::string help);
  Option& add(const std::string& name, double* target, std::string help);
  Option& add(const std::string& name, std::string* target, std::string help);
  Option& add_bytes(const std::string& name, uint64_t* target, std::string help);

  // Positional arguments (those not starting with '-'), between `min` and `max` of them.
  void positionals(std::string label, std::string help, std::vector<std::string>* target, std::size_t min,
                   std::size_t max);
  // Accepts `key=value` arguments (config overrides) into `target`, documented under `help`.
  void overrides(std::string help, std::vector<std::string>* target);
  // Free text appended to --help (examples, notes).
  void epilog(std::string text) { epilog_ = std::move(text); }

  // Applies environment variables, then `args` (without the program and command names).
  // Throws UsageError on any problem. `--help`/`-h` sets help_requested() and skips required checks.
  void parse(const std::vector<std::string>& args);
  bool help_requested() const { return help_requested_; }

  std::string help_text() const;
  const std::string& command() const { return command_; }
  const std::string& summary() const { return summary_; }
  const std::deque<Option>& options() const { return options_; }

 private:
  Option& declare(const std::string& name, Option::Kind kind, std::string help, std::string default_text,
                  std::function<std::string(const std::string&)> assign);
  Option* find(const std::string& flag);
  void apply(Option& option, const std::string& value, const std::string& source, bool from_env = false);
  std::vector<std::string> all_names() const;

  std::string command_, summary_, epilog_;
  std::deque<Option> options_;
  std::string positional_label_, positional_help_;
  std::vector<std::string>* positional_target_ = nullptr;
  std::size_t positional_min_ = 0, positional_max_ = 0;
  std::string overrides_help_;
  std::vector<std::string>* overrides_target_ = nullptr;
  bool help_requested_ = false;
};

}  // namespace detkit
