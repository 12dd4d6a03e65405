// The compatibility tables `detkit doctor` judges versions by, loaded from data/compat.yaml (embedded in
// the binary; see diag/embedded.h). Lookups answer "unknown" (an empty result) rather than guess when a
// version is not in a table.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace detkit::diag {

struct CompatTables {
  struct CudaDriver { std::string cuda, driver; };
  struct MinorCompat { int major = 0; std::string driver; };
  struct ArchRange { std::string cuda; int min_arch = 0, max_arch = 0; };  // arch as 86 for 8.6
  struct TfTested { std::string tensorflow, cuda, cudnn; };
  struct TfArchs { std::string cuda; std::vector<std::string> archs; bool uncertain = false; };
  struct TorchCudnn { std::string torch, cuda, cudnn; };
  struct TorchArchs { std::string cuda, torch_min, torch_max; std::vector<std::string> archs; };

  std::vector<CudaDriver> cuda_driver_min;
  std::vector<MinorCompat> cuda_minor_compat;
  std::vector<ArchRange> cuda_arch_range;
  std::vector<TfTested> tensorflow_tested;
  std::vector<TfArchs> tensorflow_archs;
  std::vector<TorchCudnn> torch_cudnn;
  std::vector<TorchArchs> torch_archs;
  double gpu_busy_fraction = 0.5;
  double min_disk_free_gib = 5;
  double min_shm_mib = 512;
  double min_memory_limit_gib = 8;

  // Minimum driver for CUDA `cuda` ("12.4", "12.4.1"): the row of its major.minor, else "" (unknown).
  std::string driver_for_cuda(const std::string& cuda) const;
  // Minor-version-compatibility floor of CUDA major `major`; "" when the line has none (before 11).
  std::string minor_compat_driver(int major) const;
  // Compute-capability range a toolkit can target: the row of the newest release <= `cuda`.
  std::optional<ArchRange> arch_range(const std::string& cuda) const;
  // TensorFlow's tested configuration for `version` ("2.15.0" -> the 2.15 row); nullopt when unknown.
  std::optional<TfTested> tensorflow(const std::string& version) const;
  // Architectures of official TensorFlow wheels built with CUDA `cuda`; empty when unknown.
  std::vector<std::string> tensorflow_wheel_archs(const std::string& cuda) const;
  // cuDNN of the official torch `torch_version` wheel for CUDA `cuda`; "" when unknown.
  std::string torch_wheel_cudnn(const std::string& torch_version, const std::string& cuda) const;
  // sm_XY / compute_XY of the official torch wheel for CUDA `cuda`; empty when unknown.
  std::vector<std::string> torch_wheel_archs(const std::string& torch_version, const std::string& cuda) const;
};

// Parses compat.yaml text. Throws InternalError naming the row when it is malformed (the embedded file is
// part of the build and tested, so that is a detkit bug).
CompatTables parse_compat_tables(const std::string& yaml_text);

// The tables embedded in this build, parsed once.
const CompatTables& compat_tables();

// A TORCH_CUDA_ARCH_LIST ("7.5;8.0;9.0+PTX", spaces also separate) as sm_XY / compute_XY names:
// {"sm_75", "sm_80", "sm_90", "compute_90"}.
std::vector<std::string> arch_list_to_names(const std::string& list);

}  // namespace detkit::diag
