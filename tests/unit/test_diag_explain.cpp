// `detkit explain`'s knowledge base (data/explain.yaml) against the realistic logs in
// tests/diag/explain_cases.yaml, root-cause ranking, and fixes made specific by doctor facts.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "diag/explain.h"

namespace detkit::diag {
namespace {

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

YAML::Node cases() {
  static const YAML::Node node = YAML::LoadFile(std::string(DETKIT_DIAG_TEST_DATA) + "/explain_cases.yaml");
  return node["cases"];
}

std::vector<std::string> ids(const std::vector<Explanation>& xs) {
  std::vector<std::string> out;
  for (const auto& x : xs) out.push_back(x.entry->id);
  return out;
}

std::string join_ids(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

TEST(DiagExplain, KnowledgeBaseHasAtLeastFiftyExplainedErrors) {
  const auto& kb = knowledge_base();
  int real = 0;
  for (const auto& e : kb.entries) {
    if (e.category == "noise") continue;
    ++real;
    EXPECT_FALSE(e.meaning.empty()) << e.id;
    EXPECT_FALSE(e.fix.empty()) << e.id;
    EXPECT_FALSE(e.causes.empty()) << e.id;
  }
  EXPECT_GE(real, 50);
}

TEST(DiagExplain, EveryEntryIsTheRootCauseOfOneTestLog) {
  std::set<std::string> expected, noise;
  for (const auto& c : cases()) {
    if (c["expect"]) expected.insert(c["expect"].as<std::string>());
    for (const auto& n : c["noise"]) noise.insert(n.as<std::string>());
  }
  for (const auto& c : YAML::LoadFile(std::string(DETKIT_DIAG_TEST_DATA) + "/real_logs.yaml")["cases"])
    expected.insert(c["expect"].as<std::string>());
  for (const auto& e : knowledge_base().entries) {
    if (e.category == "noise")
      EXPECT_TRUE(noise.count(e.id)) << "noise entry without a test log: " << e.id;
    else
      EXPECT_TRUE(expected.count(e.id)) << "entry without a test log where it is the root cause: " << e.id;
  }
}

TEST(DiagExplain, EachTestLogGivesItsRootCause) {
  int n = 0;
  for (const auto& c : cases()) {
    const std::string log = c["log"].as<std::string>();
    const auto r = explain_log(log, knowledge_base(), nullptr);
    const std::string label = c["expect"] ? c["expect"].as<std::string>() : "(noise only)";
    SCOPED_TRACE("case " + std::to_string(++n) + ": " + label + "\nfound: " + join_ids(ids(r.causes)) + "\nlog:\n" + log);
    // Realistic excerpts: the error sits among unrelated lines.
    EXPECT_GE(std::count(log.begin(), log.end(), '\n'), 3);
    if (c["expect"]) {
      ASSERT_TRUE(r.recognised());
      EXPECT_EQ(r.causes.front().entry->id, c["expect"].as<std::string>());
    } else {
      EXPECT_FALSE(r.recognised());
    }
    const auto found = ids(r.causes);
    for (const auto& a : c["also"])
      EXPECT_NE(std::find(found.begin(), found.end(), a.as<std::string>()), found.end()) << "also: " << a.as<std::string>();
    const auto noise = ids(r.noise);
    for (const auto& a : c["noise"])
      EXPECT_NE(std::find(noise.begin(), noise.end(), a.as<std::string>()), noise.end()) << "noise: " << a.as<std::string>();
  }
  EXPECT_GE(n, 50);
}

// Logs reach detkit pasted from issue threads, chat and terminals: the same message wrapped in markdown,
// quoted, in code marks, with Windows line ends, a rank prefix or HTML entities must give the same cause.
TEST(DiagExplain, EachTestLogGivesItsRootCauseHoweverItIsPasted) {
  const std::vector<std::pair<std::string, std::function<std::string(const std::string&)>>> pastings = {
      {"markdown bold", [](const std::string& l) { return l.empty() ? l : "**" + l + "**"; }},
      {"quoted reply", [](const std::string& l) { return "> " + l; }},
      {"code marks", [](const std::string& l) { return "`" + l + "`"; }},
      {"windows line ends and tabs", [](const std::string& l) { return "\t" + l + "\r"; }},
      {"rank prefix", [](const std::string& l) { return "[rank0]: " + l; }},
      {"html entities", [](std::string l) {
         std::string out;
         for (char c : l) out += c == '\'' ? "&#39;" : c == '"' ? "&quot;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : std::string(1, c);
         return out;
       }},
      {"typographic quotes", [](std::string l) {
         std::string out;
         bool open = true;
         for (char c : l) {
           if (c != '\'') {
             out += c;
             continue;
           }
           out += open ? "\u2018" : "\u2019";
           open = !open;
         }
         return out;
       }},
  };
  int checked = 0;
  for (const auto& c : cases()) {
    if (!c["expect"]) continue;
    const std::string expect = c["expect"].as<std::string>();
    const std::string log = c["log"].as<std::string>();
    for (const auto& [name, paste] : pastings) {
      std::istringstream in(log);
      std::string pasted;
      for (std::string line; std::getline(in, line);) pasted += paste(line) + "\n";
      const auto r = explain_log(pasted, knowledge_base(), nullptr);
      ASSERT_TRUE(r.recognised()) << name << ", " << expect << ":\n" << pasted;
      EXPECT_EQ(r.causes.front().entry->id, expect) << name << "; found " << join_ids(ids(r.causes)) << ":\n" << pasted;
      ++checked;
    }
  }
  EXPECT_GE(checked, 7 * 60);
}

TEST(DiagExplain, NormalisingKeepsTheFrameworksOwnText) {
  EXPECT_EQ(normalise_log_line("> **RuntimeError: CUDA out of memory.** Tried to allocate"),
            "RuntimeError: CUDA out of memory. Tried to allocate");
  EXPECT_EQ(normalise_log_line("\x1b[31mERROR\x1b[0m:  `cudnn`\t failed\r"), "ERROR: cudnn failed");
  EXPECT_EQ(normalise_log_line("Could not run &#39;torchvision::nms&#39; with &quot;CUDA&quot; &gt; x"),
            "Could not run 'torchvision::nms' with \"CUDA\" > x");
  EXPECT_EQ(normalise_log_line("Could not run \u2018torchvision::nms\u2019 \u201cCUDA\u201d"), "Could not run 'torchvision::nms' \"CUDA\"");
  // Names keep their underscores and stars between words.
  EXPECT_EQ(normalise_log_line("File \"/x/torch/cuda/__init__.py\", line 3, a*b"), "File \"/x/torch/cuda/__init__.py\", line 3, a*b");
  EXPECT_EQ(normalise_log_line("CUBLAS_STATUS_EXECUTION_FAILED"), "CUBLAS_STATUS_EXECUTION_FAILED");
}

// The explanation repeats the numbers the log shows, decoded.
TEST(DiagExplain, UsesTheLogsOwnNumbers) {
  const auto driver = explain_log(
      "UserWarning: CUDA initialization: The NVIDIA driver on your system is too old (found version 9000). Please update\n",
      knowledge_base(), nullptr);
  ASSERT_TRUE(driver.recognised());
  EXPECT_EQ(driver.causes[0].entry->id, "torch-driver-too-old");
  EXPECT_TRUE(contains(driver.causes[0].in_the_log, "version 9000: it supports CUDA up to 9.0")) << driver.causes[0].in_the_log;
  EXPECT_TRUE(contains(render_explanation(driver, "x"), "  in this log: the driver reports version 9000: it supports CUDA up to 9.0"));

  const auto cudnn = explain_log(
      "2019-06-01 E tensorflow/stream_executor/cuda/cuda_dnn.cc:324] Loaded runtime CuDNN library: 7.4.1 but source was "
      "compiled with: 7.6.0.  CuDNN library major and minor version needs to match\n",
      knowledge_base(), nullptr);
  ASSERT_TRUE(cudnn.recognised());
  EXPECT_EQ(cudnn.causes[0].in_the_log, "cuDNN 7.4.1 is installed and loaded, TensorFlow was built with 7.6.0");
  EXPECT_TRUE(contains(cudnn.causes[0].entry->fix, "pin TensorFlow to the version built for the cuDNN you have"));

  const auto devices = explain_log(
      "$ export CUDA_VISIBLE_DEVICES=2,3\n$ python train.py --device 3\nRuntimeError: CUDA error: invalid device ordinal\n",
      knowledge_base(), nullptr);
  ASSERT_TRUE(devices.recognised());
  EXPECT_TRUE(devices.log_facts.devices_shown);
  EXPECT_EQ(devices.log_facts.devices, "2,3");
  EXPECT_TRUE(contains(devices.causes[0].in_the_log, "the log shows CUDA_VISIBLE_DEVICES=2,3")) << devices.causes[0].in_the_log;
  EXPECT_TRUE(contains(render_explanation(devices, "x"), "the log shows: CUDA_VISIBLE_DEVICES=2,3\n"));

  const auto wheel = explain_log("torch 2.1.2+cpu\ncuda available: False\nAssertionError: Torch not compiled with CUDA enabled\n",
                                 knowledge_base(), nullptr);
  EXPECT_EQ(wheel.log_facts.framework, "2.1.2+cpu");
  const auto j = nlohmann::json::parse(explanation_to_json(wheel, "x"));
  EXPECT_EQ(j["log_facts"]["framework"], "2.1.2+cpu");
  EXPECT_TRUE(j["log_facts"]["cuda_visible_devices"].is_null());
}

// The doctor's facts describe the machine running detkit. A log whose nvidia-smi output shows a driver
// was written elsewhere when this machine has none: "no NVIDIA driver" would contradict the log.
TEST(DiagExplain, HostFactsDoNotContradictTheLogsNvidiaSmi) {
  const std::string log =
      "+-----------------------------------------------------------------------------+\n"
      "| NVIDIA-SMI 470.57.02    Driver Version: 470.57.02    CUDA Version: 11.4     |\n"
      "+-----------------------------------------------------------------------------+\n"
      "RuntimeError: CUDA error: CUDA driver version is insufficient for CUDA runtime version\n";
  Facts none;
  const auto r = explain_log(log, knowledge_base(), &none);
  ASSERT_TRUE(r.recognised());
  EXPECT_EQ(r.log_facts.driver, "470.57.02");
  EXPECT_EQ(r.log_facts.driver_cuda, "11.4");
  EXPECT_EQ(r.causes[0].on_this_machine, "");
  EXPECT_EQ(r.causes[0].in_the_log, "nvidia-smi in the log shows driver 470.57.02, which supports CUDA up to 11.4");
  const std::string text = render_explanation(r, "x");
  EXPECT_FALSE(contains(text, "no NVIDIA driver")) << text;
  EXPECT_TRUE(contains(text, "the log shows: NVIDIA driver 470.57.02 (CUDA up to 11.4) in nvidia-smi's output")) << text;
  // Without nvidia-smi in the log, the machine's own facts are given, labelled as such.
  const auto bare = explain_log("CUDA driver version is insufficient for CUDA runtime version\n", knowledge_base(), &none);
  EXPECT_TRUE(contains(render_explanation(bare, "x"),
                       "on the machine running detkit (which may not be the one that wrote the log): this machine has no NVIDIA driver"));
}

// Logs that users pasted in public issue threads, as they pasted them, with the resolution each thread
// reached: the entry the resolution points at must come out as the root cause, and the explanation must
// repeat the values the log shows that the resolution turned on.
TEST(DiagExplain, RealLogsFromIssueThreadsGiveTheCauseTheirThreadsFound) {
  const YAML::Node real = YAML::LoadFile(std::string(DETKIT_DIAG_TEST_DATA) + "/real_logs.yaml")["cases"];
  std::set<std::string> threads;
  int n = 0, resolved = 0;
  for (const auto& c : real) {
    const std::string thread = c["thread"].as<std::string>();
    const std::string log = c["log"].as<std::string>();
    const std::string expect = c["expect"].as<std::string>();
    SCOPED_TRACE(thread + " (" + expect + ")\nlog:\n" + log);
    ++n;
    EXPECT_EQ(thread.rfind("https://github.com/", 0), 0u);
    EXPECT_TRUE(threads.insert(thread).second) << "the same thread twice";
    EXPECT_FALSE(c["resolution"].as<std::string>().empty());
    resolved += c["resolved"].as<bool>() ? 1 : 0;
    const auto r = explain_log(log, knowledge_base(), nullptr);
    ASSERT_TRUE(r.recognised()) << render_explanation(r, "log");
    EXPECT_EQ(r.causes.front().entry->id, expect) << "found: " << join_ids(ids(r.causes));
    const std::string text = render_explanation(r, "log");
    for (const auto& m : c["mentions"]) EXPECT_TRUE(contains(text, m.as<std::string>())) << "mentions: " << m.as<std::string>() << "\n" << text;
  }
  EXPECT_GE(n, 100);
  EXPECT_GE(resolved, 40);  // threads that reached a resolution
}

TEST(DiagExplain, UnknownLogSaysSoAndSuggestsTheDoctor) {
  const std::string log = "epoch 1 loss 0.31\nepoch 2 loss 0.29\nSegmentation fault (core dumped)\n";
  const auto r = explain_log(log, knowledge_base(), nullptr);
  EXPECT_FALSE(r.recognised());
  EXPECT_EQ(r.lines, 3);
  const std::string text = render_explanation(r, "train.log");
  EXPECT_TRUE(contains(text, "no known error in train.log (3 lines)")) << text;
  EXPECT_TRUE(contains(text, "run 'detkit doctor'")) << text;
}

TEST(DiagExplain, RendersMeaningCausesAndFixWithTheLine) {
  const std::string log = "start\nRuntimeError: CUDA error: no kernel image is available for execution on the device\nend\n";
  const auto r = explain_log(log, knowledge_base(), nullptr);
  const std::string text = render_explanation(r, "job.err");
  EXPECT_TRUE(contains(text, "root cause: the binary has no code for this GPU  [no-kernel-image, PyTorch / CUDA extensions]")) << text;
  EXPECT_TRUE(contains(text, "  line 2: RuntimeError: CUDA error: no kernel image is available")) << text;
  EXPECT_TRUE(contains(text, "likely causes, most likely first:\n    1. ")) << text;
  EXPECT_TRUE(contains(text, "  fix: install a build whose arch list covers the GPU")) << text;
  const auto j = nlohmann::json::parse(explanation_to_json(r, "job.err"));
  EXPECT_EQ(j["recognised"], true);
  EXPECT_EQ(j["causes"][0]["id"], "no-kernel-image");
  EXPECT_EQ(j["causes"][0]["line_number"], 2);
}

TEST(DiagExplain, RepeatedLinesAreCountedOnce) {
  std::string log;
  for (int i = 0; i < 5; ++i) log += "E0101 cuda_driver.cc:936] failed to allocate 2.00G (2147483648 bytes) from device: CUDA_ERROR_OUT_OF_MEMORY\n";
  const auto r = explain_log(log, knowledge_base(), nullptr);
  ASSERT_EQ(r.causes.size(), 1u);
  EXPECT_EQ(r.causes[0].occurrences, 5);
  EXPECT_EQ(r.causes[0].line_number, 1);
}

// ---- fixes made specific by doctor facts ----------------------------------------------------------------

LibraryFile lib(const std::string& family, const std::string& soname, const std::string& version, const std::string& dir,
                bool on_path) {
  LibraryFile l;
  l.family = family;
  l.soname = soname;
  l.version = version;
  l.dir = dir;
  l.on_loader_path = on_path;
  l.loader_rank = on_path ? 0 : -1;
  return l;
}

TEST(DiagExplain, MissingCudnnNamesTheOneThatIsInstalled) {
  Facts f;
  f.libraries.push_back(lib("cudnn", "libcudnn.so.9", "9.1.0", "/usr/lib/x86_64-linux-gnu", true));
  const auto r = explain_log(
      "Could not load dynamic library 'libcudnn.so.8'; dlerror: libcudnn.so.8: cannot open shared object file\n",
      knowledge_base(), &f);
  ASSERT_TRUE(r.recognised());
  EXPECT_EQ(r.causes[0].captured, "libcudnn.so.8");
  EXPECT_EQ(r.causes[0].on_this_machine,
            "libcudnn.so.8 is missing while libcudnn.so.9 (9.1.0) in /usr/lib/x86_64-linux-gnu is installed; install "
            "cuDNN 8 (pip install nvidia-cudnn-cu12==8.*, or the system package for your CUDA) or use a build made for "
            "the cuDNN you have");
  EXPECT_TRUE(contains(render_explanation(r, "x"), "  on the machine running detkit (which may not be the one that wrote the log): libcudnn.so.8 is missing while"));
}

TEST(DiagExplain, LibraryOffTheLoaderPathGetsTheExportLine) {
  Facts f;
  f.libraries.push_back(lib("cudart", "libcudart.so.11.0", "11.8.89", "/usr/local/cuda-11.8/lib64", false));
  const auto r = explain_log("dlerror: libcudart.so.11.0: cannot open shared object file: No such file or directory\n",
                             knowledge_base(), &f);
  ASSERT_TRUE(r.recognised());
  EXPECT_TRUE(contains(r.causes[0].on_this_machine, "export LD_LIBRARY_PATH=/usr/local/cuda-11.8/lib64:$LD_LIBRARY_PATH"))
      << r.causes[0].on_this_machine;
}

TEST(DiagExplain, OutOfMemoryNamesTheProcessesHoldingTheGpu) {
  Facts f;
  GpuFacts g;
  g.index = 0;
  g.name = "NVIDIA A10";
  g.memory_total = 24ull << 30;
  g.memory_free = 1ull << 30;
  g.processes.push_back({777, "jupyter", 20ull << 30});
  f.gpus.push_back(g);
  const auto r = explain_log("torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n", knowledge_base(), &f);
  ASSERT_TRUE(r.recognised());
  EXPECT_EQ(r.causes[0].on_this_machine, "now: GPU 0 has 1.0 GiB free of 24.0 GiB (held by pid 777 jupyter 20.0 GiB)");
}

TEST(DiagExplain, DriverErrorsSayWhatDriverThisMachineHas) {
  Facts none;
  const auto r = explain_log("CUDA driver version is insufficient for CUDA runtime version\n", knowledge_base(), &none);
  EXPECT_EQ(r.causes[0].on_this_machine, "this machine has no NVIDIA driver loaded: install one, or run on the CPU");
  Facts f;
  f.driver.kernel_module = true;
  f.driver.kernel_version = "470.82.01";
  f.driver.cuda_driver_api = 11040;
  const auto r2 = explain_log("CUDA driver version is insufficient for CUDA runtime version\n", knowledge_base(), &f);
  EXPECT_TRUE(contains(r2.causes[0].on_this_machine, "driver is 470.82.01 (supports CUDA up to 11.4)"));
}

TEST(DiagExplain, MalformedKnowledgeBasesAreRejectedWithTheEntry) {
  try {
    parse_knowledge_base("entries:\n  - {id: x, source: s, category: driver, patterns: ['(unclosed'], title: t, meaning: m, fix: f}\n");
    FAIL() << "expected InternalError";
  } catch (const InternalError& e) {
    EXPECT_TRUE(contains(e.message(), "entry 'x' has an invalid pattern")) << e.message();
  }
  try {
    parse_knowledge_base("entries:\n  - {id: x, source: s, category: weather, patterns: ['a'], title: t, meaning: m, fix: f}\n");
    FAIL() << "expected InternalError";
  } catch (const InternalError& e) {
    EXPECT_TRUE(contains(e.message(), "unknown category 'weather'")) << e.message();
  }
}

}  // namespace
}  // namespace detkit::diag
