// Helpers shared by the unit tests.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/error.h"

// Expects `statement` to throw `ErrorType` whose full text (what + why + remedy, as the CLI prints it)
// contains `needle` and whose remedy contains `remedy_needle`.
#define EXPECT_THROW_WITH(statement, ErrorType, needle, remedy_needle)                                  \
  do {                                                                                                \
    bool detkit_thrown = false;                                                                       \
    try {                                                                                             \
      statement;                                                                                      \
    } catch (const ErrorType& e) {                                                                    \
      detkit_thrown = true;                                                                           \
      const std::string text = ::detkit::format_error(e);                                             \
      EXPECT_NE(text.find(needle), std::string::npos) << "error text:\n" << text;                    \
      EXPECT_NE(e.remedy().find(remedy_needle), std::string::npos) << "remedy: " << e.remedy();      \
    } catch (const std::exception& e) {                                                               \
      ADD_FAILURE() << "expected " #ErrorType ", got another exception: " << e.what();                \
      detkit_thrown = true;                                                                           \
    }                                                                                                 \
    if (!detkit_thrown) ADD_FAILURE() << "expected " #ErrorType " from: " #statement;                 \
  } while (0)

namespace detkit::testing {

// A fresh directory under the system temp dir, removed when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace detkit::testing
