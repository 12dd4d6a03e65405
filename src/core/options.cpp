#include "core/options.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "core/error.h"
#include "core/text.h"

namespace detkit {

namespace {
std::string number_text(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}
}  // namespace

std::string Option::value_label() const {
  if (kind_ == Kind::flag) return "";
  if (!choices_.empty()) return join(choices_, "|");
  if (!value_name_.empty()) return value_name_;
  switch (kind_) {
    case Kind::integer: return "N";
    case Kind::number: return "X";
    case Kind::bytes: return "SIZE";
    default: return "TEXT";
  }
}

OptionSet::OptionSet(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

Option& OptionSet::declare(const std::string& name, Option::Kind kind, std::string help, std::string default_text,
                           std::function<std::string(const std::string&)> assign) {
  // Two options with one name would make the second unreachable: a bug in the command, not user input.
  DETKIT_ASSERT(find(name) == nullptr, command_ + " declares " + name + " twice");
  Option option;
  option.name_ = name;
  option.kind_ = kind;
  option.help_ = std::move(help);
  option.default_text_ = std::move(default_text);
  option.assign_ = std::move(assign);
  options_.push_back(std::move(option));
  return options_.back();
}

Option& OptionSet::add(const std::string& name, bool* target, std::string help) {
  return declare(name, Option::Kind::flag, std::move(help), *target ? "on" : "off", [target](const std::string& v) {
    const auto parsed = parse_bool(v);
    if (!parsed) return std::string("expects true or false");
    *target = *parsed;
    return std::string();
  });
}

Option& OptionSet::add(const std::string& name, int64_t* target, std::string help) {
  return declare(name, Option::Kind::integer, std::move(help), std::to_string(*target), [target](const std::string& v) {
    const auto parsed = parse_int(v);
    if (!parsed) return std::string("expects an integer");
    *target = *parsed;
    return std::string();
  });
}

Option& OptionSet::add(const std::string& name, int* target, std::string help) {
  return declare(name, Option::Kind::integer, std::move(help), std::to_string(*target), [target](const std::string& v) {
    const auto parsed = parse_int(v);
    if (!parsed || *parsed < INT32_MIN || *parsed > INT32_MAX) return std::string("expects an integer");
    *target = static_cast<int>(*parsed);
    return std::string();
  });
}

Option& OptionSet::add(const std::string& name, double* target, std::string help) {
  return declare(name, Option::Kind::number, std::move(help), number_text(*target), [target](const std::string& v) {
    const auto parsed = parse_double(v);
    if (!parsed) return std::string("expects a number");
    *target = *parsed;
    return std::string();
  });
}

Option& OptionSet::add(const std::string& name, std::string* target, std::string help) {
  return declare(name, Option::Kind::text, std::move(help), *target, [target](const std::string& v) {
    *target = v;
    return std::string();
  });
}

Option& OptionSet::add_bytes(const std::string& name, uint64_t* target, std::string help) {
  return declare(name, Option::Kind::bytes, std::move(help), format_bytes(*target), [target](const std::string& v) {
    const auto parsed = parse_bytes(v);
    if (!parsed) return std::string("expects a size such as 512MiB, 24GiB or 4096");
    *target = *parsed;
    return std::string();
  });
}

void OptionSet::positionals(std::string label, std::string help, std::vector<std::string>* target, std::size_t min,
                            std::size_t max) {
  positional_label_ = std::move(label);
  positional_help_ = std::move(help);
  positional_target_ = target;
  positional_min_ = min;
  positional_max_ = max;
}

void OptionSet::overrides(std::string help, std::vector<std::string>* target) {
  overrides_help_ = std::move(help);
  overrides_target_ = target;
}

std::vector<std::string> OptionSet::all_names() const {
  std::vector<std::string> names{"--help"};
  for (const auto& o : options_) {
    names.push_back(o.name_);
    if (!o.alias_.empty()) names.push_back(o.alias_);
  }
  return names;
}

Option* OptionSet::find(const std::string& flag) {
  for (auto& o : options_)
    if (o.name_ == flag || (!o.alias_.empty() && o.alias_ == flag)) return &o;
  return nullptr;
}

void OptionSet::apply(Option& option, const std::string& value, const std::string& source, bool from_env) {
  const std::string form = option.kind_ == Option::Kind::flag ? option.name_ : option.name_ + " " + option.value_label();
  const std::string example = from_env ? cat("set ", option.env_, " to a valid value (", form, ") or unset it") : "use " + form;
  if (!option.choices_.empty()) {
    bool ok = false;
    for (const auto& c : option.choices_) ok = ok || c == value;
    if (!ok) {
      const auto near = nearest(value, option.choices_);
      throw UsageError({cat(source, " must be one of ", join(option.choices_, ", "), "; got '", value, "'"), "",
                        near ? cat("did you mean '", *near, "'?") : example});
    }
  }
  const std::string problem = option.assign_(value);
  if (!problem.empty())
    throw UsageError({cat(source, " ", problem, ", got '", value, "'"), "", example});
  if (option.min_ || option.max_) {
    const double v = option.kind_ == Option::Kind::bytes ? static_cast<double>(*parse_bytes(value))
                                                         : parse_double(value).value_or(NAN);
    if ((option.min_ && v < *option.min_) || (option.max_ && v > *option.max_))
      throw UsageError({cat(source, " is out of range: ", value), "",
                        cat("use a value between ", number_text(option.min_.value_or(-INFINITY)), " and ",
                            number_text(option.max_.value_or(INFINITY)))});
  }
  option.set_ = true;
}

void OptionSet::parse(const std::vector<std::string>& args) {
  for (auto& option : options_) {
    if (option.env_.empty()) continue;
    if (const char* value = std::getenv(option.env_.c_str()); value && *value)
      apply(option, value, cat("environment variable ", option.env_, " (for ", option.name_, ")"), true);
  }
  std::vector<std::string> positional;
  bool only_positional = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (only_positional || arg == "-" || arg.empty() || arg[0] != '-') {
      if (!only_positional && overrides_target_ && arg.find('=') != std::string::npos && arg[0] != '=') {
        overrides_target_->push_back(arg);
      } else {
        positional.push_back(arg);
      }
      continue;
    }
    if (arg == "--") {
      only_positional = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      continue;
    }
    std::string flag = arg, value;
    bool has_value = false;
    if (const auto eq = arg.find('='); eq != std::string::npos && starts_with(arg, "--")) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    Option* option = find(flag);
    if (!option && starts_with(flag, "--no-") && !has_value) {
      Option* negated = find("--" + flag.substr(5));
      if (negated && negated->kind_ == Option::Kind::flag) {
        apply(*negated, "false", "option " + flag);
        continue;
      }
    }
    if (!option) {
      const auto near = nearest(flag, all_names());
      throw UsageError({cat("unknown option '", flag, "' for '", command_, "'"), "",
                        near ? cat("did you mean '", *near, "'? (see '", command_, " --help')")
                             : cat("see '", command_, " --help' for the options it takes")});
    }
    if (option->kind_ == Option::Kind::flag) {
      apply(*option, has_value ? value : "true", "option " + flag);
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size())
        throw UsageError({cat("option '", flag, "' needs a value"), "", cat("use ", option->name_, " ", option->value_label())});
      value = args[++i];
    }
    apply(*option, value, "option " + flag);
  }
  if (help_requested_) return;
  for (const auto& option : options_)
    if (option.required_ && !option.set_)
      throw UsageError({cat("'", command_, "' needs ", option.name_), "",
                        cat("add ", option.name_, " ", option.value_label(), " (", option.help_, ")")});
  if (positional_target_) {
    if (positional.size() < positional_min_)
      throw UsageError({cat("'", command_, "' needs ", positional_label_), "",
                        cat("usage: ", command_, " ", positional_label_, " [options]")});
    if (positional.size() > positional_max_)
      throw UsageError({cat("too many arguments for '", command_, "': '", positional.back(), "'"), "",
                        cat("see '", command_, " --help'")});
    *positional_target_ = positional;
  } else if (!positional.empty()) {
    throw UsageError({cat("'", command_, "' takes no argument '", positional.front(), "'"),
                      overrides_target_ ? "configuration overrides are written key=value" : "",
                      cat("see '", command_, " --help'")});
  }
}

std::string OptionSet::help_text() const {
  std::ostringstream out;
  out << command_ << ": " << summary_ << "\n\nusage: " << command_;
  if (positional_target_) out << " " << positional_label_;
  out << " [options]";
  if (overrides_target_) out << " [key=value ...]";
  out << "\n";
  if (positional_target_) out << "\n  " << positional_label_ << "\n      " << positional_help_ << "\n";
  if (overrides_target_) out << "\n  key=value\n      " << overrides_help_ << "\n";
  out << "\noptions:\n";
  for (const auto& o : options_) {
    std::string head = "  " + o.name_;
    if (!o.alias_.empty()) head = "  " + o.alias_ + ", " + o.name_;
    if (o.kind_ != Option::Kind::flag) head += " " + o.value_label();
    out << head << "\n      " << o.help_;
    std::vector<std::string> notes;
    if (o.required_) notes.push_back("required");
    else notes.push_back("default: " + (o.default_text_.empty() ? std::string("none") : o.default_text_));
    if (!o.env_.empty()) notes.push_back("env: " + o.env_);
    out << " (" << join(notes, "; ") << ")\n";
  }
  out << "  -h, --help\n      show this help and exit\n";
  if (!epilog_.empty()) out << "\n" << epilog_ << "\n";
  return out.str();
}

}  // namespace detkit
