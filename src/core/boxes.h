// Axis-aligned boxes with an explicit format. Every box that crosses a module boundary says which
// format it is in; conversions are explicit (the Detectron2 BoxMode idea). Coordinates are in pixels
// unless a function says "normalized". Torch-free.
#pragma once

#include <string>

namespace detkit {

enum class BoxFormat {
  xyxy,    // x1, y1 (top-left corner), x2, y2 (bottom-right corner)
  xywh,    // x1, y1, width, height (COCO)
  cxcywh,  // centre x, centre y, width, height (YOLO, normalized there)
};

const char* to_string(BoxFormat format);

struct Box {
  double a = 0, b = 0, c = 0, d = 0;  // meaning set by `format`
  BoxFormat format = BoxFormat::xyxy;

  Box convert(BoxFormat to) const;
  double width() const;
  double height() const;
  double area() const;        // 0 for degenerate (inverted) boxes
  bool is_finite() const;
};

Box make_xyxy(double x1, double y1, double x2, double y2);
Box make_xywh(double x, double y, double w, double h);
Box make_cxcywh(double cx, double cy, double w, double h);

// Intersection over union of two boxes in any formats; 0 when the union is empty.
double iou(const Box& p, const Box& q);
// The box clipped to [0, width] x [0, height], in xyxy.
Box clip(const Box& box, double width, double height);

}  // namespace detkit
