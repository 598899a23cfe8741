"""Write the regression fixture of the shipped model: a few test-split patches
(stored exactly as integer HU, from which extract_patch's values are recovered)
and the shipped ONNX model's raw outputs on them (ONNX Runtime). The core test
`core/tests/model_check.rs` checks the burn runtime reproduces them.

usage: fixtures.py --data DIR --manifest models/ctt-nodule-v1.json --out core/tests/data/model_check
"""
import argparse
import csv
import json
import os

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    man = json.load(open(a.manifest))
    meta = json.load(open(os.path.join(a.data, "dataset.json")))
    rows = list(csv.DictReader(open(os.path.join(a.data, "index.csv"))))
    n = len(rows)
    shape = meta["patch"]["patch_zyx"]
    x = np.memmap(os.path.join(a.data, "patches.f32"), dtype="<f4", mode="r").reshape(n, *shape)
    norm = man["input"]["normalization"]
    picks = []
    for want in ("nodule", "vessel", "bifurcation"):
        for r in rows:
            if r["split"] == "test" and r["kind"] == want:
                picks.append(int(r["idx"]))
                break
    pt = np.stack([x[i] for i in picks]).astype(np.float32)
    hu = np.rint(pt * np.float32(norm["scale"]) + np.float32(norm["offset"])).astype(np.int16)
    back = ((np.clip(hu.astype(np.float32), norm["hu_window"][0], norm["hu_window"][1]) - np.float32(norm["offset"])) / np.float32(norm["scale"])).astype(np.float32)
    assert np.array_equal(back, pt), "patch values are not recoverable from integer HU"
    sess = ort.InferenceSession(os.path.join(os.path.dirname(a.manifest), man["onnx"]), providers=["CPUExecutionProvider"])
    raw = sess.run([man["outputs"][0]["tensor"]], {man["input"]["name"]: pt[:, None]})[0]
    os.makedirs(a.out, exist_ok=True)
    hu.astype("<i2").tofile(os.path.join(a.out, "patches_hu.i16"))
    json.dump({
        "model": man["name"],
        "weights_sha256": man["weights_sha256"],
        "onnx_sha256": man["onnx_sha256"],
        "patches": [{"dataset_idx": i, "kind": rows[i]["kind"], "nodule_id": rows[i]["nodule_id"]} for i in picks],
        "patch_zyx": shape,
        "note": "patches_hu.i16: little-endian int16 HU, patch after patch, z-y-x; network input = Normalization::apply(hu). expected: raw ONNX Runtime outputs (network column order) of the shipped model.",
        "expected": [[float(v) for v in row] for row in raw],
    }, open(os.path.join(a.out, "expected.json"), "w"), indent=1)
    print(f"wrote {len(picks)} fixture patches to {a.out}")


if __name__ == "__main__":
    main()
