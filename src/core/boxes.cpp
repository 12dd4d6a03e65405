#include "core/boxes.h"

#include <algorithm>
#include <cmath>

namespace detkit {

const char* to_string(BoxFormat format) {
  switch (format) {
    case BoxFormat::xyxy: return "xyxy";
    case BoxFormat::xywh: return "xywh";
    case BoxFormat::cxcywh: return "cxcywh";
  }
  return "?";
}

Box make_xyxy(double x1, double y1, double x2, double y2) { return {x1, y1, x2, y2, BoxFormat::xyxy}; }
Box make_xywh(double x, double y, double w, double h) { return {x, y, w, h, BoxFormat::xywh}; }
Box make_cxcywh(double cx, double cy, double w, double h) { return {cx, cy, w, h, BoxFormat::cxcywh}; }

Box Box::convert(BoxFormat to) const {
  if (to == format) return *this;
  double x1 = a, y1 = b, x2 = c, y2 = d;
  if (format == BoxFormat::xywh) {
    x2 = a + c;
    y2 = b + d;
  } else if (format == BoxFormat::cxcywh) {
    x1 = a - c / 2;
    y1 = b - d / 2;
    x2 = a + c / 2;
    y2 = b + d / 2;
  }
  switch (to) {
    case BoxFormat::xyxy: return make_xyxy(x1, y1, x2, y2);
    case BoxFormat::xywh: return make_xywh(x1, y1, x2 - x1, y2 - y1);
    case BoxFormat::cxcywh: return make_cxcywh((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1);
  }
  return *this;
}

double Box::width() const { const Box q = convert(BoxFormat::xyxy); return q.c - q.a; }
double Box::height() const { const Box q = convert(BoxFormat::xyxy); return q.d - q.b; }
double Box::area() const { return std::max(0.0, width()) * std::max(0.0, height()); }
bool Box::is_finite() const { return std::isfinite(a) && std::isfinite(b) && std::isfinite(c) && std::isfinite(d); }

double iou(const Box& p, const Box& q) {
  const Box x = p.convert(BoxFormat::xyxy), y = q.convert(BoxFormat::xyxy);
  const double iw = std::max(0.0, std::min(x.c, y.c) - std::max(x.a, y.a));
  const double ih = std::max(0.0, std::min(x.d, y.d) - std::max(x.b, y.b));
  const double inter = iw * ih;
  const double uni = x.area() + y.area() - inter;
  return uni > 0 ? inter / uni : 0.0;
}

Box clip(const Box& box, double width, double height) {
  const Box x = box.convert(BoxFormat::xyxy);
  return make_xyxy(std::clamp(x.a, 0.0, width), std::clamp(x.b, 0.0, height), std::clamp(x.c, 0.0, width),
                   std::clamp(x.d, 0.0, height));
}

}  // namespace detkit
