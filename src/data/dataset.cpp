#include "data/dataset.h"

namespace detkit {

const Category* Dataset::find_category(int64_t id) const {
  for (const auto& c : categories)
    if (c.id == id) return &c;
  return nullptr;
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
