"""`detkit report` end to end: the CLI, then the page in a real browser (headless Chromium).

Run through CTest (which sets DETKIT to the binary). The browser class skips, saying why, when Chromium is not
installed (scripts/bootstrap installs Debian's `chromium`). Uses Debian's python3 for PIL.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

DETKIT = os.environ.get("DETKIT", str(Path(__file__).resolve().parents[2] / "build" / "bin" / "detkit"))
NASTY = '<b>&"x'

try:
    from PIL import Image, ImageDraw
except ImportError:  # pragma: no cover - the test needs Debian's python3-pil
    Image = None

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)


def run(*args, check=None):
    env = dict(os.environ)
    env.pop("DETKIT_TORCH_PLUGIN", None)
    p = subprocess.run([DETKIT, *args], capture_output=True, text=True, env=env, timeout=120)
    if check is not None and p.returncode != check:
        raise AssertionError(f"detkit {' '.join(map(str, args))} exited {p.returncode}, expected {check}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def make_run_dir(root, epochs=12):
    """A fake training run directory with every file the report reads."""
    root = Path(root)
    (root / "val").mkdir(parents=True)
    header = ("epoch,box_loss,cls_loss,dfl_loss,lr,map50,map50_95,seconds,images_per_second,data_wait_share,"
              "peak_memory_bytes,skipped_steps,oom_events,rollbacks,micro_batch")
    rows = [header]
    for e in range(1, epochs + 1):
        evaluated = e % 3 == 0 or e == epochs
        rows.append(f"{e},{2.6 - 0.1 * e:.4f},{3.0 - 0.15 * e:.4f},{1.9 - 0.05 * e:.4f},{0.01 * min(e, 3) / 3:.6g},"
                    f"{(0.05 * e if evaluated else -1):.4g},{(0.025 * e if evaluated else -1):.4g},{10 + e % 2},"
                    f"{120 + e},{0.1 + 0.01 * (e % 4):.3f},{(1 << 30) + e},{e // 5},{1 if e > 6 else 0},0,"
                    f"{16 if e <= 6 else 8}")
    (root / "results.csv").write_text("\n".join(rows) + "\n")
    (root / "events.json").write_text(json.dumps([
        {"kind": "non_finite_loss", "epoch": 5, "batch": 3, "optimizer_steps": 40, "message": "loss is NaN"},
        {"kind": "out_of_memory", "epoch": 7, "batch": 1, "optimizer_steps": 52,
         "message": "out of memory: micro-batch 16 -> 8"}]))
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    stats = {n: 0.3 + 0.01 * i for i, n in enumerate(names)}
    classes = [NASTY, "circle", "square"]
    (root / "metrics.json").write_text(json.dumps({
        "run_dir": str(root), "model": "yolo-n", "epochs_completed": epochs, "optimizer_steps": 96,
        "samples_seen": 1536, "best_epoch": epochs,
        "best": {"epoch": epochs, "stats": stats, "per_class_AP": {c: 0.2 + 0.1 * i for i, c in enumerate(classes)}},
        "final_map50": 0.6, "final_map50_95": 0.3, "skipped_steps": 2, "rollbacks": 0, "oom_events": 1,
        "micro_batch": 8, "stopped_early": False, "interrupted": False, "seconds": 126.0}))
    (root / "val" / "metrics.json").write_text(json.dumps({
        "model": str(root / "weights" / "best.pt"), "split": "val", "imgsz": 320, "images": 24, "detections": 77,
        "stats": stats, "best_confidence": 0.31,
        "per_class": [{"category_id": i + 1, "name": c, "ground_truth": 10 + i, "detections": 20 + i,
                       "AP": 0.2 + 0.1 * i, "AP50": 0.5 + 0.1 * i, "precision": 0.6, "recall": 0.5, "f1": 0.55}
                      for i, c in enumerate(classes)]}))
    recall = [i / 100 for i in range(101)]
    confidence = [i / 100 for i in range(101)]
    precision = [[max(0.0, 1 - (r * (1 + k)) ** 2) for r in recall] for k in range(3)]
    f1 = [[max(0.0, 0.8 - abs(c - 0.3 - 0.1 * k) * (1.5 + k)) for c in confidence] for k in range(3)]
    (root / "val" / "curves.json").write_text(json.dumps({
        "format": "detkit-detection-metrics/1", "summary": {"mAP": 0.6, "best_confidence": 0.31},
        "classes": [{"index": i, "category_id": i + 1, "name": c, "AP": 0.5 + 0.1 * i} for i, c in enumerate(classes)],
        "pr_curve": {"recall": recall, "precision": precision},
        "confidence_curves": {"confidence": confidence, "precision": f1, "recall": f1, "f1": f1},
        "confusion_matrix": {"rows": "predicted", "columns": "true", "confidence_threshold": 0.25,
                             "iou_threshold": 0.45, "labels": classes + ["background"],
                             "matrix": [[8, 1, 0, 3], [1, 9, 2, 1], [0, 1, 7, 2], [2, 1, 3, 0]]}}))
    if Image is not None:
        img = Image.new("RGB", (480, 240), (40, 90, 60))
        draw = ImageDraw.Draw(img)
        draw.rectangle([30, 30, 150, 150], outline=(255, 220, 0), width=4)
        draw.ellipse([250, 60, 400, 200], fill=(200, 50, 50))
        img.save(root / "val" / "samples.jpg", "JPEG", quality=90)
    (root / "data-check.json").write_text(json.dumps({
        "format": "yolo", "root": "data/shapes", "summary": {"error": 0, "warning": 1, "info": 0}, "findings": [],
        "stats": {"images": 120, "annotations": 400, "images_per_split": {"train": 96, "val": 24}, "empty_images": 2,
                  "max_boxes_in_image": 7, "boxes_per_class": {NASTY: 150, "circle": 130, "square": 120},
                  "imbalance_ratio": 1.25, "imgsz": 320,
                  "box_size_histogram": {"<8": 12, "8-16": 40, "16-32": 110, "32-64": 140, "64-128": 70,
                                         "128-256": 25, ">=256": 3},
                  "tiny_boxes": 9, "aspect_outliers": 0, "image_sizes": {"320x240": 120}}}))
    lrs = [1e-6 * (1e6 ** (i / 59)) for i in range(60)]
    losses = [4.0 - 2.0 / (1 + (max(0.0, -(i - 45) / 10)) ** 2) + (0.5 * (i - 45) ** 2 / 20 if i > 45 else 0)
              for i in range(60)]
    (root / "lr-find").mkdir()
    (root / "lr-find" / "lr_find.json").write_text(json.dumps({
        "format": "detkit-lr-find-1", "model": "yolo-n", "optimizer": "sgd", "imgsz": 320, "batch": 16,
        "accumulate": 4, "device": "cpu", "start": 1e-6, "end": 1.0, "steps_planned": 60, "steps_run": 60,
        "images": 960, "seconds": 42.0, "suggested_lr": lrs[45] / 10, "min_loss_lr": lrs[45], "min_loss": 2.0,
        "steepest_lr": lrs[38], "diverged": False, "diverged_lr": 0, "interrupted": False, "notes": [NASTY],
        "points": {"lr": lrs, "loss": losses[:59] + [None], "smoothed": losses}}))
    (root / "environment.txt").write_text("OS: Debian GNU/Linux 12\nCPU: 2 cores\nGPU: none (CPU run) <ok>\n")
    (root / "config.yaml").write_text("model: yolo-n\nepochs: 12\nimgsz: 320\n# <script>alert(1)</script>\n")
    return root


class ReportCli(unittest.TestCase):
    def test_writes_report_html_and_prints_its_path(self):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = make_run_dir(Path(tmp) / "train")
            p = run("report", str(run_dir), check=0)
            self.assertEqual(p.stdout.strip(), str(run_dir / "report.html"))
            html = (run_dir / "report.html").read_text()
            self.assertTrue(html.startswith("<!DOCTYPE html>"))
            self.assertNotIn(NASTY, html)
            self.assertNotIn("<script", html)
            out = Path(tmp) / "elsewhere" / "page.html"
            p = run("report", str(run_dir), "--out", str(out), check=0)
            self.assertEqual(p.stdout.strip(), str(out))
            self.assertEqual(out.read_text(), html)

    def test_damaged_input_is_exit_4_naming_the_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = make_run_dir(Path(tmp) / "train")
            (run_dir / "events.json").write_text("[{\"kind\": ")
            p = run("report", str(run_dir), check=4)
            self.assertIn("events.json", p.stderr)
            self.assertIn("fix:", p.stderr)
            self.assertFalse((run_dir / "report.html").exists())

    def test_missing_directory_is_exit_4_and_no_argument_is_exit_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            p = run("report", str(Path(tmp) / "absent"), check=4)
            self.assertIn("directory not found", p.stderr)
        run("report", check=2)


@unittest.skipIf(CHROMIUM is None, "chromium is not installed (scripts/bootstrap installs Debian's 'chromium'); "
                                   "the browser test of 'detkit report' is skipped")
@unittest.skipIf(Image is None, "python3-pil is not installed (scripts/bootstrap installs it)")
class ReportBrowser(unittest.TestCase):
    WIDTH, HEIGHT = 1200, 3000

    def chromium(self, tmp, url, *extra):
        """Runs headless Chromium on `url`; returns (stdout, stderr)."""
        p = subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr",
                            "--v=0", "--virtual-time-budget=2000", "--no-first-run", "--disable-extensions",
                            f"--user-data-dir={tmp}/profile", f"--window-size={self.WIDTH},{self.HEIGHT}",
                            *extra, url], capture_output=True, text=True, timeout=60)
        return p.stdout, p.stderr

    @staticmethod
    def console_problems(stderr):
        # The page has no script: any console message (a CSP violation, a failed load, an exception) is a defect.
        return [line for line in stderr.splitlines()
                if ":CONSOLE" in line or "Uncaught" in line or "Refused to" in line]

    def test_page_renders_charts_without_console_errors(self):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = make_run_dir(Path(tmp) / "train")
            run("report", str(run_dir), check=0)
            page = (run_dir / "report.html").resolve().as_uri()

            # The console check catches problems with this Chromium: a page with a failing script and an external
            # image under the same policy must be flagged.
            bad = Path(tmp) / "bad.html"
            html = (run_dir / "report.html").read_text()
            bad.write_text(html.replace("</main>", "<script>undefined_function()</script>"
                                                   "<img src=\"https://example.invalid/x.png\"></main>"))
            _, bad_err = self.chromium(tmp, bad.resolve().as_uri(), f"--screenshot={tmp}/bad.png")
            self.assertTrue(self.console_problems(bad_err), "the console check did not see a deliberate error:\n"
                            + bad_err[-3000:])

            shot = Path(tmp) / "report.png"
            _, err = self.chromium(tmp, page, f"--screenshot={shot}")
            self.assertEqual(self.console_problems(err), [], err[-3000:])
            dom, err2 = self.chromium(tmp, page, "--dump-dom")
            self.assertEqual(self.console_problems(err2), [])

            # The DOM the browser built: every section, chart and row is there.
            for section in ("summary", "training", "lr-find", "validation", "per-class", "dataset", "samples", "events",
                            "environment", "config"):
                self.assertIn(f'<section id="{section}">', dom)
            self.assertEqual(len(re.findall(r'<svg class="chart"', dom)), 10)
            self.assertEqual(len(re.findall(r'<polyline class="series" data-series="smoothed"', dom)), 1)
            self.assertEqual(len(re.findall(r'<polyline class="series" data-series="box_loss"', dom)), 1)
            self.assertIn("&lt;b&gt;&amp;\"x", dom)  # the nasty class name is text, not markup
            self.assertNotIn("<b>&", dom)

            # The screenshot: the charts are drawn. Chart lines and bars use the palette's first colour (#1f77b4),
            # which nothing else on the page has; find it band by band down the page.
            img = Image.open(shot).convert("RGB")
            self.assertEqual(img.size, (self.WIDTH, self.HEIGHT))
            band = 150
            coloured, inked = [], []
            for top in range(0, self.HEIGHT, band):
                region = img.crop((0, top, self.WIDTH, top + band))
                pixels = list(region.getdata())
                blue = sum(1 for r, g, b in pixels if abs(r - 31) < 40 and abs(g - 119) < 40 and abs(b - 180) < 40
                           and b - r > 80)
                non_white = sum(1 for r, g, b in pixels if min(r, g, b) < 200)
                coloured.append(blue)
                inked.append(non_white)
            chart_bands = [i for i, n in enumerate(coloured) if n >= 150]
            ink_bands = [i for i, n in enumerate(inked) if n >= 2000]
            self.assertGreaterEqual(len(chart_bands), 8, f"bands with chart colour: {coloured}")
            self.assertGreaterEqual(len(ink_bands), 12, f"non-white pixels per band: {inked}")
            # The first chart row (training losses and learning rate) starts within the first 900 px.
            self.assertLess(chart_bands[0] * band, 900, coloured)


if __name__ == "__main__":
    unittest.main()
