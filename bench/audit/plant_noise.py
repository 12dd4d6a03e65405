#!/usr/bin/env python3
"""Plant seeded label noise into a copy of a Pascal VOC dataset (the `detkit audit` benchmark).

usage: plant_noise.py SRC_VOC_DIR OUT_DIR --seed S [--rate 0.05] [--splits train[,val]]
                      [--kinds wrong_class,badly_placed,missing,spurious] [--planted FILE] [--copy-images]

SRC_VOC_DIR holds Annotations/*.xml and JPEGImages/ (and usually ImageSets/Main/{train,val}.txt). OUT_DIR must
not exist or be empty. Every file of SRC is reproduced under OUT_DIR: images (.jpg .jpeg .png .bmp .tif .tiff
.webp) are hard-linked when possible (copied with --copy-images or across file systems), everything else is
copied; only the XML of images that receive a change is rewritten (xml.etree: other elements, comments and
whitespace are kept). Standard library only.

In the images of the listed splits only (ImageSets/Main/<split>.txt; the split "all" means every XML when
there are no split lists), with N the number of ORIGINAL boxes there and n = max(1, round(rate * N)) (0 when
rate is 0), each kind is planted n times; the boxes changed are distinct (a box gets at most one kind):
  wrong_class   the class is replaced by another of the dataset's classes, uniformly
  badly_placed  the box moves by dx = +-u*w, dy = +-v*h, u, v uniform in [0.3, 0.5], random signs; clipped to
                the image; when clipping would lose more than half the area, the opposite sign is used
                (x flipped, then y, then both; failing all, the sign keeping the most area)
  missing       the box is deleted
  spurious      a box is added on a random image of the splits: w, h of a random real box of the splits, a
                uniform position fully inside the image, a class drawn from the class frequency, IoU < 0.1 with
                every box there (original and noisy); 200 tries per image, then another image
Boxes narrower or shorter than 2 pixels (BCCD has two zero-size ones) are never chosen, nor used as sizes.

Boxes in planted.json are in detkit's pixels, as detkit's VOC reader reads them and as audit.json writes them:
[xmin - 1, ymin - 1, xmax, ymax] of the XML numbers (xyxy). "voc_original" / "voc_noisy" hold the numbers as
written in the XML. New numbers are written as integers, in the source's own convention: a shift adds the
integer pixel offset to the numbers as read, and clipping keeps xmin, ymin >= 1 (>= 0 when the source has any
0) and xmax <= width, ymax <= height.

planted.json goes to --planted FILE, by default OUT_DIR/../<OUT_DIR name>-planted.json, i.e. beside the noisy
dataset, not inside it (so the answers are not part of the dataset the audit reads). Layout:
  {"version": 1, "source": ..., "dataset": ..., "seed": S, "rate": r, "splits": [...], "classes": [...],
   "images": images in the splits, "original_boxes": N, "per_kind": n, "counts": {kind: n, ...},
   "box_convention": "...",
   "changes": [{"kind": "wrong_class" | "badly_placed" | "missing" | "spurious",
                "split": "train", "file": "BloodImage_00001.jpg" (relative to JPEGImages),
                "xml": "Annotations/BloodImage_00001.xml" (relative to the dataset root),
                "object_index": 1-based <object> position in the source XML (null for spurious),
                "original_box": [x1, y1, x2, y2] | null, "original_class": "RBC" | null,
                "noisy_box": [...] | null, "noisy_class": ... | null,
                "voc_original": [xmin, ymin, xmax, ymax] | null, "voc_noisy": [...] | null,
                "shift": [dx, dy] (badly_placed only),
                "max_iou_other": highest IoU of the (noisy, or for missing the deleted) box with any other box
                                 of the noisy image (a deleted box still covered by a neighbour at IoU >= 0.3
                                 cannot be found as missing)}, ...]}
"""
import argparse
import copy
import json
import math
import os
import random
import shutil
import struct
import sys
import xml.etree.ElementTree as ET

KINDS = ("wrong_class", "badly_placed", "missing", "spurious")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
MIN_SIDE = 2  # pixels: smaller boxes are never changed nor used as spurious sizes


def die(msg):
    print(f"plant_noise: error: {msg}", file=sys.stderr)
    sys.exit(2)


# ------------------------------------------------------------------------------------------------- geometry

def iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def area(v):
    return max(0, v[2] - v[0]) * max(0, v[3] - v[1])


def detkit_box(voc):
    """detkit's VOC reader: [xmin - 1, ymin - 1, xmax, ymax]."""
    return [voc[0] - 1, voc[1] - 1, voc[2], voc[3]]


def num(v):
    """A number as JSON wants it: int when integral."""
    return int(v) if float(v).is_integer() else float(v)


# ------------------------------------------------------------------------------------------------ image size

def image_size_from_header(path):
    """(width, height) from a JPEG or PNG header, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
            if head[:8] == b"\x89PNG\r\n\x1a\n":
                return struct.unpack(">II", head[16:24])
            if head[:2] != b"\xff\xd8":
                return None
            f.seek(2)
            while True:
                b = f.read(1)
                while b and b != b"\xff":
                    b = f.read(1)
                while b == b"\xff":
                    b = f.read(1)
                if not b:
                    return None
                marker = b[0]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    continue
                length = struct.unpack(">H", f.read(2))[0]
                if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    h, w = struct.unpack(">xHH", f.read(5))
                    return (w, h)
                f.seek(length - 2, 1)
    except (OSError, struct.error):
        return None


# ------------------------------------------------------------------------------------------------------ XML

def parse_xml(path):
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True, insert_pis=True))
    with open(path, "rb") as f:
        data = f.read()
    root = ET.fromstring(data, parser=parser)
    return root, data


def to_number(text):
    try:
        return float((text or "").strip())
    except ValueError:
        return None


def fmt_int(v):
    return str(int(round(v)))


def remove_child(parent, child):
    """Removes child keeping the whitespace layout: the removed last child's tail moves to its predecessor."""
    children = list(parent)
    i = children.index(child)
    if i == len(children) - 1 and i > 0:
        children[i - 1].tail = child.tail
    parent.remove(child)


def indent_unit(root):
    text = root.text or ""
    unit = text.lstrip("\r\n")
    return unit if unit and unit.strip() == "" else "\t"


def make_object(root, template, name, voc):
    """A new <object> (name, pose, truncated, difficult, bndbox) laid out like `template` when there is one."""
    if template is not None:
        obj = copy.deepcopy(template)
        for child in list(obj):
            if child.tag not in ("name", "pose", "truncated", "difficult", "bndbox"):
                remove_child(obj, child)
        for tag, value in (("name", name), ("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
            el = obj.find(tag)
            if el is not None:
                el.text = value
        if obj.find("name") is None:
            el = ET.Element("name")
            el.text = name
            el.tail = obj.text
            obj.insert(0, el)
        box = obj.find("bndbox")
        for k, key in enumerate(("xmin", "ymin", "xmax", "ymax")):
            el = box.find(key)
            if el is None:
                el = ET.SubElement(box, key)
            el.text = fmt_int(voc[k])
        return obj
    unit = indent_unit(root)
    obj = ET.Element("object")
    for tag, value in (("name", name), ("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
        ET.SubElement(obj, tag).text = value
    box = ET.SubElement(obj, "bndbox")
    for k, key in enumerate(("xmin", "ymin", "xmax", "ymax")):
        ET.SubElement(box, key).text = fmt_int(voc[k])
    ET.indent(obj, space=unit, level=1)
    return obj


def append_object(root, obj):
    children = list(root)
    objects = root.findall("object")
    if not children:
        unit = indent_unit(root)
        root.text = "\n" + unit
        obj.tail = "\n"
        root.append(obj)
        return
    after = objects[-1] if objects else children[-1]
    i = children.index(after)
    between = children[0].tail if len(children) > 1 else after.tail
    obj.tail = after.tail
    after.tail = between
    root.insert(i + 1, obj)


def write_xml(root, original_bytes, path):
    declaration = original_bytes.lstrip().startswith(b"<?xml")
    body = ET.tostring(root, encoding="unicode")
    text = ""
    if declaration:
        first = original_bytes.lstrip().split(b"?>", 1)[0] + b"?>"
        text = first.decode("utf-8", "replace") + "\n"
    text += body
    if original_bytes.rstrip(b" \t").endswith(b"\n"):
        text += "\n"
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)  # a new inode: never writes through a link into the source


# -------------------------------------------------------------------------------------------------- dataset

class Box:
    def __init__(self, obj, index, name, voc):
        self.obj = obj          # the <object> element
        self.index = index      # 1-based position among the XML's <object>s
        self.name = name
        self.voc = voc          # [xmin, ymin, xmax, ymax] as read
        self.planted = None     # the kind planted on it


class Image:
    def __init__(self, split, image_id, xml_rel, xml_path):
        self.split = split
        self.id = image_id
        self.xml_rel = xml_rel
        self.xml_path = xml_path
        self.root = None
        self.data = None
        self.file = None
        self.width = self.height = 0
        self.boxes = []
        self.added = []  # voc boxes of spurious objects
        self.changed = False


def read_split_ids(src, splits):
    sets = os.path.join(src, "ImageSets", "Main")
    out = []
    for split in splits:
        path = os.path.join(sets, split + ".txt")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                ids = [line.strip() for line in f if line.strip()]
            if any(len(i.split()) > 1 for i in ids):
                die(f"{path} is a per-class list, not a split")
            out.append((split, ids))
        elif split == "all":
            ann = os.path.join(src, "Annotations")
            ids = sorted(os.path.splitext(n)[0] for n in os.listdir(ann) if n.endswith(".xml"))
            out.append((split, ids))
        else:
            die(f"no split '{split}': {path} does not exist")
    return out


def image_file(src, image_id, filename):
    """The image file detkit's VOC reader uses: <filename> when it exists, else the id with an image extension."""
    jpeg = os.path.join(src, "JPEGImages")
    if filename and os.path.exists(os.path.join(jpeg, filename)):
        return filename
    for ext in (".jpg", ".jpeg", ".png", ".JPG", ".PNG"):
        if os.path.exists(os.path.join(jpeg, image_id + ext)):
            return image_id + ext
    return image_id + ".jpg"


def read_objects(root):
    """(element, 1-based index, name, voc box or None) for every <object>."""
    out = []
    for i, obj in enumerate(root.findall("object"), 1):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        voc = None
        if name and box is not None:
            v = [to_number(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            if all(x is not None and math.isfinite(x) for x in v):
                voc = v
        out.append((obj, i, name, voc))
    return out


def declared_classes(src):
    """classes.txt / labels.txt when present, else every name in every XML, sorted (detkit's rule)."""
    for name in ("classes.txt", "labels.txt"):
        path = os.path.join(src, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return [line.strip() for line in f if line.strip()], name
    names = set()
    ann = os.path.join(src, "Annotations")
    for n in sorted(os.listdir(ann)):
        if n.endswith(".xml"):
            try:
                root, _ = parse_xml(os.path.join(ann, n))
            except ET.ParseError:
                continue
            for _, _, name, _ in read_objects(root):
                if name:
                    names.add(name)
    return sorted(names), None


def copy_tree(src, out, copy_images):
    """Reproduces src under out: images hard-linked (or copied), everything else copied."""
    linked = copied = 0
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target_dir = os.path.join(out, rel) if rel != "." else out
        os.makedirs(target_dir, exist_ok=True)
        for d in list(dirnames):
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                os.symlink(os.readlink(full), os.path.join(target_dir, d))
                dirnames.remove(d)
        for name in filenames:
            s = os.path.join(dirpath, name)
            t = os.path.join(target_dir, name)
            if os.path.islink(s):
                os.symlink(os.readlink(s), t)
                continue
            if not copy_images and os.path.splitext(name)[1].lower() in IMAGE_EXTS:
                try:
                    os.link(s, t)
                    linked += 1
                    continue
                except OSError:
                    pass
            shutil.copy2(s, t)
            copied += 1
    return linked, copied


# ---------------------------------------------------------------------------------------------------- noise

def shift_box(rng, voc, width, height, lo):
    w = voc[2] - voc[0]
    h = voc[3] - voc[1]
    u, v = rng.uniform(0.3, 0.5), rng.uniform(0.3, 0.5)
    sx, sy = rng.choice((-1, 1)), rng.choice((-1, 1))
    full = area(voc)
    best = None
    for fx, fy in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
        dx, dy = int(round(fx * sx * u * w)), int(round(fy * sy * v * h))
        moved = [voc[0] + dx, voc[1] + dy, voc[2] + dx, voc[3] + dy]
        clipped = [max(lo, moved[0]), max(lo, moved[1]), min(width, moved[2]), min(height, moved[3])]
        kept = area(clipped) / full if full > 0 else 0.0
        if best is None or kept > best[0]:
            best = (kept, clipped, [dx, dy])
        if kept >= 0.5:
            return clipped, [dx, dy]
    return best[1], best[2]


def plant(args):
    src = os.path.abspath(args.src)
    out = os.path.abspath(args.out)
    if not os.path.isdir(os.path.join(src, "Annotations")):
        die(f"{src} is not a Pascal VOC directory (no Annotations/)")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        die(f"{out} exists and is not an empty directory")
    if out == src or out.startswith(src + os.sep):
        die("OUT_DIR must not be inside SRC_VOC_DIR")
    if not 0 <= args.rate <= 1:
        die("--rate must be in [0, 1]")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    for k in kinds:
        if k not in KINDS:
            die(f"unknown kind '{k}' (kinds: {', '.join(KINDS)})")
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    planted_path = os.path.abspath(args.planted or os.path.join(os.path.dirname(out), os.path.basename(out) + "-planted.json"))

    classes, classes_file = declared_classes(src)
    if len(classes) < 2 and "wrong_class" in kinds:
        die("wrong_class needs at least two classes")

    # Images of the splits, in split-list order (an id listed twice is used once).
    images, seen = [], set()
    for split, ids in read_split_ids(src, splits):
        for image_id in ids:
            if image_id in seen:
                continue
            seen.add(image_id)
            xml_rel = os.path.join("Annotations", image_id + ".xml")
            xml_path = os.path.join(src, xml_rel)
            if not os.path.isfile(xml_path):
                print(f"plant_noise: warning: {split} lists '{image_id}' but {xml_rel} is missing; skipped", file=sys.stderr)
                continue
            im = Image(split, image_id, xml_rel, xml_path)
            try:
                im.root, im.data = parse_xml(xml_path)
            except ET.ParseError as e:
                print(f"plant_noise: warning: {xml_rel} is not well-formed ({e}); skipped", file=sys.stderr)
                continue
            im.file = image_file(src, image_id, (im.root.findtext("filename") or "").strip())
            size = im.root.find("size")
            w = to_number(size.findtext("width")) if size is not None else None
            h = to_number(size.findtext("height")) if size is not None else None
            if not w or not h or w <= 0 or h <= 0:
                wh = image_size_from_header(os.path.join(src, "JPEGImages", im.file))
                w, h = wh if wh else (0, 0)
            im.width, im.height = int(w), int(h)
            for obj, index, name, voc in read_objects(im.root):
                if voc is not None:
                    im.boxes.append(Box(obj, index, name, voc))
            images.append(im)
    if not images:
        die("the splits hold no images")

    all_boxes = [b for im in images for b in im.boxes]
    n_original = len(all_boxes)
    lo = 0 if any(min(b.voc[0], b.voc[1]) < 1 for b in all_boxes) else 1
    eligible = [(im, b) for im in images if im.width > 0 and im.height > 0 for b in im.boxes
                if b.voc[2] - b.voc[0] >= MIN_SIDE and b.voc[3] - b.voc[1] >= MIN_SIDE]
    per_kind = 0 if args.rate == 0 else max(1, int(math.floor(args.rate * n_original + 0.5)))
    box_kinds = [k for k in KINDS if k in kinds and k != "spurious"]
    if per_kind * len(box_kinds) > len(eligible):
        die(f"{per_kind} x {len(box_kinds)} changes asked of {len(eligible)} eligible boxes")

    rng = random.Random(args.seed)
    chosen = rng.sample(eligible, per_kind * len(box_kinds))
    changes = []

    def other_iou(im, box_voc, skip=None):
        best = 0.0
        b1 = detkit_box(box_voc)
        for b in im.boxes:
            if b is skip or b.planted == "missing":
                continue
            best = max(best, iou(b1, detkit_box(b.noisy_voc)))
        for v in im.added:
            if v is not box_voc:
                best = max(best, iou(b1, detkit_box(v)))
        return round(best, 4)

    for b in all_boxes:
        b.noisy_voc = b.voc
    for slot, kind in enumerate(box_kinds):
        for im, b in chosen[slot * per_kind:(slot + 1) * per_kind]:
            b.planted = kind
            im.changed = True
            rec = {"kind": kind, "split": im.split, "file": im.file, "xml": im.xml_rel, "object_index": b.index,
                   "original_box": [num(x) for x in detkit_box(b.voc)], "original_class": b.name,
                   "noisy_box": None, "noisy_class": None,
                   "voc_original": [num(x) for x in b.voc], "voc_noisy": None}
            if kind == "wrong_class":
                new = rng.choice([c for c in classes if c != b.name])
                b.obj.find("name").text = new
                rec.update(noisy_box=rec["original_box"], noisy_class=new, voc_noisy=rec["voc_original"])
            elif kind == "badly_placed":
                voc, shift = shift_box(rng, b.voc, im.width, im.height, lo)
                bnd = b.obj.find("bndbox")
                for k, key in enumerate(("xmin", "ymin", "xmax", "ymax")):
                    bnd.find(key).text = fmt_int(voc[k])
                b.noisy_voc = voc
                rec.update(noisy_box=[num(x) for x in detkit_box(voc)], noisy_class=b.name,
                           voc_noisy=[num(x) for x in voc], shift=shift)
            elif kind == "missing":
                remove_child(im.root, b.obj)
            rec["_im"], rec["_box"] = im, b
            changes.append(rec)

    if "spurious" in kinds and per_kind:
        sizes = [(b.voc[2] - b.voc[0], b.voc[3] - b.voc[1]) for im, b in eligible]
        names = [b.name for b in all_boxes]
        placeable = [im for im in images if im.width > 0 and im.height > 0]
        if not sizes or not placeable:
            die("no box sizes or image sizes to place spurious boxes with")
        for _ in range(per_kind):
            for attempt_image in range(10000):
                im = rng.choice(placeable)
                occupied = [detkit_box(b.voc) for b in im.boxes] + \
                           [detkit_box(b.noisy_voc) for b in im.boxes if b.planted == "badly_placed"] + \
                           [detkit_box(v) for v in im.added]
                placed = None
                for _try in range(200):
                    w, h = rng.choice(sizes)
                    w, h = int(round(w)), int(round(h))
                    if w > im.width - lo or h > im.height - lo:
                        continue
                    x = rng.randint(lo, im.width - w)
                    y = rng.randint(lo, im.height - h)
                    voc = [x, y, x + w, y + h]
                    d = detkit_box(voc)
                    if all(iou(d, o) < 0.1 for o in occupied):
                        placed = voc
                        break
                if placed:
                    break
            else:
                die("could not place a spurious box on any image")
            name = rng.choice(names)
            template = im.root.find("object")
            obj = make_object(im.root, template, name, placed)
            append_object(im.root, obj)
            im.added.append(placed)
            im.changed = True
            changes.append({"kind": "spurious", "split": im.split, "file": im.file, "xml": im.xml_rel,
                            "object_index": None, "original_box": None, "original_class": None,
                            "noisy_box": [num(x) for x in detkit_box(placed)], "noisy_class": name,
                            "voc_original": None, "voc_noisy": [num(x) for x in placed],
                            "_im": im, "_box": placed, "_new_obj": obj})

    # Overlap with the rest of the noisy image, once everything is planted.
    for rec in changes:
        im, b = rec.pop("_im"), rec.pop("_box")
        if rec["kind"] == "spurious":
            rec["max_iou_other"] = other_iou(im, b)
        elif rec["kind"] == "missing":
            rec["max_iou_other"] = other_iou(im, b.voc)
        else:
            rec["max_iou_other"] = other_iou(im, b.noisy_voc, skip=b)
        rec["_obj"] = None if rec["kind"] == "missing" else (b.obj if isinstance(b, Box) else rec.pop("_new_obj"))
        rec["_objs"] = im.root.findall("object")

    # Write the dataset: copy everything, then replace the changed XMLs.
    os.makedirs(out, exist_ok=True)
    linked, copied = copy_tree(src, out, args.copy_images)
    for im in images:
        if im.changed:
            write_xml(im.root, im.data, os.path.join(out, im.xml_rel))

    # 1-based <object> positions in the noisy XMLs (for people opening the file).
    for rec in changes:
        obj = rec.pop("_obj")
        objs = rec.pop("_objs")
        rec["noisy_object_index"] = next((i for i, o in enumerate(objs, 1) if o is obj), None)

    order = {k: i for i, k in enumerate(KINDS)}
    changes.sort(key=lambda r: (order[r["kind"]], r["file"], r["object_index"] or 0))
    counts = {k: sum(1 for r in changes if r["kind"] == k) for k in KINDS}
    planted = {
        "version": 1,
        "tool": "bench/audit/plant_noise.py",
        "source": src,
        "dataset": out,
        "seed": args.seed,
        "rate": args.rate,
        "splits": splits,
        "classes": classes,
        "classes_file": classes_file,
        "images": len(images),
        "original_boxes": n_original,
        "per_kind": per_kind,
        "counts": counts,
        "box_convention": "xyxy pixels as detkit reads VOC: [xmin - 1, ymin - 1, xmax, ymax]; voc_* are the XML numbers",
        "changes": changes,
    }
    os.makedirs(os.path.dirname(planted_path), exist_ok=True)
    with open(planted_path, "w", encoding="utf-8") as f:
        json.dump(planted, f, indent=1)
        f.write("\n")
    changed = sum(1 for im in images if im.changed)
    print(f"plant_noise: {len(images)} images, {n_original} boxes in {','.join(splits)}; planted "
          + ", ".join(f"{counts[k]} {k}" for k in KINDS if k in kinds)
          + f" in {changed} XML files; {linked} images linked, {copied} files copied", file=sys.stderr)
    print(f"plant_noise: dataset {out}", file=sys.stderr)
    print(f"plant_noise: planted {planted_path}", file=sys.stderr)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("src", metavar="SRC_VOC_DIR")
    p.add_argument("out", metavar="OUT_DIR")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--rate", type=float, default=0.05, help="share of the original boxes per kind (default 0.05)")
    p.add_argument("--splits", default="train", help="comma-separated splits to plant into (default train)")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds to plant (default all four)")
    p.add_argument("--planted", metavar="FILE", help="where planted.json goes (default OUT_DIR/../<name>-planted.json)")
    p.add_argument("--copy-images", action="store_true", help="copy images instead of hard-linking them")
    return plant(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
