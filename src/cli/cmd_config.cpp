#include <iostream>

#include "cli/commands.h"
#include "core/log.h"
#include "core/run_config.h"
#include "core/text.h"

namespace detkit::cli {

int run_config(const std::vector<std::string>& args) {
  std::string config_file, out_dir;
  bool keys = false;
  std::vector<std::string> overrides;
  CommonOptions common;
  OptionSet set("detkit config", "resolve and validate a run configuration");
  set.add("--config", &config_file, "YAML run configuration to start from").alias("-c").value_name("FILE").env("DETKIT_CONFIG");
  set.add("--out", &out_dir, "also write the resolved configuration to DIR/config.yaml").value_name("DIR");
  set.add("--keys", &keys, "list every configuration key with its type, default, range and meaning");
  set.overrides("override a key, e.g. epochs=50 or augment.fliplr=0 (applied after --config, in order)", &overrides);
  add_common_options(set, common);
  set.epilog(
      "The resolved configuration (defaults < --config file < key=value overrides) is printed as YAML, each\n"
      "key with its meaning. Unknown keys, wrong types and out-of-range values are errors naming the key.\n\n"
      "examples:\n  detkit config --keys\n  detkit config -c run.yaml epochs=50 lr0=0.005 --out runs/exp1");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);

  RunConfig config = resolve_run_config(config_file, overrides);
  if (keys) {
    for (const auto& k : config_keys(config_root(config))) {
      std::cout << k.key << " (" << k.type << ") = " << k.value;
      if (!k.allowed.empty()) std::cout << "  in " << k.allowed;
      std::cout << "\n    " << k.help << "\n";
    }
    return 0;
  }
  if (!out_dir.empty()) {
    const auto path = write_resolved_config(out_dir, config);
    log_info("wrote ", path.string());
  }
  std::cout << config_to_yaml(config_root(config));
  return 0;
}

}  // namespace detkit::cli
