#include "data/dataset.h"

#include "core/error.h"
#include "core/text.h"

namespace detkit {

const Category* Dataset::find_category(int64_t id) const {
  for (const auto& c : categories)
    if (c.id == id) return &c;
  return nullptr;
}

const Split* Dataset::find_split(const std::string& name) const {
  for (const auto& s : splits)
    if (s.name == name) return &s;
  return nullptr;
}

const Split& Dataset::split(const std::string& name, const std::string& option) const {
  if (const Split* found = find_split(name)) return *found;
  std::vector<std::string> names;
  for (const auto& s : splits) names.push_back(s.name);
  throw UsageError({"the dataset has no split '" + name + "'",
                    names.empty() ? "it has no splits at all" : "its splits: " + join(names, ", "),
                    names.empty() ? "check the dataset path" : "use " + option + " with one of: " + join(names, ", ")});
}

int64_t Dataset::category_index(int64_t id) const {
  for (std::size_t i = 0; i < categories.size(); ++i)
    if (categories[i].id == id) return static_cast<int64_t>(i);
  return -1;
}

std::size_t Dataset::image_count() const {
  std::size_t n = 0;
  for (const auto& s : splits) n += s.images.size();
  return n;
}

std::size_t Dataset::annotation_count() const {
  std::size_t n = 0;
  for (const auto& s : splits)
    for (const auto& im : s.images) n += im.annotations.size();
  return n;
}

}  // namespace detkit
