// The doctor's rules (diag/rules.h) on constructed facts, the compatibility tables and version helpers.
// Texts users read (titles, remedies) are asserted, not just finding ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>

#include "core/error.h"
#include "diag/rules.h"
#include "diag/tables.h"
#include "diag/version.h"

namespace detkit::diag {
namespace {

const CompatTables& T() { return compat_tables(); }

std::vector<Finding> run(const Facts& f) { return evaluate_rules(f, T()); }

// A copy: callers often pass the temporary result of run().
std::optional<Finding> find(const std::vector<Finding>& fs, const std::string& id) {
  for (const auto& f : fs)
    if (f.id == id) return f;
  return std::nullopt;
}

int count(const std::vector<Finding>& fs, const std::string& id) {
  return static_cast<int>(std::count_if(fs.begin(), fs.end(), [&](const Finding& f) { return f.id == id; }));
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

#define EXPECT_CONTAINS(text, needle) EXPECT_TRUE(contains(text, needle)) << "text: " << (text) << "\nneedle: " << (needle)

// A machine with a loaded driver and the given GPUs.
Facts gpu_machine(const std::string& driver, std::vector<GpuFacts> gpus) {
  Facts f;
  f.driver.kernel_module = true;
  f.driver.kernel_version = driver;
  f.driver.nvml_loaded = true;
  f.driver.nvml_driver_version = driver;
  f.gpus = std::move(gpus);
  return f;
}

GpuFacts gpu(int index, const std::string& name, int major, int minor, double total_gib = 24, double free_gib = 23) {
  GpuFacts g;
  g.index = index;
  g.name = name;
  g.cc_major = major;
  g.cc_minor = minor;
  g.memory_total = static_cast<uint64_t>(total_gib * (1ull << 30));
  g.memory_free = static_cast<uint64_t>(free_gib * (1ull << 30));
  return g;
}

FrameworkInstall torch_wheel(const std::string& version, const std::string& cuda) {
  FrameworkInstall t;
  t.framework = t.package = "torch";
  t.version = version;
  t.site_dir = "/venv/lib/python3.11/site-packages";
  t.cuda_build = !cuda.empty();
  t.cuda_version = cuda;
  if (t.cuda_build) {
    t.cudnn_version = T().torch_wheel_cudnn(version, cuda);
    t.archs = T().torch_wheel_archs(version, cuda);
    t.archs_source = "official wheel";
  }
  return t;
}

FrameworkInstall tensorflow(const std::string& version, const std::string& cuda, const std::string& cudnn) {
  FrameworkInstall t;
  t.framework = t.package = "tensorflow";
  t.version = version;
  t.site_dir = "/venv/lib/python3.11/site-packages";
  t.cuda_build = !cuda.empty();
  t.cuda_version = cuda;
  t.cudnn_version = cudnn;
  t.archs = {"sm_60", "sm_70", "sm_80", "sm_89", "compute_90"};
  t.archs_source = "build_info.py";
  return t;
}

LibraryFile lib(const std::string& family, const std::string& soname, const std::string& version, const std::string& dir,
                int rank, const std::string& origin = "ld.so.conf") {
  LibraryFile l;
  l.family = family;
  l.soname = soname;
  l.version = version;
  l.dir = dir;
  l.origin = origin;
  l.on_loader_path = rank >= 0;
  l.loader_rank = rank;
  return l;
}

// ---- versions and tables ----------------------------------------------------------------------------

TEST(DiagVersion, ComparesNumerically) {
  EXPECT_LT(compare_versions("525.60.13", "535.104.05"), 0);
  EXPECT_LT(compare_versions("12.4", "12.10"), 0);
  EXPECT_EQ(compare_versions("12.4", "12.4.0"), 0);
  EXPECT_EQ(compare_versions("2.5.1+cu124", "2.5.1"), 0);
  EXPECT_EQ(version_prefix("12.4.127", 2), "12.4");
  EXPECT_TRUE(version_matches("2.15.1", "2.15"));
  EXPECT_FALSE(version_matches("2.150", "2.15"));
  EXPECT_EQ(cuda_version_from_int(12040), "12.4");
  EXPECT_EQ(cuda_version_from_int(11080), "11.8");
  EXPECT_EQ(cudnn_version_from_int(8902), "8.9.2");
  EXPECT_EQ(cudnn_version_from_int(90100), "9.1.0");
  EXPECT_EQ(cudnn_version_from_int(7605), "7.6.5");
  EXPECT_EQ(arch_number("sm_86"), 86);
  EXPECT_EQ(arch_number("compute_120"), 120);
  EXPECT_EQ(arch_number("sm_90a"), 90);
  EXPECT_EQ(arch_number("8.6+PTX"), 86);
}

TEST(DiagTables, EmbeddedTablesAnswerTheDocumentedRows) {
  EXPECT_EQ(T().driver_for_cuda("12.4.1"), "550.54.14");
  EXPECT_EQ(T().driver_for_cuda("13.0"), "580.65.06");
  EXPECT_EQ(T().driver_for_cuda("7.5"), "");  // not in the table: unknown, not guessed
  EXPECT_EQ(T().minor_compat_driver(12), "525.60.13");
  EXPECT_EQ(T().minor_compat_driver(11), "450.80.02");
  EXPECT_EQ(T().minor_compat_driver(10), "");
  ASSERT_TRUE(T().tensorflow("2.15.0"));
  EXPECT_EQ(T().tensorflow("2.15.0")->cuda, "12.2");
  EXPECT_EQ(T().tensorflow("2.15.0")->cudnn, "8.9");
  EXPECT_FALSE(T().tensorflow("3.0.0"));
  EXPECT_EQ(T().torch_wheel_cudnn("2.5.1+cu124", "12.4"), "9.1.0.70");
  EXPECT_EQ(T().torch_wheel_cudnn("2.3.0", "12.1"), "8.9.2.26");
  const auto a28 = T().torch_wheel_archs("2.8.0", "12.8"), a29 = T().torch_wheel_archs("2.9.1", "12.8");
  EXPECT_EQ(std::count(a28.begin(), a28.end(), "sm_70"), 0);  // Volta dropped from cu128 in 2.8
  EXPECT_EQ(std::count(a29.begin(), a29.end(), "sm_70"), 1);  // and restored in later scripts
  EXPECT_EQ(arch_list_to_names("7.5;9.0+PTX"), (std::vector<std::string>{"sm_75", "sm_90", "compute_90"}));
  ASSERT_TRUE(T().arch_range("11.0.3"));
  EXPECT_EQ(T().arch_range("11.0.3")->max_arch, 80);
}

TEST(DiagTables, MalformedTablesAreReportedWithTheTable) {
  try {
    parse_compat_tables("cuda_driver_min:\n  - {cuda: '12.4'}\n");
    FAIL() << "expected InternalError";
  } catch (const InternalError& e) {
    EXPECT_CONTAINS(e.message(), "a row of 'cuda_driver_min' lacks 'driver'");
  }
}

TEST(DiagArch, CoverageFollowsCubinAndPtxRules) {
  const std::vector<std::string> cu118{"sm_37", "sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"};
  EXPECT_TRUE(arch_covers(cu118, 89));   // sm_86 cubin runs on 8.9 (same major, lower minor)
  EXPECT_FALSE(arch_covers(cu118, 120));  // no Blackwell cubin and no PTX
  EXPECT_FALSE(arch_covers({"sm_90a"}, 100));
  EXPECT_TRUE(arch_covers({"sm_90a"}, 90));
  bool ptx = false;
  EXPECT_TRUE(arch_covers({"sm_80", "compute_90"}, 120, &ptx));
  EXPECT_TRUE(ptx);
  EXPECT_FALSE(arch_covers({"sm_80", "compute_90"}, 86 - 10));  // 7.6 is below both
}

TEST(DiagVisibleDevices, ReadsUpToTheFirstInvalidEntry) {
  std::string ignored;
  EXPECT_EQ(visible_gpu_count("", 2), 0);
  EXPECT_EQ(visible_gpu_count("-1", 2), 0);
  EXPECT_EQ(visible_gpu_count("1,0", 2), 2);
  EXPECT_EQ(visible_gpu_count("0,5,1", 2, &ignored), 1);
  EXPECT_EQ(ignored, "5");
  EXPECT_EQ(visible_gpu_count("0,0", 2, &ignored), 1);
  EXPECT_EQ(ignored, "0");
  EXPECT_EQ(visible_gpu_count("GPU-8a3c", 1), 1);
}

// ---- driver ---------------------------------------------------------------------------------------

TEST(DiagRules, NoDriverSaysPlainlyThatDetkitRunsOnTheCpu) {
  Facts f;
  f.driver.nvml_error = "libnvidia-ml.so.1: cannot open shared object file: No such file or directory";
  f.libraries.push_back(lib("cudart", "libcudart.so.13", "13.0.96", "/usr/local/cuda-13.0/lib", 4));
  f.frameworks.push_back(torch_wheel("2.5.1+cu124", "12.4"));
  const auto fs = run(f);
  const auto none = find(fs, "driver.none");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->severity, Severity::info);
  EXPECT_EQ(none->title, "no NVIDIA driver: detkit runs on the CPU");
  EXPECT_CONTAINS(none->detail, "CUDA libraries are installed but unused without a driver: libcudart.so.13 (13.0.96)");
  EXPECT_CONTAINS(none->detail, "torch 2.5.1+cu124");
  EXPECT_CONTAINS(none->remedy, "install the NVIDIA driver");
  // The wheel's missing cuDNN is reported, but as a warning: nothing can use it without a GPU.
  ASSERT_TRUE(find(fs, "cudnn.missing"));
  EXPECT_EQ(find(fs, "cudnn.missing")->severity, Severity::warning);
  EXPECT_CONTAINS(find(fs, "cudnn.missing")->detail, "matters only once one is");
  for (const auto& x : fs) EXPECT_NE(x.severity, Severity::error) << x.id << ": " << x.title;
}

TEST(DiagRules, GpuOnThePciBusWithoutDriverIsAnError) {
  Facts f;
  f.driver.pci_gpus = {"0000:01:00.0"};
  const auto fs = run(f);
  ASSERT_TRUE(find(fs, "driver.not-loaded"));
  EXPECT_EQ(find(fs, "driver.not-loaded")->severity, Severity::error);
  EXPECT_CONTAINS(find(fs, "driver.not-loaded")->remedy, "dkms autoinstall");
  EXPECT_FALSE(find(fs, "driver.none"));
}

TEST(DiagRules, KernelModuleAndNvmlVersionsDiffer) {
  Facts f = gpu_machine("535.104.05", {gpu(0, "NVIDIA A10", 8, 6)});
  f.driver.nvml_driver_version = "535.129.03";
  const auto x = find(run(f), "driver.version-mismatch");
  ASSERT_TRUE(x);
  EXPECT_CONTAINS(x->detail, "is 535.104.05 but the user-space driver (NVML) is 535.129.03");
  EXPECT_CONTAINS(x->remedy, "reboot");
}

TEST(DiagRules, NvmlRefusingWithVersionMismatchIsTheSameError) {
  Facts f;
  f.driver.kernel_module = true;
  f.driver.kernel_version = "550.54.15";
  f.driver.nvml_version_mismatch = true;
  f.driver.nvml_error = "nvmlInit failed: Driver/library version mismatch (NVML error 18)";
  const auto x = find(run(f), "driver.version-mismatch");
  ASSERT_TRUE(x);
  EXPECT_CONTAINS(x->detail, "Driver/library version mismatch");
}

TEST(DiagRules, LoadedModuleWithoutLibcuda) {
  Facts f = gpu_machine("550.54.15", {gpu(0, "NVIDIA L4", 8, 9)});
  f.driver.libcuda_library = "libcuda.so.1";
  f.driver.libcuda_error = "libcuda.so.1: cannot open shared object file: No such file or directory";
  const auto x = find(run(f), "driver.libcuda-missing");
  ASSERT_TRUE(x);
  EXPECT_CONTAINS(x->remedy, "libcuda1");
  f.system.container = true;
  EXPECT_CONTAINS(find(run(f), "driver.libcuda-missing")->remedy, "--gpus all");
}

TEST(DiagRules, BlackwellNeedsTheOpenKernelModule) {
  Facts f = gpu_machine("570.124.06", {gpu(0, "NVIDIA GeForce RTX 5090", 12, 0, 32, 31)});
  ASSERT_TRUE(find(run(f), "driver.open-module-required"));
  f.driver.open_kernel_module = true;
  EXPECT_FALSE(find(run(f), "driver.open-module-required"));
}

TEST(DiagRules, DriverBelowTheMajorLineFloorIsAnError) {
  Facts f = gpu_machine("520.61.05", {gpu(0, "NVIDIA A100-SXM4-40GB", 8, 0, 40, 39)});
  f.frameworks.push_back(torch_wheel("2.5.1+cu124", "12.4"));
  const auto x = find(run(f), "driver.too-old");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->severity, Severity::error);
  EXPECT_CONTAINS(x->title, "NVIDIA driver 520.61.05 is too old for CUDA 12.4 (torch 2.5.1+cu124");
  EXPECT_CONTAINS(x->detail, "any CUDA 12.x runs on >= 525.60.13");
  // The remedy names the driver to install, and the newest torch variant this driver already runs.
  EXPECT_CONTAINS(x->remedy, "update the NVIDIA driver to 550.54.14 or newer");
  EXPECT_CONTAINS(x->remedy, "/whl/cu118");
}

TEST(DiagRules, DriverWithinMinorVersionCompatibilityIsAWarning) {
  Facts f = gpu_machine("535.104.05", {gpu(0, "NVIDIA A10", 8, 6)});
  f.frameworks.push_back(torch_wheel("2.5.1+cu124", "12.4"));
  const auto fs = run(f);
  EXPECT_FALSE(find(fs, "driver.too-old"));
  const auto x = find(fs, "driver.minor-compat");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->severity, Severity::warning);
  EXPECT_CONTAINS(x->detail, "the provided PTX was compiled with an unsupported toolchain");
  EXPECT_CONTAINS(x->remedy, "550.54.14");
  // A driver at the release's own minimum has nothing to say.
  f.driver.kernel_version = f.driver.nvml_driver_version = "550.54.15";
  EXPECT_FALSE(find(run(f), "driver.minor-compat"));
}

TEST(DiagRules, CudaTenHasNoMinorVersionCompatibility) {
  Facts f = gpu_machine("410.48", {gpu(0, "Tesla V100-SXM2-16GB", 7, 0, 16, 15)});
  f.frameworks.push_back(tensorflow("2.3.0", "10.1", "7.6"));
  const auto x = find(run(f), "driver.too-old");
  ASSERT_TRUE(x);
  EXPECT_CONTAINS(x->remedy, "418.39");
}

TEST(DiagRules, DriverApiVersionAloneStillCatchesAnOldDriver) {
  Facts f;
  f.driver.kernel_module = true;  // module present, but its version file was unreadable
  f.driver.cuda_driver_api = 11040;
  f.gpus = {gpu(0, "NVIDIA A10", 8, 6)};
  f.frameworks.push_back(torch_wheel("2.5.1+cu124", "12.4"));
  const auto x = find(run(f), "driver.too-old");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->title, "the driver supports CUDA 11.4 but torch 2.5.1+cu124 (/venv/lib/python3.11/site-packages) needs CUDA 12.4");
}

// ---- architectures --------------------------------------------------------------------------------

TEST(DiagRules, NewGpuNotCoveredByTheWheelNamesTheVariantsThatCoverIt) {
  Facts f = gpu_machine("575.57.08", {gpu(0, "NVIDIA GeForce RTX 5090", 12, 0, 32, 31)});
  f.driver.open_kernel_module = true;
  f.frameworks.push_back(torch_wheel("2.3.1", "12.1"));
  const auto x = find(run(f), "arch.no-kernel-image");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->title, "torch 2.3.1 (/venv/lib/python3.11/site-packages) has no code for GPU 0 (NVIDIA GeForce RTX 5090, sm_120)");
  EXPECT_CONTAINS(x->detail, "no kernel image is available for execution on the device");
  EXPECT_CONTAINS(x->remedy, "CUDA variant cu128 or cu129 or cu130 or cu132 (pip install torch --index-url "
                             "https://download.pytorch.org/whl/cu132)");
}

TEST(DiagRules, OldGpuBelowEveryArchIsCalledTooOld) {
  Facts f = gpu_machine("470.82.01", {gpu(0, "Tesla K80", 3, 7, 12, 11)});
  f.frameworks.push_back(torch_wheel("2.3.1", "12.1"));
  const auto x = find(run(f), "arch.no-kernel-image");
  ASSERT_TRUE(x);
  EXPECT_CONTAINS(x->detail, "the GPU is too old for this build");
  EXPECT_CONTAINS(x->remedy, "cu116");  // the newest official variants that still carry sm_37
}

TEST(DiagRules, SameMajorCubinCoversTheGpuAndPtxIsANote) {
  Facts f = gpu_machine("550.54.15", {gpu(0, "NVIDIA GeForce RTX 4090", 8, 9)});
  f.frameworks.push_back(torch_wheel("2.4.1", "11.8"));
  EXPECT_FALSE(find(run(f), "arch.no-kernel-image"));
  f.detkit_torch.loaded = true;
  f.detkit_torch.version = "2.5.1";
  f.detkit_torch.cuda_version = "12.4";
  f.detkit_torch.archs = {"sm_70", "compute_80"};  // no sm_8x cubin: 8.9 runs the compute_80 PTX
  const auto fs = run(f);
  EXPECT_FALSE(find(fs, "arch.no-kernel-image"));
  ASSERT_TRUE(find(fs, "arch.ptx-jit"));
  EXPECT_EQ(find(fs, "arch.ptx-jit")->severity, Severity::info);
}

TEST(DiagRules, TensorflowWithoutCodeForTheGpu) {
  Facts f = gpu_machine("550.54.15", {gpu(0, "Quadro M6000", 5, 2)});
  f.frameworks.push_back(tensorflow("2.19.0", "12.5.1", "9.3"));
  const auto x = find(run(f), "arch.no-kernel-image");
  ASSERT_TRUE(x);
  EXPECT_CONTAINS(x->remedy, "TF_CUDA_COMPUTE_CAPABILITIES=5.2");
}

// ---- cuDNN ----------------------------------------------------------------------------------------

TEST(DiagRules, TensorflowNeedingCudnn8WhileOnlyCudnn9IsInstalled) {
  Facts f = gpu_machine("550.54.15", {gpu(0, "NVIDIA A10", 8, 6)});
  f.frameworks.push_back(tensorflow("2.15.0", "12.2", "8.9"));
  f.libraries.push_back(lib("cudnn", "libcudnn.so.9", "9.1.0", "/usr/lib/x86_64-linux-gnu", 3));
  f.libraries.push_back(lib("cudart", "libcudart.so.12", "12.2.140", "/usr/local/cuda/lib64", 0, "LD_LIBRARY_PATH"));
  const auto x = find(run(f), "cudnn.missing");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->title, "tensorflow 2.15.0 needs cuDNN 8 (libcudnn.so.8) and none is installed");
  EXPECT_CONTAINS(x->detail, "cuDNN libraries found: libcudnn.so.9 (9.1.0) in /usr/lib/x86_64-linux-gnu");
  EXPECT_CONTAINS(x->remedy, "pip install nvidia-cudnn-cu12==8.9*");
}

TEST(DiagRules, CudnnMinorBelowTheBuildIsAnError) {
  Facts f = gpu_machine("550.54.15", {gpu(0, "NVIDIA A10", 8, 6)});
  f.frameworks.push_back(tensorflow("2.15.0", "12.2", "8.9"));
  f.libraries.push_back(lib("cudnn", "libcudnn.so.8", "8.6.0", "/usr/lib/x86_64-linux-gnu", 3));
  const auto x = find(run(f), "cudnn.too-old");
  ASSERT_TRUE(x);
  EXPECT_CONTAINS(x->detail, "Loaded runtime CuDNN library: 8.6.0 but source was compiled with: 8.9");
  EXPECT_CONTAINS(x->remedy, "install cuDNN 8.9 or newer of major 8");
}

TEST(DiagRules, LdLibraryPathCudnnOverridingTheWheelsOwn) {
  Facts f = gpu_machine("550.54.15", {gpu(0, "NVIDIA A10", 8, 6)});
  FrameworkInstall t = torch_wheel("2.5.1+cu124", "12.4");
  t.pip_cudnn = "9.1.0.70";
  f.frameworks.push_back(t);
  f.libraries.push_back(lib("cudnn", "libcudnn.so.9", "9.0.0", "/opt/cudnn/lib", 0, "LD_LIBRARY_PATH"));
  const auto x = find(run(f), "cudnn.overridden");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->title, "LD_LIBRARY_PATH puts cuDNN 9.0.0 before torch 2.5.1+cu124's own cuDNN 9.1.0.70");
  EXPECT_CONTAINS(x->remedy, "remove /opt/cudnn/lib from LD_LIBRARY_PATH");
}

TEST(DiagRules, DetkitLibtorchAgainstAnOlderLoadedCudnn) {
  Facts f = gpu_machine("550.54.15", {gpu(0, "NVIDIA A10", 8, 6)});
  f.detkit_torch = {"2.5.1", true, true, "", "2.5.1", "12.4", "9.1.0", {"sm_80", "sm_86"}, 1};
  f.cudnn_probes.push_back({"/usr/lib/x86_64-linux-gnu/libcudnn.so.9", "9.0.0", ""});
  const auto x = find(run(f), "cudnn.too-old");
  ASSERT_TRUE(x);
  EXPECT_CONTAINS(x->title, "detkit's LibTorch was built with cuDNN 9.1.0 but the loader finds cuDNN 9.0.0");
}

// ---- libraries ------------------------------------------------------------------------------------

TEST(DiagRules, ShadowingCopiesOfOneSonameWithDifferentVersions) {
  Facts f;
  f.libraries.push_back(lib("cudart", "libcudart.so.12", "12.4.127", "/opt/a", 0, "LD_LIBRARY_PATH"));
  f.libraries.push_back(lib("cudart", "libcudart.so.12", "12.1.105", "/usr/local/cuda-12.1/lib64", 2));
  const auto x = find(run(f), "libs.shadowed");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->severity, Severity::warning);
  EXPECT_EQ(x->title, "libcudart.so.12 is installed 2 times on the loader path with different versions");
  EXPECT_CONTAINS(x->detail, "The loader takes libcudart.so.12 (12.4.127) in /opt/a (LD_LIBRARY_PATH); it hides "
                             "libcudart.so.12 (12.1.105) in /usr/local/cuda-12.1/lib64");
  // The same version twice is only a note; copies off the loader path shadow nothing.
  f.libraries[1].version = "12.4.127";
  EXPECT_EQ(find(run(f), "libs.shadowed")->severity, Severity::info);
  f.libraries[1].on_loader_path = false;
  f.libraries[1].loader_rank = -1;
  EXPECT_FALSE(find(run(f), "libs.shadowed"));
}

TEST(DiagRules, SeveralCudnnMajorsOnThePathAreNoted) {
  Facts f;
  f.libraries.push_back(lib("cudnn", "libcudnn.so.8", "8.9.7", "/usr/lib/x86_64-linux-gnu", 2));
  f.libraries.push_back(lib("cudnn", "libcudnn.so.9", "9.3.0", "/usr/lib/x86_64-linux-gnu", 2));
  const auto x = find(run(f), "libs.several-majors");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->title, "several cuDNN majors on the loader path");
}

// ---- environment ----------------------------------------------------------------------------------

TEST(DiagRules, CudaVisibleDevicesHidingEveryGpu) {
  Facts f = gpu_machine("550.54.15", {gpu(0, "NVIDIA A10", 8, 6), gpu(1, "NVIDIA A10", 8, 6)});
  f.env = {{"CUDA_VISIBLE_DEVICES", ""}};
  const auto x = find(run(f), "env.no-visible-gpu");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->title, "CUDA_VISIBLE_DEVICES='' hides every GPU");
  EXPECT_CONTAINS(x->remedy, "export CUDA_VISIBLE_DEVICES=0,1");
  f.env = {{"CUDA_VISIBLE_DEVICES", "1,2"}};
  const auto fs = run(f);
  EXPECT_FALSE(find(fs, "env.no-visible-gpu"));
  ASSERT_TRUE(find(fs, "env.visible-gpu-ignored"));
  EXPECT_EQ(find(fs, "env.visible-gpu-ignored")->title,
            "CUDA_VISIBLE_DEVICES='1,2': CUDA stops at '2' and sees only 1 GPU(s)");
  f.env = {{"CUDA_VISIBLE_DEVICES", "1"}};
  EXPECT_FALSE(find(run(f), "env.visible-gpu-ignored"));
}

TEST(DiagRules, AllocatorConfigWithAMisspeltKey) {
  Facts f;
  f.env = {{"PYTORCH_CUDA_ALLOC_CONF", "max_split_size:128,expandable_segments:True"}};
  const auto x = find(run(f), "env.alloc-conf");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->remedy, "write 'max_split_size:128' -> 'max_split_size_mb:128'");
  f.env = {{"PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True"}};
  EXPECT_FALSE(find(run(f), "env.alloc-conf"));
}

TEST(DiagRules, LaunchBlockingAndMissingCudaHome) {
  Facts f;
  f.env = {{"CUDA_LAUNCH_BLOCKING", "1"}};
  f.toolkits.push_back({"/opt/cuda-12.9", "", "CUDA_HOME", false});
  const auto fs = run(f);
  ASSERT_TRUE(find(fs, "env.launch-blocking"));
  ASSERT_TRUE(find(fs, "env.cuda-home-missing"));
  EXPECT_EQ(find(fs, "env.cuda-home-missing")->title, "CUDA_HOME=/opt/cuda-12.9 does not exist");
}

TEST(DiagRules, ToolkitTooOldToCompileForTheGpu) {
  Facts f = gpu_machine("550.54.15", {gpu(0, "NVIDIA GeForce RTX 3090", 8, 6)});
  f.toolkits.push_back({"/usr/local/cuda-11.0", "11.0.3", "/usr/local", true});
  const auto x = find(run(f), "toolkit.cannot-target-gpu");
  ASSERT_TRUE(x);
  EXPECT_CONTAINS(x->detail, "nvcc 11.0.3 targets sm_35 to sm_80");
  EXPECT_CONTAINS(x->remedy, "newer CUDA toolkit that knows sm_86");
}

// ---- builds ---------------------------------------------------------------------------------------

TEST(DiagRules, CpuOnlyBuildsOnAGpuMachine) {
  Facts f = gpu_machine("550.54.15", {gpu(0, "NVIDIA A10", 8, 6)});
  f.frameworks.push_back(torch_wheel("2.5.1+cpu", ""));
  f.detkit_torch = {"1.13.0", true, true, "", "1.13.0", "", "", {}, 0};
  const auto fs = run(f);
  EXPECT_EQ(count(fs, "build.cpu-only"), 2);
  bool saw_torch = false;
  for (const auto& x : fs)
    if (x.id == "build.cpu-only" && contains(x.title, "torch 2.5.1+cpu")) {
      saw_torch = true;
      // The newest variant driver 550.54.15 runs natively is CUDA 12.4.
      EXPECT_CONTAINS(x.remedy, "--index-url https://download.pytorch.org/whl/cu124");
    }
  EXPECT_TRUE(saw_torch);
}

TEST(DiagRules, TensorflowTestedConfiguration) {
  Facts f = gpu_machine("550.54.15", {gpu(0, "NVIDIA A10", 8, 6)});
  f.frameworks.push_back(tensorflow("2.15.0", "12.2", "8.9"));
  f.libraries.push_back(lib("cudnn", "libcudnn.so.8", "8.9.7", "/usr/lib/x86_64-linux-gnu", 2));
  f.libraries.push_back(lib("cudart", "libcudart.so.11.0", "11.8.89", "/usr/local/cuda-11.8/lib64", 0));
  const auto missing = find(run(f), "tensorflow.cuda-missing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->title, "TensorFlow 2.15.0 needs the CUDA 12 runtime and none is on the loader path");
  EXPECT_EQ(missing->remedy, "pip install 'tensorflow[and-cuda]==2.15.0' to get the CUDA libraries it was built with");
  f.libraries.push_back(lib("cudart", "libcudart.so.12", "12.4.127", "/usr/local/cuda-12.4/lib64", 1));
  const auto fs = run(f);
  EXPECT_FALSE(find(fs, "tensorflow.cuda-missing"));
  ASSERT_TRUE(find(fs, "tensorflow.untested-cuda"));
  EXPECT_EQ(find(fs, "tensorflow.untested-cuda")->title,
            "TensorFlow 2.15.0 would use CUDA 12.4.127; it was tested with CUDA 12.2");
}

TEST(DiagRules, RetiredTensorflowGpuPackageAndUnknownVersions) {
  Facts f;
  FrameworkInstall t = tensorflow("2.10.0", "11.2", "8.1");
  t.package = "tensorflow-gpu";
  f.frameworks.push_back(t);
  f.frameworks.push_back(tensorflow("3.1.0", "13.0", "9.10"));
  const auto fs = run(f);
  ASSERT_TRUE(find(fs, "tensorflow.gpu-package"));
  EXPECT_CONTAINS(find(fs, "tensorflow.gpu-package")->remedy, "pip install 'tensorflow[and-cuda]'");
  ASSERT_TRUE(find(fs, "tensorflow.untested"));
}

TEST(DiagRules, DetkitPluginThatCannotLoadGetsARemedyFromTheFacts) {
  Facts f;
  f.detkit_torch.built_with = "2.5.1";
  f.detkit_torch.probed = true;
  f.detkit_torch.error = "libcudnn.so.8: cannot open shared object file: No such file or directory";
  f.libraries.push_back(lib("cudnn", "libcudnn.so.9", "9.1.0", "/usr/lib/x86_64-linux-gnu", 2));
  const auto x = find(run(f), "detkit.torch-unloadable");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->severity, Severity::error);
  EXPECT_EQ(x->remedy,
            "install the cuDNN providing libcudnn.so.8 (installed: libcudnn.so.9 (9.1.0) in /usr/lib/x86_64-linux-gnu), or "
            "add its directory to LD_LIBRARY_PATH");
}

// ---- resources ------------------------------------------------------------------------------------

TEST(DiagRules, GpuMostlyHeldByOtherProcessesPointsAtTheFreeOne) {
  GpuFacts busy = gpu(0, "NVIDIA A10", 8, 6, 24, 2);
  busy.processes.push_back({4242, "python3", 21ull << 30});
  Facts f = gpu_machine("550.54.15", {busy, gpu(1, "NVIDIA A10", 8, 6, 24, 23)});
  const auto x = find(run(f), "gpu.busy");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->title, "GPU 0 (NVIDIA A10) is mostly in use: 2.0 GiB of 24.0 GiB free");
  EXPECT_EQ(x->detail, "Held by pid 4242 (python3) 21.0 GiB.");
  EXPECT_CONTAINS(x->remedy, "export CUDA_VISIBLE_DEVICES=1");
}

TEST(DiagRules, LowDiskAndSmallSharedMemory) {
  Facts f;
  f.system.disk_path = "/work";
  f.system.disk_free = 1ull << 30;
  f.system.shm_total = 64ull << 20;
  const auto fs = run(f);
  ASSERT_TRUE(find(fs, "resources.low-disk"));
  ASSERT_TRUE(find(fs, "resources.small-shm"));
  EXPECT_CONTAINS(find(fs, "resources.small-shm")->remedy, "--shm-size=8g");
}

TEST(DiagRules, ACgroupMemoryLimitIsReportedAndASmallOneIsAWarning) {
  Facts f;
  f.system.ram_total = 64ull << 30;
  EXPECT_FALSE(find(run(f), "resources.memory-limit"));
  f.system.memory_limit = 4ull << 30;
  f.system.memory_limit_used = 1ull << 30;
  f.system.memory_limit_file = "/sys/fs/cgroup/memory.max";
  auto x = find(run(f), "resources.memory-limit");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->severity, Severity::warning);
  EXPECT_EQ(x->title, "this process may use 4.0 GiB of RAM (its cgroup's limit; the machine has 64.0 GiB)");
  EXPECT_CONTAINS(x->detail, "The limit is in /sys/fs/cgroup/memory.max; 1.0 GiB of it is in use.");
  EXPECT_CONTAINS(x->remedy, "docker run --memory");
  f.system.memory_limit = 32ull << 30;
  x = find(run(f), "resources.memory-limit");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->severity, Severity::info);
  f.system.memory_limit = 128ull << 30;  // above the machine's RAM: no limit in practice
  EXPECT_FALSE(find(run(f), "resources.memory-limit"));
}

TEST(DiagRules, ReferenceBlasIsAWarningOpenBlasIsNot) {
  Facts f;
  f.system.blas_library = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3";
  const auto x = find(run(f), "resources.reference-blas");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->severity, Severity::warning);
  EXPECT_CONTAINS(x->detail, "libblas.so.3 is /usr/lib/x86_64-linux-gnu/blas/libblas.so.3");
  EXPECT_EQ(x->remedy, "apt-get install libopenblas0-openmp (it becomes the libblas.so.3 alternative; no rebuild needed)");
  f.system.blas_library = "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3";
  EXPECT_FALSE(find(run(f), "resources.reference-blas"));
}

// ---- distributed training ---------------------------------------------------------------------------

TEST(DiagRules, DistributedTrainingPitfalls) {
  Facts f = gpu_machine("550.54.14", {gpu(0, "NVIDIA A10", 8, 6), gpu(1, "NVIDIA A10", 8, 6)});
  f.detkit_torch.loaded = true;
  f.detkit_torch.gloo = false;
  f.system.net_interfaces = {"docker0", "eth0", "lo"};
  f.env = {{"NCCL_P2P_DISABLE", "1"}, {"NCCL_IB_DISABLE", "1"}, {"NCCL_SOCKET_IFNAME", "ib0,eth"},
           {"GLOO_SOCKET_IFNAME", "eth"}};
  f.system.shm_total = 64ull << 20;
  const auto fs = run(f);
  const auto gloo = find(fs, "distributed.no-gloo");
  ASSERT_TRUE(gloo);
  EXPECT_EQ(gloo->title, "this build of detkit cannot train with several processes");
  EXPECT_CONTAINS(gloo->remedy, "install libgloo-dev");
  const auto p2p = find(fs, "distributed.nccl-p2p-disabled");
  ASSERT_TRUE(p2p);
  EXPECT_EQ(p2p->severity, Severity::warning);  // two GPUs: it costs speed here
  EXPECT_CONTAINS(p2p->remedy, "unset NCCL_P2P_DISABLE");
  ASSERT_TRUE(find(fs, "distributed.nccl-ib-disabled"));
  // NCCL takes name prefixes (eth matches eth0, ib0 matches nothing); Gloo exact names (eth is none).
  ASSERT_EQ(count(fs, "distributed.no-such-interface"), 2);
  std::vector<std::string> titles;
  for (const auto& fi : fs)
    if (fi.id == "distributed.no-such-interface") titles.push_back(fi.title);
  EXPECT_EQ(titles[0], "NCCL_SOCKET_IFNAME names network interfaces this machine does not have: ib0");
  EXPECT_EQ(titles[1], "GLOO_SOCKET_IFNAME names network interfaces this machine does not have: eth");
  EXPECT_CONTAINS(find(fs, "distributed.no-such-interface")->remedy,
                  "set NCCL_SOCKET_IFNAME to one of: docker0, eth0, lo (or unset it)");
  // '^' lists interfaces to avoid and '=' exact names.
  f.env = {{"NCCL_SOCKET_IFNAME", "^docker,lo"}, {"GLOO_SOCKET_IFNAME", "eth0"}};
  EXPECT_EQ(count(run(f), "distributed.no-such-interface"), 0);
  f.env = {{"NCCL_SOCKET_IFNAME", "=eth"}};
  EXPECT_EQ(count(run(f), "distributed.no-such-interface"), 1);
  const auto nccl = find(fs, "distributed.no-nccl");
  ASSERT_TRUE(nccl);
  EXPECT_EQ(nccl->title, "no NCCL library found for the 2 GPUs");
  EXPECT_CONTAINS(find(fs, "resources.small-shm")->remedy, "NCCL also keeps its buffers");

  // One GPU, Gloo built in, NCCL installed, nothing set: nothing to say.
  Facts quiet = gpu_machine("550.54.14", {gpu(0, "NVIDIA A10", 8, 6)});
  quiet.detkit_torch.loaded = quiet.detkit_torch.gloo = true;
  quiet.system.net_interfaces = {"eth0", "lo"};
  for (const auto& fi : run(quiet)) EXPECT_NE(fi.id.rfind("distributed.", 0), 0u) << fi.id;
}

// ---- smoke ----------------------------------------------------------------------------------------

TEST(DiagRules, SmokeOutcomesBecomeFindings) {
  Facts f;
  f.smoke_requested = true;
  SmokeOutcome crashed;
  crashed.device = "cuda:0";
  crashed.crashed = true;
  crashed.crash = "the smoke test child killed by signal 11 (Segmentation fault)";
  SmokeOutcome cudnn;
  cudnn.device = "cuda:1";
  cudnn.failed_stage = "forward fp32";
  cudnn.error = "cuDNN error: CUDNN_STATUS_NOT_INITIALIZED";
  SmokeOutcome amp;
  amp.device = "cuda:2";
  amp.autocast_dtype = "float16";
  amp.max_abs_diff = 3.5;
  amp.tolerance = 0.2;
  SmokeOutcome ok;
  ok.device = "cpu";
  ok.autocast_dtype = "bfloat16";
  ok.max_abs_diff = 0.01;
  ok.tolerance = 0.2;
  f.smoke = {crashed, cudnn, amp, ok};
  const auto fs = run(f);
  ASSERT_TRUE(find(fs, "smoke.crashed"));
  EXPECT_CONTAINS(find(fs, "smoke.crashed")->detail, "signal 11");
  ASSERT_TRUE(find(fs, "smoke.cudnn"));
  EXPECT_EQ(find(fs, "smoke.cudnn")->title, "the smoke test on cuda:1 failed at forward fp32");
  ASSERT_TRUE(find(fs, "smoke.amp-mismatch"));
  ASSERT_TRUE(find(fs, "smoke.ok"));
  EXPECT_EQ(find(fs, "smoke.ok")->severity, Severity::info);
}

TEST(DiagRules, ErrorsComeFirstThenWarningsThenNotes) {
  Facts f = gpu_machine("520.61.05", {gpu(0, "NVIDIA A10", 8, 6)});
  f.env = {{"CUDA_LAUNCH_BLOCKING", "1"}};
  f.frameworks.push_back(torch_wheel("2.5.1+cu124", "12.4"));
  f.libraries.push_back(lib("cudnn", "libcudnn.so.8", "8.9.7", "/a", 0));
  f.libraries.push_back(lib("cudnn", "libcudnn.so.9", "9.1.0", "/a", 0));
  const auto fs = run(f);
  ASSERT_GE(fs.size(), 3u);
  for (std::size_t i = 1; i < fs.size(); ++i) EXPECT_GE(static_cast<int>(fs[i - 1].severity), static_cast<int>(fs[i].severity));
  EXPECT_EQ(fs.front().severity, Severity::error);
}

}  // namespace
}  // namespace detkit::diag
