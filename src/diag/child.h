// Running the parts of the doctor that touch LibTorch and CUDA in a child process, so that a crash, an
// abort or a hang there becomes a finding instead of taking the doctor down with it.
//
// Protocol: the child (`detkit doctor __child torch-info|smoke DEVICE`, see cmd_doctor.cpp) prints one
// JSON object on stdout and exits 0; anything else (a signal, another exit code, no JSON, a timeout) is
// reported from the ChildResult.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "diag/facts.h"

namespace detkit::diag {

struct ChildResult {
  bool started = false;
  std::string start_error;  // why the process could not be started
  int exit_code = -1;       // when it exited normally
  int signal = 0;           // when a signal ended it
  bool timed_out = false;   // killed after the timeout
  std::string out, err;     // everything it wrote
  double seconds = 0;
};

// Starts argv[0] (a path) with `argv`, the current environment plus `extra_env`, and stdin from /dev/null;
// collects stdout and stderr; kills it (SIGKILL) after `timeout_seconds`. Never throws.
ChildResult run_child(const std::vector<std::string>& argv, double timeout_seconds,
                      const std::vector<std::pair<std::string, std::string>>& extra_env = {});

// "killed by signal 11 (Segmentation fault)", "exited with code 3", "timed out after 60 s", "could not
// start: ...", followed by the last lines of stderr.
std::string describe_child_failure(const ChildResult& result, double timeout_seconds);

// detkit's LibTorch facts from the torch-info child:
//   {"loaded": true, "version": "2.5.1", "cuda": "12.4", "cudnn": "9.1.0", "arch_flags": "...", "device_count": 1,
//    "devices": ["cuda:0 ..."]}  or  {"loaded": false, "error": "..."}.
// A child that failed gives loaded=false with the failure as the error.
DetkitTorchFacts parse_torch_info(const ChildResult& result, const std::string& built_with, double timeout_seconds);

// One smoke outcome from the smoke child:
//   {"device": "cuda:0", "device_name": "...", "failed_stage": "", "error": "", "autocast_dtype": "float16",
//    "max_abs_diff": 0.001, "tolerance": 0.05, "seconds": 0.4}.
// A child that died gives crashed=true with describe_child_failure as `crash`.
SmokeOutcome parse_smoke(const ChildResult& result, const std::string& device, double timeout_seconds);

// The arch names in NVCC flags ("-gencode;arch=compute_80,code=sm_80;-gencode;arch=compute_90,code=compute_90")
// or in a plain list ("sm_80 sm_90 compute_90"): {"sm_80", "compute_90"} (deduplicated, in order).
std::vector<std::string> archs_from_nvcc_flags(const std::string& flags);

}  // namespace detkit::diag
