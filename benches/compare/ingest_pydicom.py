#!/usr/bin/env python3
"""Python side of the ingest comparison: a DICOM series to an HU volume with
pydicom + numpy, the straightforward way a user would write it.

    ingest_pydicom.py SERIES_DIR [--reps N] [--warmup N]   # JSON on stdout

Per repetition, timed in two phases (as `ctt-compare ingest` does for Rust):

* read: list the folder and read every file into memory;
* parse_hu: ``pydicom.dcmread`` every buffer, sort the slices by
  ImagePositionPatient projected on the slice normal, and apply each slice's
  RescaleSlope/RescaleIntercept into an int16 HU volume (Pixel Padding Value
  -> -1024 HU, as ct-triage does).

``dcmread(BytesIO(bytes))`` is what ``dcmread(path)`` does after the file
reads, which are counted in the read phase. pydicom and numpy run on one
thread here (there is nothing to parallelise in this code path).

``load_hu`` is also the load stage of ``chain_python.py``.
"""

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pydicom


def loadavg():
    """The three load averages of /proc/loadavg (empty list elsewhere)."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def read_files(series_dir):
    """Every file of the folder, sorted by name, read into memory."""
    paths = sorted(p for p in Path(series_dir).iterdir() if p.is_file())
    return [p.read_bytes() for p in paths]


def to_hu(blobs):
    """Parse DICOM buffers and return (int16 HU volume [z, y, x], geometry dict).

    Rust: ``ingest::load`` (parse, order by position on the slice normal,
    decode, per-slice modality LUT). No grouping / series selection / gap
    checks here: the folder is assumed to hold exactly one series.
    """
    dss = [pydicom.dcmread(io.BytesIO(b)) for b in blobs]
    iop = np.array(dss[0].ImageOrientationPatient, dtype=np.float64)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    pos = np.array([ds.ImagePositionPatient for ds in dss], dtype=np.float64)
    order = np.argsort(pos @ normal, kind="stable")
    first = dss[order[0]]
    ny, nx = int(first.Rows), int(first.Columns)
    vol = np.empty((len(dss), ny, nx), dtype=np.int16)
    for k, i in enumerate(order):
        ds = dss[i]
        px = ds.pixel_array
        slope = float(getattr(ds, "RescaleSlope", 1.0))
        intercept = float(getattr(ds, "RescaleIntercept", 0.0))
        out = vol[k]
        if slope == 1.0 and intercept.is_integer():
            out[...] = px  # stored values (12-bit here) fit int16
            out += int(intercept)
        else:
            out[...] = np.rint(px * slope + intercept)
        ppv = ds.get("PixelPaddingValue")
        if ppv is not None:
            out[px == ppv] = -1024
    along = pos[order] @ normal
    dz = float((along[-1] - along[0]) / (len(along) - 1)) if len(along) > 1 else 1.0
    dy, dx = (float(v) for v in first.PixelSpacing)  # row spacing, column spacing
    geometry = {
        "spacing_xyz": [dx, dy, dz],
        "origin": [float(v) for v in pos[order[0]]],
        "direction": [row.tolist(), col.tolist(), normal.tolist()],
    }
    return vol, geometry


def load_hu(series_dir):
    """Read + parse + HU; returns (volume, geometry, total file bytes)."""
    blobs = read_files(series_dir)
    vol, geometry = to_hu(blobs)
    return vol, geometry, sum(len(b) for b in blobs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("series_dir")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    reps = max(1, a.reps)
    out = {
        "tool": "pydicom+numpy",
        "stage": "ingest",
        "series_dir": a.series_dir,
        "threads": 1,
        "reps": reps,
        "warmup": a.warmup,
        "loadavg_before": loadavg(),
    }
    read_s, parse_s, total_s = [], [], []
    for rep in range(a.warmup + reps):
        t0 = time.perf_counter()
        blobs = read_files(a.series_dir)
        t1 = time.perf_counter()
        vol, geometry = to_hu(blobs)
        t2 = time.perf_counter()
        if rep >= a.warmup:
            read_s.append(t1 - t0)
            parse_s.append(t2 - t1)
            total_s.append(t2 - t0)
        nbytes, nfiles = sum(len(b) for b in blobs), len(blobs)
        del blobs
    med = {
        "read": statistics.median(read_s),
        "parse_hu": statistics.median(parse_s),
        "total": statistics.median(total_s),
    }
    out.update(
        {
            "files": nfiles,
            "bytes": nbytes,
            "size_xyz": [vol.shape[2], vol.shape[1], vol.shape[0]],
            "spacing_mm": geometry["spacing_xyz"],
            "hu": {
                "dtype": str(vol.dtype),
                "min": int(vol.min()),
                "max": int(vol.max()),
                "mean": float(vol.mean(dtype=np.float64)),
            },
            "times_s": {"read": read_s, "parse_hu": parse_s, "total": total_s},
            "median_s": med,
            "min_s": {"read": min(read_s), "parse_hu": min(parse_s), "total": min(total_s)},
            "mb_per_s": {
                "in_memory": nbytes / 1e6 / med["parse_hu"],
                "from_disk": nbytes / 1e6 / med["total"],
            },
            "loadavg_after": loadavg(),
        }
    )
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
