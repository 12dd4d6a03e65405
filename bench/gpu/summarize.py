"""Summary of bench/gpu/run.sh's results.jsonl: a Markdown table on stdout and summary.json beside it.

Rates: `model` is the training step alone (detkit model speed); `detkit` and `peer` are end-to-end
training rates, the mean images per second of the epochs after the first (the first includes start-up,
cuDNN's algorithm search and the allocator's growth)."""
import csv
import json
import sys
from pathlib import Path


def warm_mean(rates):
    warm = rates[1:] or rates
    return sum(warm) / len(warm) if warm else None


def rate(row):
    if "error" in row:
        return None
    if row["side"].startswith("loader"):
        return row["result"]["samples_per_s"]
    if row["side"] == "model":
        return row["result"]["images_per_second"]
    if row["side"] == "detkit":
        rows = list(csv.DictReader(open(row["results_csv"])))
        return warm_mean([float(r["images_per_second"]) for r in rows])
    return warm_mean([e["images_per_second"] for e in row["result"]["epochs"]])


def data_wait_share(row):
    """detkit's share of training time spent waiting for batches (epochs after the first)."""
    if row["side"] != "detkit" or "error" in row:
        return None
    return warm_mean([float(r["data_wait_share"]) for r in csv.DictReader(open(row["results_csv"]))])


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def main():
    path, device, imgsz, batch = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    table, errors, waits, loader = {}, [], {}, {}
    for row in rows:
        if row["side"].startswith("loader"):
            loader[row["side"].split("_", 1)[1]] = rate(row)
            if "error" in row:
                errors.append(f"{row['side']}: {row['error'].strip()}")
            continue
        table.setdefault((row["model"], row["precision"]), {})[row["side"]] = rate(row)
        waits[(row["model"], row["precision"])] = data_wait_share(row) if row["side"] == "detkit" else waits.get(
            (row["model"], row["precision"]))
        if "error" in row:
            errors.append(f"{row['model']} {row['precision']} {row['side']}: {row['error'].strip()}")
    summary = {"device": device, "imgsz": int(imgsz), "batch": int(batch), "loader_alone": loader, "runs": [],
               "errors": errors}
    print(f"device {device}, {imgsz} px, batch {batch}\n")
    for cache, value in loader.items():
        if value:
            print(f"loader alone (decode, recipe, collate; no training), cache {cache}: {value:.1f} img/s\n")
    print("| model | precision | step alone img/s | detkit end to end img/s | Python peer img/s | detkit / step | "
          "detkit / peer | detkit data wait |")
    print("|---|---|---|---|---|---|---|---|")
    fmt = lambda v: "-" if v is None else f"{v:.1f}"
    fmt2 = lambda v: "-" if v is None else f"{v:.2f}"
    for (model, precision), r in table.items():
        m, d, p = r.get("model"), r.get("detkit"), r.get("peer")
        wait = waits.get((model, precision))
        entry = {"model": model, "precision": precision, "model_step": m, "detkit": d, "peer": p,
                 "detkit_over_step": ratio(d, m), "detkit_over_peer": ratio(d, p), "detkit_data_wait_share": wait}
        summary["runs"].append(entry)
        print(f"| {model} | {precision} | {fmt(m)} | {fmt(d)} | {fmt(p)} | {fmt2(entry['detkit_over_step'])} | "
              f"{fmt2(entry['detkit_over_peer'])} | {fmt2(wait)} |")
    for model in sorted({m for m, _ in table}):
        fp32, bf16 = table.get((model, "fp32"), {}), table.get((model, "bf16"), {})
        r = ratio(bf16.get("detkit"), fp32.get("detkit"))
        summary[f"{model}_bf16_over_fp32_end_to_end"] = r
        if r:
            print(f"\n{model}: bf16 / fp32 end to end {r}")
    for e in errors:
        print(f"\nerror: {e}")
    (path.parent / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
