// `detkit doctor`: gather facts (diag/probe.h), judge them (diag/rules.h), print the report.
//
// Everything that loads LibTorch or touches CUDA through it runs in a child process: this same binary
// started as `detkit doctor __child torch-info` or `... __child smoke DEVICE`. A LibTorch that cannot load,
// crashes or hangs then becomes a finding, and the doctor still reports everything else.
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/text.h"
#include "core/torch_plugin.h"
#include "detkit/build_info.h"
#include "diag/child.h"
#include "diag/probe.h"
#include "diag/report.h"
#include "diag/rules.h"
#include "diag/tables.h"

namespace detkit::cli {

namespace {

// The child side: one JSON object on stdout, exit 0. Runs with the plugin loaded in this process only.
int run_child_mode(const std::vector<std::string>& args) {
  nlohmann::ordered_json j;
  const std::string what = args.size() > 1 ? args[1] : "";
  if (what == "torch-info") {
    if (const auto error = torch_plugin_load_error()) {
      j["loaded"] = false;
      j["error"] = *error;
    } else {
      try {
        const TorchRuntimeInfo info = torch_plugin().runtime_info();
        j["loaded"] = true;
        j["version"] = info.torch_version;
        j["cuda"] = info.cuda_version;
        j["cudnn"] = info.cudnn_version;
        j["arch_flags"] = info.cuda_arch_flags;
        j["device_count"] = info.device_count;
        j["devices"] = info.devices;
      } catch (const Error& e) {
        j["loaded"] = false;
        j["error"] = e.message() + (e.why().empty() ? "" : ": " + e.why());
      }
    }
  } else if (what == "smoke" && args.size() > 2) {
    if (const auto error = torch_plugin_load_error()) {
      j["device"] = args[2];
      j["failed_stage"] = "load LibTorch";
      j["error"] = *error;
    } else {
      const TorchSmokeResult r = torch_plugin().smoke_test(args[2]);
      j["device"] = r.device;
      j["device_name"] = r.device_name;
      j["failed_stage"] = r.failed_stage;
      j["error"] = r.error;
      j["autocast_dtype"] = r.autocast_dtype;
      j["max_abs_diff"] = std::isfinite(r.max_abs_diff) ? r.max_abs_diff : 1e300;
      j["tolerance"] = r.tolerance;
      j["seconds"] = r.seconds;
    }
  } else {
    throw UsageError({"'detkit doctor __child' is internal", "", "run 'detkit doctor' (with --smoke for the device test)"});
  }
  std::cout << j.dump() << "\n";
  return 0;
}

std::string self_executable() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.string();
}

}  // namespace

int run_doctor(const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "__child") return run_child_mode(args);

  std::string json_out, python_site, root = "/", nvml = "libnvidia-ml.so.1", libcuda = "libcuda.so.1";
  bool smoke = false, short_form = false, no_torch = false;
  double child_timeout = 180;
  CommonOptions common;
  OptionSet set("detkit doctor", "check the GPU environment and say what to fix");
  set.add("--json", &json_out, "also write facts and findings as JSON to FILE ('-': JSON on stdout instead of the report)")
      .value_name("FILE");
  set.add("--smoke", &smoke,
          "on each visible GPU (the CPU when there is none), in a child process: allocate, run a small convolution "
          "forward and backward in fp32 and under autocast, and compare them");
  set.add("--short", &short_form, "print the short form a training run logs at its start");
  set.add("--python-site", &python_site,
          "site-packages directories to inspect for torch and tensorflow, ':'-separated (default: those of the python3 "
          "interpreters on PATH)")
      .value_name("DIR[:DIR...]");
  set.add("--root", &root,
          "inspect the system tree at DIR (a mounted image or container root) instead of this machine: its files "
          "only, without this shell's environment; NVML and libcuda are then opened only when named with "
          "--nvml-library / --cuda-library")
      .value_name("DIR");
  set.add("--nvml-library", &nvml, "the NVML library to open with dlopen").value_name("PATH");
  set.add("--cuda-library", &libcuda, "the CUDA driver library to open with dlopen").value_name("PATH");
  set.add("--no-torch", &no_torch, "do not start the child process that loads detkit's LibTorch");
  set.add("--child-timeout", &child_timeout, "seconds each child process (LibTorch probe, smoke test) may take")
      .range(1, 3600);
  add_common_options(set, common);
  set.epilog(
      "Facts come from /proc, /sys, the loader path, Python site-packages (read as files, Python is not run) and\n"
      "NVML / libcuda / libcudnn opened with dlopen, so the report works when LibTorch or CUDA cannot load.\n"
      "Exit status: 0 when there is no error finding, 1 when there is one.\n\n"
      "examples:\n  detkit doctor\n  detkit doctor --smoke --json doctor.json\n"
      "  detkit doctor --python-site /opt/venv/lib/python3.11/site-packages");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);

  diag::ProbeOptions probe;
  probe.root = root;
  const bool other_root = fs::path(root).lexically_normal() != fs::path("/");
  if (other_root && !fs::is_directory(root))
    throw UsageError({cat("--root '", root, "' is not a directory"), "", "name the directory the system tree is mounted at"});
  bool nvml_named = false, cuda_named = false;
  for (const auto& o : set.options()) {
    nvml_named = nvml_named || (o.name() == "--nvml-library" && o.was_set());
    cuda_named = cuda_named || (o.name() == "--cuda-library" && o.was_set());
  }
  // Opening this machine's driver to describe another tree would mix two systems' facts.
  probe.nvml_library = other_root && !nvml_named ? "" : nvml;
  probe.cuda_library = other_root && !cuda_named ? "" : libcuda;
  for (const auto& dir : split(python_site, ':'))
    if (!trim(dir).empty()) probe.python_site_dirs.push_back(trim(dir));
  probe.probe_cudnn = !other_root;
  // This shell's variables (LD_LIBRARY_PATH, CUDA_HOME, PATH) describe this machine, not the other tree.
  if (other_root) probe.env = std::map<std::string, std::string>{};

  log_info("gathering facts", other_root ? " from " + root : std::string());
  diag::Facts facts = diag::gather_facts(probe);
  facts.detkit_torch.built_with = DETKIT_BUILT_WITH_TORCH;
  const std::string self = self_executable();
  if (!no_torch && !other_root && facts.detkit_torch.built_with != "none") {
    log_info("loading detkit's LibTorch in a child process");
    const auto child = diag::run_child({self, "doctor", "__child", "torch-info"}, child_timeout);
    facts.detkit_torch = diag::parse_torch_info(child, DETKIT_BUILT_WITH_TORCH, child_timeout);
    facts.detkit_torch.gloo = DETKIT_BUILT_WITH_GLOO;
  }
  if (smoke) {
    facts.smoke_requested = true;
    std::vector<std::string> devices;
    for (int i = 0; i < facts.detkit_torch.device_count; ++i) devices.push_back(cat("cuda:", i));
    // Without a CUDA device the CPU path still checks that LibTorch's convolution and autocast work.
    if (devices.empty() && facts.detkit_torch.loaded) devices.push_back("cpu");
    for (const auto& device : devices) {
      log_info("smoke test on ", device, " in a child process");
      const auto child = diag::run_child({self, "doctor", "__child", "smoke", device}, child_timeout);
      facts.smoke.push_back(diag::parse_smoke(child, device, child_timeout));
    }
  }

  const auto findings = diag::evaluate_rules(facts, diag::compat_tables());
  const std::string json = diag::report_to_json(facts, findings);
  if (json_out == "-") {
    std::cout << json;
  } else {
    std::cout << (short_form ? diag::short_report(facts, findings) : diag::render_report(facts, findings));
    if (!json_out.empty()) {
      write_file_atomic(json_out, json);
      log_info("wrote ", json_out);
    }
  }
  return diag::count_findings(findings, diag::Severity::error) > 0 ? static_cast<int>(ExitCode::failed) : 0;
}

}  // namespace detkit::cli
