#include "diag/report.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/text.h"
#include "diag/version.h"

namespace detkit::diag {

int count_findings(const std::vector<Finding>& findings, Severity severity) {
  int n = 0;
  for (const auto& f : findings) n += f.severity == severity;
  return n;
}

namespace {

std::string or_unknown(const std::string& s) { return s.empty() ? "unknown" : s; }

std::string gpu_line(const GpuFacts& g) {
  std::string line = cat("GPU ", g.index, ": ", or_unknown(g.name));
  if (g.cc_major > 0) line += cat(", compute capability ", g.cc_major, ".", g.cc_minor, " (sm_", g.cc_major, g.cc_minor, ")");
  if (g.memory_total > 0) line += cat(", ", format_bytes(g.memory_free), " free of ", format_bytes(g.memory_total));
  return line;
}

std::string driver_summary(const Facts& f) {
  const std::string v = driver_version(f);
  if (v.empty() && !f.driver.kernel_module && f.gpus.empty()) return "none (no NVIDIA driver is loaded)";
  std::string s = or_unknown(v);
  if (f.driver.open_kernel_module) s += " (open kernel module)";
  if (f.driver.cuda_driver_api > 0) s += cat(", supports CUDA up to ", cuda_version_from_int(f.driver.cuda_driver_api));
  return s;
}

void wrap_paragraph(std::ostringstream& out, const std::string& label, const std::string& text) {
  // Labels line up; long text wraps at ~100 columns so reports read well in a terminal and in CI logs.
  const std::string indent(label.size(), ' ');
  std::string line = label;
  for (const auto& word : split(text, ' ')) {
    if (line.size() + word.size() + 1 > 100 && line.size() > label.size()) {
      out << line << "\n";
      line = indent;
    }
    line += (line.size() > label.size() ? " " : "") + word;
  }
  out << line << "\n";
}

}  // namespace

std::string render_report(const Facts& f, const std::vector<Finding>& findings) {
  std::ostringstream out;
  const auto& s = f.system;
  out << "detkit doctor\n\nsystem\n";
  out << "  os:      " << or_unknown(s.os) << (s.kernel.empty() ? "" : " (kernel " + s.kernel + ")")
      << (s.container ? ", in a container" : "") << (s.wsl ? ", WSL" : "") << "\n";
  out << "  cpu:     " << or_unknown(s.cpu_model) << ", " << s.cpu_count << " logical CPUs\n";
  out << "  memory:  " << format_bytes(s.ram_total) << " (" << format_bytes(s.ram_available) << " available)";
  if (s.shm_total) out << ", /dev/shm " << format_bytes(s.shm_total);
  if (s.memory_limit)
    out << ", cgroup limit " << format_bytes(s.memory_limit) << " (" << format_bytes(s.memory_limit_used) << " used)";
  out << "\n  disk:    " << format_bytes(s.disk_free) << " free at " << s.disk_path << "\n";
  if (!s.blas_library.empty()) out << "  BLAS:    " << s.blas_library << "\n";

  out << "\nNVIDIA driver and GPUs\n";
  out << "  driver:  " << driver_summary(f) << "\n";
  if (!f.driver.nvml_loaded) out << "  NVML:    not available (" << f.driver.nvml_error << ")\n";
  if (!f.driver.libcuda_error.empty()) out << "  libcuda: not available (" << f.driver.libcuda_error << ")\n";
  if (f.gpus.empty()) out << "  GPUs:    none\n";
  for (const auto& g : f.gpus) {
    out << "  " << gpu_line(g) << "\n";
    for (const auto& p : g.processes)
      out << "    pid " << p.pid << (p.name.empty() ? "" : " " + p.name) << ": " << format_bytes(p.used_bytes) << "\n";
  }
  if (f.gpus.empty() && !f.driver.pci_gpus.empty()) out << "  PCI:     NVIDIA GPU(s) at " << join(f.driver.pci_gpus, ", ") << "\n";

  out << "\nCUDA libraries (loader order first; * = not on the loader path)\n";
  if (f.libraries.empty()) out << "  none found\n";
  for (const auto& lib : f.libraries)
    out << "  " << (lib.on_loader_path ? " " : "*") << " " << lib.soname << "  " << or_unknown(lib.version) << "  " << lib.dir
        << "  (" << lib.origin << ")\n";
  for (const auto& p : f.cudnn_probes)
    out << "  cudnnGetVersion(" << p.path << "): " << (p.error.empty() ? p.version : "failed: " + p.error) << "\n";
  for (const auto& tk : f.toolkits)
    out << "  toolkit " << tk.path << ": " << (tk.exists ? or_unknown(tk.version) : "missing") << " (" << tk.origin << ")\n";

  out << "\nenvironment\n";
  if (f.env.empty()) out << "  none of the CUDA/PyTorch/TensorFlow variables is set\n";
  for (const auto& [k, v] : f.env) out << "  " << k << "=" << v << "\n";

  out << "\ndetkit's LibTorch\n";
  const auto& dt = f.detkit_torch;
  if (!dt.probed) {
    out << "  built with " << dt.built_with << "; not probed\n";
  } else if (!dt.loaded) {
    out << "  built with " << dt.built_with << "; cannot be loaded: " << dt.error << "\n";
  } else {
    out << "  LibTorch " << dt.version << ", "
        << (dt.cuda_version.empty() ? std::string("CPU only") : "CUDA " + dt.cuda_version + ", cuDNN " + or_unknown(dt.cudnn_version))
        << ", " << dt.device_count << " CUDA device(s) visible\n";
    if (!dt.archs.empty()) out << "  compiled for: " << join(dt.archs, " ") << "\n";
  }

  out << "\nPython frameworks";
  if (!f.python_site_dirs.empty()) out << " (" << f.python_site_dirs.size() << " site-packages directories searched)";
  out << "\n";
  if (f.frameworks.empty()) out << "  no torch or tensorflow found\n";
  for (const auto& fw : f.frameworks) {
    out << "  " << fw.package << " " << or_unknown(fw.version) << ": "
        << (fw.cuda_build ? "CUDA " + or_unknown(fw.cuda_version) + (fw.cudnn_version.empty() ? "" : ", cuDNN " + fw.cudnn_version)
                          : std::string("CPU only"))
        << "\n    in " << fw.site_dir << (fw.interpreters.empty() ? "" : " (" + fw.interpreters + ")") << "\n";
    if (!fw.archs.empty()) out << "    compiled for: " << join(fw.archs, " ") << " (" << fw.archs_source << ")\n";
    if (!fw.pip_cudnn.empty()) out << "    nvidia-cudnn wheel: " << fw.pip_cudnn << "\n";
  }

  out << "\ndistributed training\n";
  if (dt.loaded)
    out << "  detkit:  " << (dt.gloo ? "Gloo backend built in (detkit train --nproc N, torchrun)" : "no Gloo backend in this build")
        << "\n";
  std::vector<std::string> nccl;
  for (const auto& lib : f.libraries)
    if (lib.family == "nccl") nccl.push_back(lib.soname + " " + or_unknown(lib.version) + " in " + lib.dir);
  out << "  NCCL:    " << (nccl.empty() ? std::string("not found") : join(nccl, "; ")) << "\n";
  if (!f.system.net_interfaces.empty()) out << "  network: " << join(f.system.net_interfaces, ", ") << "\n";

  if (f.smoke_requested) {
    out << "\nsmoke test\n";
    if (f.smoke.empty()) out << "  nothing ran\n";
    for (const auto& sm : f.smoke) {
      out << "  " << sm.device << (sm.device_name.empty() ? "" : " (" + sm.device_name + ")") << ": ";
      if (sm.crashed) out << "crashed\n";
      else if (!sm.failed_stage.empty()) out << "failed at " << sm.failed_stage << "\n";
      else out << "passed, fp32 vs " << sm.autocast_dtype << " max diff " << sm.max_abs_diff << "\n";
    }
  }

  out << "\nfindings\n";
  if (findings.empty()) out << "  none\n";
  for (const auto& fi : findings) {
    out << "\n";
    wrap_paragraph(out, cat("  ", to_string(fi.severity), " ", fi.id, ": "), fi.title);
    if (!fi.detail.empty()) wrap_paragraph(out, "    ", fi.detail);
    if (!fi.remedy.empty()) wrap_paragraph(out, "    fix: ", fi.remedy);
  }
  const int errors = count_findings(findings, Severity::error), warnings = count_findings(findings, Severity::warning);
  out << "\n" << errors << " error(s), " << warnings << " warning(s), " << count_findings(findings, Severity::info)
      << " note(s): " << (errors ? "fix the errors above before training on this machine" : "this machine can run detkit")
      << (errors == 0 && f.gpus.empty() ? " (on the CPU)" : "") << "\n";
  return out.str();
}

std::string report_to_json(const Facts& f, const std::vector<Finding>& findings) {
  using J = nlohmann::ordered_json;
  J facts;
  const auto& s = f.system;
  facts["system"] = {{"os", s.os}, {"kernel", s.kernel}, {"cpu_model", s.cpu_model}, {"cpu_count", s.cpu_count},
                     {"ram_total", s.ram_total}, {"ram_available", s.ram_available}, {"disk_path", s.disk_path},
                     {"disk_free", s.disk_free}, {"shm_total", s.shm_total},
                     {"memory_limit", s.memory_limit}, {"memory_limit_used", s.memory_limit_used}, {"container", s.container}, {"wsl", s.wsl},
                     {"net_interfaces", s.net_interfaces}, {"blas_library", s.blas_library}};
  const auto& d = f.driver;
  facts["driver"] = {{"version", driver_version(f)}, {"kernel_module", d.kernel_module}, {"kernel_version", d.kernel_version},
                     {"open_kernel_module", d.open_kernel_module}, {"pci_gpus", d.pci_gpus}, {"nvml_loaded", d.nvml_loaded},
                     {"nvml_error", d.nvml_error}, {"nvml_driver_version", d.nvml_driver_version},
                     {"libcuda_error", d.libcuda_error}, {"cuda_driver_api", cuda_version_from_int(d.cuda_driver_api)}};
  J gpus = J::array();
  for (const auto& g : f.gpus) {
    J procs = J::array();
    for (const auto& p : g.processes) procs.push_back({{"pid", p.pid}, {"name", p.name}, {"used_bytes", p.used_bytes}});
    gpus.push_back({{"index", g.index}, {"name", g.name}, {"compute_capability", cat(g.cc_major, ".", g.cc_minor)},
                    {"memory_total", g.memory_total}, {"memory_free", g.memory_free}, {"processes", procs}});
  }
  facts["gpus"] = gpus;
  facts["loader_dirs"] = f.loader_dirs;
  J libs = J::array();
  for (const auto& l : f.libraries)
    libs.push_back({{"family", l.family}, {"soname", l.soname}, {"version", l.version}, {"dir", l.dir}, {"origin", l.origin},
                    {"on_loader_path", l.on_loader_path}});
  facts["libraries"] = libs;
  J probes = J::array();
  for (const auto& p : f.cudnn_probes) probes.push_back({{"path", p.path}, {"version", p.version}, {"error", p.error}});
  facts["cudnn_probes"] = probes;
  J toolkits = J::array();
  for (const auto& t : f.toolkits)
    toolkits.push_back({{"path", t.path}, {"version", t.version}, {"origin", t.origin}, {"exists", t.exists}});
  facts["cuda_toolkits"] = toolkits;
  J env = J::object();
  for (const auto& [k, v] : f.env) env[k] = v;
  facts["environment"] = env;
  const auto& dt = f.detkit_torch;
  facts["detkit_libtorch"] = {{"built_with", dt.built_with}, {"probed", dt.probed}, {"loaded", dt.loaded}, {"error", dt.error},
                              {"version", dt.version}, {"cuda", dt.cuda_version}, {"cudnn", dt.cudnn_version},
                              {"archs", dt.archs}, {"device_count", dt.device_count}, {"gloo", dt.gloo}};
  facts["python_site_dirs"] = f.python_site_dirs;
  J fws = J::array();
  for (const auto& fw : f.frameworks)
    fws.push_back({{"framework", fw.framework}, {"package", fw.package}, {"version", fw.version}, {"site_dir", fw.site_dir},
                   {"interpreters", fw.interpreters}, {"cuda_build", fw.cuda_build}, {"cuda", fw.cuda_version},
                   {"cudnn", fw.cudnn_version}, {"archs", fw.archs}, {"archs_source", fw.archs_source},
                   {"pip_cudnn", fw.pip_cudnn}, {"pip_cuda_runtime", fw.pip_cuda_runtime}});
  facts["frameworks"] = fws;
  if (f.smoke_requested) {
    J smoke = J::array();
    for (const auto& sm : f.smoke)
      smoke.push_back({{"device", sm.device}, {"device_name", sm.device_name}, {"crashed", sm.crashed}, {"crash", sm.crash},
                       {"failed_stage", sm.failed_stage}, {"error", sm.error}, {"autocast_dtype", sm.autocast_dtype},
                       {"max_abs_diff", sm.max_abs_diff}, {"tolerance", sm.tolerance}, {"seconds", sm.seconds}});
    facts["smoke"] = smoke;
  }
  J list = J::array();
  for (const auto& fi : findings)
    list.push_back({{"id", fi.id}, {"severity", to_string(fi.severity)}, {"title", fi.title}, {"detail", fi.detail},
                    {"remedy", fi.remedy}});
  J root;
  root["facts"] = facts;
  root["findings"] = list;
  root["errors"] = count_findings(findings, Severity::error);
  root["warnings"] = count_findings(findings, Severity::warning);
  return root.dump(2) + "\n";
}

std::string short_report(const Facts& f, const std::vector<Finding>& findings) {
  std::ostringstream out;
  if (f.gpus.empty()) {
    out << "environment: " << (driver_version(f).empty() ? "no NVIDIA driver" : "driver " + driver_version(f) + ", no GPU visible")
        << ": running on the CPU\n";
  } else {
    out << "environment: driver " << or_unknown(driver_version(f)) << ", " << f.gpus.size() << " GPU(s)\n";
    for (const auto& g : f.gpus) out << "  " << gpu_line(g) << "\n";
  }
  const auto& dt = f.detkit_torch;
  if (dt.loaded)
    out << "  LibTorch " << dt.version << (dt.cuda_version.empty() ? ", CPU only" : ", CUDA " + dt.cuda_version) << "\n";
  for (const auto& fi : findings)
    if (fi.severity != Severity::info) out << "  " << to_string(fi.severity) << " " << fi.id << ": " << fi.title << "\n";
  return out.str();
}

}  // namespace detkit::diag
