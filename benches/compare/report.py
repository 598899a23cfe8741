#!/usr/bin/env python3
"""Merge the four raw results of benches/compare/run.sh into results.json and
print a markdown summary on stdout.

    report.py RAW_DIR OUT_JSON

RAW_DIR holds ingest_python.json, ingest_rust.json, chain_python.json and
chain_rust.json (one JSON object each, as the tools print them).
"""

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def mem_total_gb():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def rel(a, b):
    """Relative difference of a against b."""
    return (a - b) / b if b else None


def fmt_s(v):
    return f"{v:.3f}" if v < 10 else f"{v:.2f}"


def main():
    raw, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    r = {k: json.loads((raw / f"{k}.json").read_text()) for k in
         ("ingest_python", "ingest_rust", "chain_python", "chain_rust")}
    ip, ir, cp, cr = r["ingest_python"], r["ingest_rust"], r["chain_python"], r["chain_rust"]
    root = Path(__file__).resolve().parents[2]

    ingest_ratio = {k: ip["median_s"][k] / ir["median_s"][k] for k in ("read", "parse_hu", "total")}
    chain_ratio = {k: cp["median_s"][k] / cr["median_s"][k] for k in cp["median_s"]}
    # The same on each side's fastest repetition (least disturbed by other load).
    ingest_ratio_min = {k: ip["min_s"][k] / ir["min_s"][k] for k in ("read", "parse_hu", "total")}
    chain_ratio_min = {k: cp["min_s"][k] / cr["min_s"][k] for k in cp["min_s"]}
    po, ro = cp["outputs"], cr["outputs"]
    sanity = {
        "hu_identical_stats": ip["hu"]["min"] == ir["hu"]["min"]
        and ip["hu"]["max"] == ir["hu"]["max"]
        and abs(ip["hu"]["mean"] - ir["hu"]["mean"]) < 1e-6,
        "same_grid": ip["size_xyz"] == ir["size_xyz"] and cp["iso_size_xyz"] == cr["iso_size_xyz"],
        "lung_aerated_rel_diff": rel(po["lung_aerated_ml"], ro["lung_aerated_ml"]),
        "lung_region_rel_diff": rel(po["lung_region_ml"], ro["lung_region_ml"]),
        "candidates_after_nms_rel_diff": rel(po["candidates_after_nms"], ro["candidates_after_nms"]),
    }
    results = {
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": {
            "commit": sh("git", "-C", str(root), "rev-parse", "HEAD"),
            "dirty": bool(sh("git", "-C", str(root), "status", "--porcelain", "--untracked-files=no")),
        },
        "series": {
            "dir": ir["series_dir"],
            "files": ir["files"],
            "bytes": ir["bytes"],
            "size_xyz": ir["size_xyz"],
            "spacing_mm": ir["spacing_mm"],
            "iso_size_xyz": cr["iso_size_xyz"],
        },
        "settings": {
            "reps": ir["reps"],
            "warmup": ir["warmup"],
            "statistic": "median",
            "mb": "1e6 bytes of DICOM files",
            "threads": {
                "ct_triage_rayon": ir["threads"],
                "RAYON_NUM_THREADS": ir.get("rayon_num_threads_env"),
                "simpleitk": cp["threads"]["simpleitk"],
                "pydicom_numpy_scipy": 1,
            },
            "page_cache": "warm (files read once in the warm-up)",
        },
        "machine": {
            "cpu_model": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "mem_total_gb": mem_total_gb(),
            "kernel": platform.release(),
        },
        "load_average_before": {k: v["loadavg_before"] for k, v in r.items()},
        "load_average_after": {k: v["loadavg_after"] for k, v in r.items()},
        "versions": {
            "ct_triage": ir["version"],
            "rustc": sh("rustc", "-V"),
            **cp["versions"],
        },
        "ingest": {"python": ip, "rust": ir, "ratio_python_over_rust": ingest_ratio,
                   "ratio_python_over_rust_fastest_rep": ingest_ratio_min},
        "chain": {"python": cp, "rust": cr, "ratio_python_over_rust": chain_ratio,
                  "ratio_python_over_rust_fastest_rep": chain_ratio_min},
        "sanity": sanity,
    }
    out_path.write_text(json.dumps(results, indent=2) + "\n")

    # ---- markdown -------------------------------------------------------
    s = results["series"]
    la = results["load_average_before"]
    p = print
    p(f"## ct-triage vs Python stack — `{s['dir']}`\n")
    p(f"{s['files']} files, {s['bytes'] / 1e6:.1f} MB, {s['size_xyz'][0]}×{s['size_xyz'][1]}×{s['size_xyz'][2]} voxels "
      f"(spacing {', '.join(f'{v:.3g}' for v in s['spacing_mm'])} mm); "
      f"median of {ir['reps']} after {ir['warmup']} warm-up; CPU {results['machine']['cpu_model']} "
      f"({results['machine']['logical_cpus']} logical); threads: ct-triage {ir['threads']}, "
      f"SimpleITK {cp['threads']['simpleitk']}, pydicom/numpy/scipy 1.\n")
    p("Load average (1/5/15 min) before each run: "
      + "; ".join(f"{k} {'/'.join(f'{x:.2f}' for x in v)}" for k, v in la.items()) + "\n")
    p("### Ingest (files → HU volume)\n")
    p("| tool | threads | read (s) | parse + HU (s) | total from disk (s) | MB/s in memory | MB/s from disk |")
    p("|---|---:|---:|---:|---:|---:|---:|")
    for name, d, th in (("pydicom + numpy", ip, 1), ("ct-triage `ingest::load`", ir, ir["threads"])):
        m = d["median_s"]
        p(f"| {name} | {th} | {fmt_s(m['read'])} | {fmt_s(m['parse_hu'])} | {fmt_s(m['total'])} | "
          f"{d['mb_per_s']['in_memory']:.0f} | {d['mb_per_s']['from_disk']:.0f} |")
    p(f"| **ratio Python / Rust** | | {ingest_ratio['read']:.2f}× | **{ingest_ratio['parse_hu']:.2f}×** | "
      f"**{ingest_ratio['total']:.2f}×** | | |\n")
    p("### Preprocessing chain (load → 1 mm resample → lung mask → blob filter)\n")
    p("| stage | Python: pydicom / SimpleITK / scipy.ndimage (s) | ct-triage (s) | ratio Python / Rust |")
    p("|---|---:|---:|---:|")
    labels = {"load": "load (read + parse + HU)", "resample": "resample to 1 mm (linear)",
              "lungs": "lung mask", "candidates": "blob filter (DoG) + NMS", "total": "**total**"}
    for k, label in labels.items():
        p(f"| {label} | {fmt_s(cp['median_s'][k])} | {fmt_s(cr['median_s'][k])} | {chain_ratio[k]:.2f}× |")
    p("")
    p(f"On each side's fastest repetition instead of the median: ingest total "
      f"{ingest_ratio_min['total']:.2f}×, chain total {chain_ratio_min['total']:.2f}×.\n")
    p("### Outputs (sanity check, not timed)\n")
    p("| | Python | ct-triage |")
    p("|---|---:|---:|")
    p(f"| HU min / max / mean | {ip['hu']['min']} / {ip['hu']['max']} / {ip['hu']['mean']:.2f} | "
      f"{ir['hu']['min']} / {ir['hu']['max']} / {ir['hu']['mean']:.2f} |")
    p(f"| 1 mm grid (x×y×z) | {'×'.join(map(str, cp['iso_size_xyz']))} | {'×'.join(map(str, cr['iso_size_xyz']))} |")
    p(f"| lung air threshold (HU) | {po['air_threshold_hu']:.0f} | {ro['air_threshold_hu']} |")
    p(f"| aerated lung (mL) | {po['lung_aerated_ml']:.0f} | {ro['lung_aerated_ml']:.0f} |")
    p(f"| lung region, closed + filled (mL) | {po['lung_region_ml']:.0f} | {ro['lung_region_ml']:.0f} |")
    p(f"| blobs after NMS, uncapped (blob + mass) | {po['candidates_after_nms_blob']} + {po['candidates_after_nms_mass']} | "
      f"{ro['candidates_after_nms_blob']} + {ro['candidates_after_nms_mass']} |")
    p(f"| candidates kept (cap {ro['max_candidates']}) | {po['candidates_capped']} | {ro['candidates_capped']} |")
    p("")
    warn = []
    if not sanity["hu_identical_stats"]:
        warn.append("HU statistics of the two loaders differ")
    if not sanity["same_grid"]:
        warn.append("volume or 1 mm grid sizes differ")
    for k in ("lung_aerated_rel_diff", "lung_region_rel_diff"):
        if sanity[k] is None or abs(sanity[k]) > 0.15:
            warn.append(f"{k} = {sanity[k]}")
    if sanity["candidates_after_nms_rel_diff"] is None or abs(sanity["candidates_after_nms_rel_diff"]) > 0.3:
        warn.append(f"candidates_after_nms_rel_diff = {sanity['candidates_after_nms_rel_diff']}")
    for w in warn:
        p(f"> **warning**: {w}")
    p(f"Written: `{out_path}`")


if __name__ == "__main__":
    main()
