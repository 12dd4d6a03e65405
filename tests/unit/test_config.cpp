#include <gtest/gtest.h>

#include <fstream>

#include "core/config.h"
#include "core/fs.h"
#include "core/run_config.h"
#include "test_util.h"

using namespace detkit;
using detkit::testing::TempDir;

namespace {
fs::path write(const TempDir& dir, const std::string& name, const std::string& text) {
  const fs::path p = dir / name;
  std::ofstream(p) << text;
  return p;
}
}  // namespace

TEST(Config, DefaultsAreTheInClassValues) {
  const RunConfig c = resolve_run_config("", {});
  EXPECT_EQ(c.epochs, 100);
  EXPECT_EQ(c.imgsz, 640);
  EXPECT_DOUBLE_EQ(c.augment.fliplr, 0.5);
  EXPECT_EQ(c.version, kRunConfigVersion);
}

TEST(Config, FileThenOverridesInOrder) {
  TempDir dir;
  const auto file = write(dir, "run.yaml", "epochs: 30\nlr0: 0.02\naugment:\n  fliplr: 0.0\n  mosaic: 0.5\n");
  const RunConfig c = resolve_run_config(file.string(), {"epochs=40", "augment.mosaic=0", "optimizer=adamw", "epochs=41"});
  EXPECT_EQ(c.epochs, 41);
  EXPECT_DOUBLE_EQ(c.lr0, 0.02);
  EXPECT_DOUBLE_EQ(c.augment.fliplr, 0.0);
  EXPECT_DOUBLE_EQ(c.augment.mosaic, 0.0);
  EXPECT_EQ(c.optimizer, "adamw");
}

TEST(Config, BatchAndLr0MayBeAutoAndAResolvedConfigWritesTheNumber) {
  TempDir dir;
  const auto file = write(dir, "run.yaml", "batch: auto\nlr0: auto\nnominal_batch: 8\nlr_find:\n  steps: 50\n");
  RunConfig c = resolve_run_config(file.string(), {});
  EXPECT_TRUE(c.auto_batch);
  EXPECT_TRUE(c.lr0_auto);
  EXPECT_EQ(c.lr_find.steps, 50);  // batch 16 (the default, unused) may exceed nominal_batch while batch is auto
  const std::string yaml = config_to_yaml(config_root(c));
  EXPECT_NE(yaml.find("batch: auto  #"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("lr0: auto  #"), std::string::npos);
  // A number given later wins over auto, and the written config then holds it.
  c = resolve_run_config(file.string(), {"batch=4", "lr0=0.003"});
  EXPECT_FALSE(c.auto_batch);
  EXPECT_FALSE(c.lr0_auto);
  EXPECT_EQ(c.batch, 4);
  EXPECT_DOUBLE_EQ(c.lr0, 0.003);
  write_resolved_config(dir.path(), c);
  const RunConfig back = resolve_run_config((dir / "config.yaml").string(), {});
  EXPECT_EQ(back.batch, 4);
  EXPECT_DOUBLE_EQ(back.lr0, 0.003);
  EXPECT_FALSE(back.lr0_auto);
  EXPECT_THROW_WITH(resolve_run_config("", {"lr0=fast"}), ConfigError, "config key 'lr0' expects a number or auto, got 'fast'",
                    "lr0=<a number or auto>");
  EXPECT_THROW_WITH(resolve_run_config("", {"batch=0"}), ConfigError, "config key 'batch' is out of range: 0", "[1, 4096]");
  EXPECT_THROW_WITH(resolve_run_config("", {"lr_find.start=1", "lr_find.end=0.1"}), ConfigError,
                    "'lr_find.start' (1) must be below 'lr_find.end' (0.1)", "lr_find.start=1e-6");
  bool listed = false;
  for (const auto& k : config_keys(config_root(c)))
    if (k.key == "lr0") listed = k.type == "float|auto" && k.allowed == "[0, 10] or auto";
  EXPECT_TRUE(listed);
}

TEST(Config, UnknownKeyNamesTheNearestAndTheLine) {
  TempDir dir;
  const auto file = write(dir, "run.yaml", "epochs: 30\nweight_decy: 0.1\n");
  EXPECT_THROW_WITH(resolve_run_config(file.string(), {}), ConfigError, "run.yaml:2: unknown config key 'weight_decy'",
                    "did you mean 'weight_decay'?");
  const auto nested = write(dir, "nested.yaml", "augment:\n  flipud: 0.5\n  flip_lr: 0.1\n");
  EXPECT_THROW_WITH(resolve_run_config(nested.string(), {}), ConfigError, "nested.yaml:3: unknown config key 'augment.flip_lr'",
                    "did you mean 'augment.fliplr'?");
  EXPECT_THROW_WITH(resolve_run_config("", {"agument.fliplr=0"}), ConfigError, "unknown config key 'agument'", "list every key");
  EXPECT_THROW_WITH(resolve_run_config("", {"augment.fliplrr=0"}), ConfigError, "unknown config key 'augment.fliplrr'",
                    "did you mean 'augment.fliplr'?");
}

TEST(Config, StartingFromWeightsLowersOnlyTheRatesLeftUnset) {
  const RunConfig scratch = resolve_run_config("", {});
  EXPECT_DOUBLE_EQ(scratch.lr0, 0.01);
  EXPECT_DOUBLE_EQ(scratch.warmup_epochs, 3.0);
  const RunConfig finetune = resolve_run_config("", {"weights=w.pt"});
  EXPECT_DOUBLE_EQ(finetune.lr0, kFinetuneLr0);
  EXPECT_DOUBLE_EQ(finetune.warmup_epochs, kFinetuneWarmupEpochs);
  const RunConfig given = resolve_run_config("", {"weights=w.pt", "lr0=0.01", "warmup_epochs=3"});
  EXPECT_DOUBLE_EQ(given.lr0, 0.01);  // an explicit value is kept, even when it equals the from-scratch default
  EXPECT_DOUBLE_EQ(given.warmup_epochs, 3.0);
  TempDir dir;
  const auto file = write(dir, "ft.yaml", "weights: w.pt\nwarmup_epochs: 0\n");
  const RunConfig from_file = resolve_run_config(file.string(), {});
  EXPECT_DOUBLE_EQ(from_file.lr0, kFinetuneLr0);
  EXPECT_DOUBLE_EQ(from_file.warmup_epochs, 0.0);
  EXPECT_EQ(resolve_run_config("", {"freeze=backbone"}).freeze, "backbone");
  EXPECT_EQ(resolve_run_config("", {"freeze=10"}).freeze, "10");
  EXPECT_THROW_WITH(resolve_run_config("", {"freeze=neck"}), ConfigError, "'freeze' must be backbone, a layer count 0-23",
                    "freeze=backbone");
  EXPECT_THROW_WITH(resolve_run_config("", {"freeze=24"}), ConfigError, "got '24'", "freeze=N");
}

TEST(Config, TypesRangesAndChoicesAreChecked) {
  TempDir dir;
  const auto file = write(dir, "run.yaml", "epochs: ten\n");
  EXPECT_THROW_WITH(resolve_run_config(file.string(), {}), ConfigError, "run.yaml:1: config key 'epochs' expects an integer, got 'ten'",
                    "epochs: <an integer>");
  EXPECT_THROW_WITH(resolve_run_config("", {"lr0=-1"}), ConfigError, "config key 'lr0' is out of range: -1", "[0, 10]");
  EXPECT_THROW_WITH(resolve_run_config("", {"augment.fliplr=2"}), ConfigError, "'augment.fliplr' is out of range", "[0, 1]");
  EXPECT_THROW_WITH(resolve_run_config("", {"optimizer=adam"}), ConfigError, "must be one of sgd, adamw; got 'adam'",
                    "did you mean 'adamw'?");
  EXPECT_THROW_WITH(resolve_run_config("", {"amp=perhaps"}), ConfigError, "override 'amp=perhaps': config key 'amp' expects true or false", "amp=<true or false>");
  EXPECT_THROW_WITH(resolve_run_config("", {"augment=3"}), ConfigError, "'augment' expects a section", "augment=");
  EXPECT_THROW_WITH(resolve_run_config("", {"imgsz=650"}), ConfigError, "multiple of 32", "imgsz=672");
  EXPECT_THROW_WITH(resolve_run_config("", {"batch=32", "nominal_batch=16"}), ConfigError, "smaller than 'batch'",
                    "at least 32");
  EXPECT_THROW_WITH(resolve_run_config("", {"device=gpu"}), ConfigError, "cpu, cuda, cuda:N or auto", "cuda:0");
  EXPECT_THROW_WITH(resolve_run_config("", {"version=2"}), ConfigError, "'version' is out of range: 2", "[1, 1]");
  EXPECT_THROW_WITH(resolve_run_config("", {"epochs"}), ConfigError, "is not key=value", "epochs=50");
}

TEST(Config, BrokenOrMissingFilesAreConfigErrors) {
  TempDir dir;
  const auto bad = write(dir, "bad.yaml", "epochs: 3\n  lr0: [1,\n");
  EXPECT_THROW_WITH(resolve_run_config(bad.string(), {}), ConfigError, "not valid YAML", "indentation");
  const auto list = write(dir, "list.yaml", "- 1\n- 2\n");
  EXPECT_THROW_WITH(resolve_run_config(list.string(), {}), ConfigError, "must be a map", "detkit config");
  EXPECT_THROW_WITH(resolve_run_config((dir / "missing.yaml").string(), {}), ConfigError, "missing.yaml: file not found",
                    "check the path");
  const auto empty = write(dir, "empty.yaml", "# nothing here\n");
  EXPECT_EQ(resolve_run_config(empty.string(), {}).epochs, 100);
}

TEST(Config, ResolvedConfigRoundTripsThroughItsOwnFile) {
  TempDir dir;
  RunConfig c = resolve_run_config("", {"epochs=7", "data=/data/my set/coco.json", "augment.degrees=12.5", "name=exp 1"});
  const fs::path written = write_resolved_config(dir.path() / "run", c);
  EXPECT_EQ(written, dir.path() / "run" / "config.yaml");
  const std::string text = read_file(written);
  EXPECT_NE(text.find("epochs: 7  # training epochs"), std::string::npos) << text;
  const RunConfig reloaded = resolve_run_config(written.string(), {});
  EXPECT_EQ(config_to_yaml(config_root(c)), config_to_yaml(config_root(const_cast<RunConfig&>(reloaded))));
  EXPECT_EQ(reloaded.data, "/data/my set/coco.json");
  EXPECT_DOUBLE_EQ(reloaded.augment.degrees, 12.5);
  for (const auto& entry : fs::directory_iterator(dir.path() / "run"))
    EXPECT_EQ(entry.path().filename(), "config.yaml") << "a temporary file was left behind";
}

TEST(Config, KeysAreListedWithTypesAndRanges) {
  RunConfig c;
  const auto keys = config_keys(config_root(c));
  bool found = false;
  for (const auto& k : keys) {
    if (k.key != "augment.fliplr") continue;
    found = true;
    EXPECT_EQ(k.type, "float");
    EXPECT_EQ(k.allowed, "[0, 1]");
    EXPECT_EQ(k.value, "0.5");
  }
  EXPECT_TRUE(found);
}
