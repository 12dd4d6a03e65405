#include <gtest/gtest.h>
#include <stdlib.h>

#include "core/options.h"
#include "test_util.h"

using namespace detkit;

namespace {
struct Fixture {
  int64_t epochs = 100;
  double lr = 0.01;
  std::string format = "coco";
  bool amp = true;
  uint64_t memory = 1ull << 30;
  std::vector<std::string> positional, overrides;
  OptionSet set{"detkit demo", "a command for tests"};
  Fixture() {
    set.add("--epochs", &epochs, "training epochs").alias("-e").range(1, 1000).env("DETKIT_TEST_EPOCHS");
    set.add("--lr", &lr, "learning rate");
    set.add("--format", &format, "layout").choices({"coco", "yolo", "voc"});
    set.add("--amp", &amp, "mixed precision");
    set.add_bytes("--gpu-mem", &memory, "device memory");
  }
};
}  // namespace

TEST(Options, ParsesEveryFormAndKind) {
  Fixture f;
  f.set.parse({"--epochs", "5", "--lr=0.5", "--format", "yolo", "--no-amp", "--gpu-mem", "24GiB"});
  EXPECT_EQ(f.epochs, 5);
  EXPECT_DOUBLE_EQ(f.lr, 0.5);
  EXPECT_EQ(f.format, "yolo");
  EXPECT_FALSE(f.amp);
  EXPECT_EQ(f.memory, 24ull << 30);
  Fixture g;
  g.set.parse({"-e", "7", "--amp=false"});
  EXPECT_EQ(g.epochs, 7);
  EXPECT_FALSE(g.amp);
}

TEST(Options, UnknownOptionNamesTheNearest) {
  Fixture f;
  EXPECT_THROW_WITH(f.set.parse({"--epoch", "3"}), UsageError, "unknown option '--epoch' for 'detkit demo'",
                    "did you mean '--epochs'?");
  Fixture g;
  EXPECT_THROW_WITH(g.set.parse({"--zzzzzz"}), UsageError, "unknown option '--zzzzzz'", "detkit demo --help");
}

TEST(Options, BadValuesNameTheOptionAndShowTheForm) {
  Fixture f;
  EXPECT_THROW_WITH(f.set.parse({"--epochs", "ten"}), UsageError, "option --epochs expects an integer, got 'ten'",
                    "--epochs N");
  Fixture g;
  EXPECT_THROW_WITH(g.set.parse({"--epochs", "0"}), UsageError, "option --epochs is out of range: 0", "between 1 and 1000");
  Fixture h;
  EXPECT_THROW_WITH(h.set.parse({"--format", "cocoo"}), UsageError, "must be one of coco, yolo, voc; got 'cocoo'",
                    "did you mean 'coco'?");
  Fixture i;
  EXPECT_THROW_WITH(i.set.parse({"--lr"}), UsageError, "option '--lr' needs a value", "--lr X");
  Fixture j;
  EXPECT_THROW_WITH(j.set.parse({"--gpu-mem", "lots"}), UsageError, "expects a size", "--gpu-mem SIZE");
  Fixture k;
  EXPECT_THROW_WITH(k.set.parse({"stray"}), UsageError, "takes no argument 'stray'", "detkit demo --help");
}

TEST(Options, EnvironmentIsBelowTheCommandLine) {
  ::setenv("DETKIT_TEST_EPOCHS", "42", 1);
  Fixture f;
  f.set.parse({});
  EXPECT_EQ(f.epochs, 42);
  Fixture g;
  g.set.parse({"--epochs", "3"});
  EXPECT_EQ(g.epochs, 3);
  ::setenv("DETKIT_TEST_EPOCHS", "many", 1);
  Fixture h;
  EXPECT_THROW_WITH(h.set.parse({}), UsageError, "environment variable DETKIT_TEST_EPOCHS (for --epochs) expects an integer",
                    "set DETKIT_TEST_EPOCHS to a valid value (--epochs N) or unset it");
  ::unsetenv("DETKIT_TEST_EPOCHS");
}

TEST(Options, HelpListsEveryOptionWithDefaultAndEnv) {
  Fixture f;
  f.set.parse({"--help"});
  EXPECT_TRUE(f.set.help_requested());
  const std::string help = f.set.help_text();
  EXPECT_NE(help.find("-e, --epochs N\n      training epochs (default: 100; env: DETKIT_TEST_EPOCHS)"), std::string::npos) << help;
  EXPECT_NE(help.find("--format coco|yolo|voc"), std::string::npos);
  EXPECT_NE(help.find("(default: on)"), std::string::npos);
  EXPECT_NE(help.find("(default: 1.0 GiB)"), std::string::npos);
  EXPECT_NE(help.find("-h, --help"), std::string::npos);
}

TEST(Options, RequiredPositionalsAndOverrides) {
  std::string out;
  std::vector<std::string> inputs, overrides;
  OptionSet set("detkit tool", "t");
  set.add("--out", &out, "output").required();
  set.positionals("DATASET", "dataset path", &inputs, 1, 1);
  set.overrides("config overrides", &overrides);
  EXPECT_THROW_WITH(set.parse({"data"}), UsageError, "'detkit tool' needs --out", "add --out TEXT");
  OptionSet again("detkit tool", "t");
  again.add("--out", &out, "output");
  again.positionals("DATASET", "dataset path", &inputs, 1, 1);
  again.overrides("config overrides", &overrides);
  again.parse({"data", "epochs=3", "--out", "x", "augment.fliplr=0"});
  EXPECT_EQ(inputs, std::vector<std::string>{"data"});
  EXPECT_EQ(overrides, (std::vector<std::string>{"epochs=3", "augment.fliplr=0"}));
  OptionSet none("detkit tool", "t");
  none.positionals("DATASET", "dataset path", &inputs, 1, 1);
  EXPECT_THROW_WITH(none.parse({}), UsageError, "'detkit tool' needs DATASET", "usage: detkit tool DATASET");
}

TEST(Options, DeclaringANameTwiceIsABugCaughtAtOnce) {
  int64_t a = 0, b = 0;
  OptionSet set("detkit demo", "t");
  set.add("--count", &a, "first");
  EXPECT_THROW_WITH(set.add("--count", &b, "second"), InternalError, "detkit demo declares --count twice", "report");
}
