"""Evaluate the exported classifier (the ONNX file that ships, run by ONNX
Runtime) on the held-out TEST patients, with baselines on the same split.

Writes metrics JSON, the manifest's `metrics`, and (with --card) the metrics
section of models/MODEL_CARD.md between <!-- metrics:begin --> and <!-- metrics:end -->.

usage: evaluate.py --data DIR --manifest models/ctt-nodule-v1.json --out metrics.json [--bootstrap N] [--card MODEL_CARD.md]
"""
import argparse
import csv
import json
import math
import os
import sys

import numpy as np
import onnxruntime as ort
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def auc(y, s):
    """Rank AUC (Mann-Whitney) with ties averaged."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=np.float64)
    n1, n0 = y.sum(), (~y).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = s[order]
    i = 0
    r = np.arange(1, len(s) + 1, dtype=np.float64)
    # average ranks of ties
    while i < len(ss):
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = r[i:j + 1].mean()
        i = j + 1
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def ece(y, p, bins=10):
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    e = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        m = (p >= lo) & ((p < hi) if b < bins - 1 else (p <= hi))
        if m.any():
            e += m.mean() * abs(y[m].mean() - p[m].mean())
    return float(e)


def cluster_bootstrap(groups, fn, n_boot, seed):
    """Percentile 95% CI of fn(indices) over bootstrap resamples of the groups (patients)."""
    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [np.where(inv == g)[0] for g in range(len(uniq))]
    vals = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[g] for g in pick])
        v = fn(idx)
        if v is not None and np.all(np.isfinite(v)):
            vals.append(v)
    if not vals:
        return float("nan"), float("nan")
    vals = np.array(vals)
    return np.percentile(vals, 2.5, axis=0), np.percentile(vals, 97.5, axis=0)


def clean(o):
    """NaN/inf -> None, so the JSON stays strict (the Rust manifest parser rejects NaN)."""
    if isinstance(o, dict):
        return {k: clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def brock_logit(diam, type_class, spiculated, upper, count, female=0.5, age=62.0, family=0.0, emphysema=0.0):
    """Brock / PanCan full model with spiculation (McWilliams et al., NEJM 2013)."""
    size = -5.3854 * ((np.maximum(diam, 1.0) / 10.0) ** -0.5 - 1.58113883)
    t = np.where(type_class == 2, -0.1276, np.where(type_class == 1, 0.377, 0.0))
    return (-6.7892 + 0.0287 * (age - 62.0) + 0.6011 * female + 0.2961 * family + 0.2953 * emphysema
            + size + t + 0.6581 * upper - 0.0824 * (count - 4.0) + 0.7729 * spiculated)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def num(v):
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def fmt(m, key):
    v = m[key]
    return f"{num(v['value'])} [{num(v['ci95'][0])}, {num(v['ci95'][1])}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--card")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    meta = json.load(open(os.path.join(a.data, "dataset.json")))
    rows = list(csv.DictReader(open(os.path.join(a.data, "index.csv"))))
    nod_rows = list(csv.DictReader(open(os.path.join(a.data, "nodules.csv"))))
    man = json.load(open(a.manifest))
    n = len(rows)
    p = meta["patch"]["patch_zyx"]
    x = np.memmap(os.path.join(a.data, "patches.f32"), dtype="<f4", mode="r").reshape(n, 1, *p)
    test = np.array([i for i, r in enumerate(rows) if r["split"] == "test"])
    R = [rows[i] for i in test]
    # Run the shipped ONNX model.
    sess = ort.InferenceSession(os.path.join(os.path.dirname(a.manifest), man["onnx"]), providers=["CPUExecutionProvider"])
    out_name = man["outputs"][0]["tensor"]
    logits = np.concatenate([sess.run([out_name], {man["input"]["name"]: np.ascontiguousarray(x[test[s:s + 256]])})[0] for s in range(0, len(test), 256)])
    col = {o["key"]: o["index"] for o in man["outputs"]}
    p_nod = sigmoid(logits[:, col["nodule"]])
    p_mal = sigmoid(logits[:, col["malignancy"]])
    cal = man.get("training", {}).get("malignancy_calibration")
    if cal:
        cal_a, cal_b, cal_method = float(cal["scale"]), float(cal["shift"]), cal["method"]
    else:  # older manifests: temperature only
        cal_a, cal_b, cal_method = 1.0 / float(man.get("training", {}).get("malignancy_temperature", 1.0)), 0.0, "temperature"
    p_mal_uncal = sigmoid((logits[:, col["malignancy"]] - cal_b) / cal_a)
    fa = lambda rs, k: np.array([float(r[k]) if r[k] != "" else np.nan for r in rs])
    f = lambda k: fa(R, k)
    y_nod = f("label_nodule")
    mal = f("malignant")
    patient = np.array([r["patient_id"] for r in R])
    kind = np.array([r["kind"] for r in R])
    diam = f("diameter_mm")
    pos = y_nod > 0.5
    binm = pos & np.isfinite(mal)
    B = a.bootstrap
    metrics = {"split": "test", "unit": f"rendering (one simulated acquisition of one reader's contour); CIs: 95% percentile bootstrap over test patients ({B} resamples)"}
    metrics["counts"] = {
        "test_patients": int(len(np.unique(patient[pos]))),
        "test_nodules": int(len(set(r["nodule_id"] for r in R if r["nodule_id"]))),
        "renderings_positive": int(pos.sum()),
        "renderings_negative": int((~pos).sum()),
        "renderings_malignancy_binary": int(binm.sum()),
        "malignant": int((mal[binm] == 1).sum()),
        "benign": int((mal[binm] == 0).sum()),
        "indeterminate_excluded": int((pos & ~np.isfinite(mal)).sum()),
    }

    def with_ci(fn, groups_mask, seed_off=0):
        idx_all = np.where(groups_mask)[0]
        v = fn(idx_all)
        lo, hi = cluster_bootstrap(patient[idx_all], lambda ii: fn(idx_all[ii]), B, a.seed + seed_off)
        return v, lo, hi

    def put(name, fn, mask, off=0):
        v, lo, hi = with_ci(fn, mask, off)
        metrics[name] = {"value": round(float(v), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}

    everything = np.ones(len(R), dtype=bool)
    put("nodule_auc", lambda i: auc(y_nod[i] > 0.5, p_nod[i]), everything, 1)
    thr = float(man["nodule_threshold"])
    metrics["nodule_threshold"] = thr
    metrics["nodule_sensitivity_at_threshold"] = round(float(np.mean(p_nod[pos] >= thr)), 4)
    metrics["nodule_specificity_at_threshold"] = round(float(np.mean(p_nod[~pos] < thr)), 4)
    metrics["false_positive_rate_by_negative_kind"] = {k: round(float(np.mean(p_nod[(kind == k)] >= thr)), 4) for k in sorted(set(kind[~pos]))}
    metrics["sensitivity_by_positive_kind"] = {k: round(float(np.mean(p_nod[(kind == k) & pos] >= thr)), 4) for k in sorted(set(kind[pos]))}
    # Malignancy on the binary subset.
    yb = mal
    put("malignancy_auc", lambda i: auc(yb[i] == 1, p_mal[i]), binm, 2)
    put("malignancy_ece", lambda i: ece(yb[i], p_mal[i]), binm, 3)
    metrics["malignancy_ece_before_calibration"] = round(ece(yb[binm], p_mal_uncal[binm]), 4)
    metrics["malignancy_calibration"] = {"method": cal_method, "scale": cal_a, "shift": cal_b}
    # Per nodule (mean over its renderings).
    nid = np.array([r["nodule_id"] for r in R])
    ids = sorted(set(nid[binm]))
    pn = np.array([p_mal[binm & (nid == k)].mean() for k in ids])
    yn = np.array([yb[binm & (nid == k)][0] for k in ids])
    metrics["malignancy_auc_per_nodule_mean_of_renderings"] = round(auc(yn == 1, pn), 4)
    # Baselines, fitted on TRAIN nodules only (nodule table), applied to the same test renderings.
    nr = [r for r in nod_rows if r["malignant"] != ""]
    g = lambda rs, k: np.array([float(r[k]) for r in rs])
    tr = [r for r in nr if r["split"] == "train"]
    size_lr = LogisticRegression().fit(g(tr, "diameter_mm")[:, None], g(tr, "malignant"))
    by_id = {r["nodule_id"]: r for r in nod_rows}
    TR = [by_id[k] if k else None for k in nid]
    gv = lambda k: np.array([float(r[k]) if r is not None else np.nan for r in TR])
    s_size = size_lr.predict_proba(np.nan_to_num(diam)[:, None])[:, 1]
    upper = (gv("z_fraction") > 0.5).astype(float)
    s_brock = sigmoid(brock_logit(np.nan_to_num(diam, nan=5.0), np.nan_to_num(gv("type_class")), (np.nan_to_num(gv("spiculation_median")) >= 3).astype(float), upper, np.nan_to_num(gv("nodules_in_scan"), nan=1.0)))
    feats = ["diameter_mm", "texture_median", "calcified", "margin_median", "spiculation_median", "lobulation_median", "subtlety_median"]
    rat_lr = LogisticRegression(max_iter=2000).fit(np.stack([g(tr, k) for k in feats], 1), g(tr, "malignant"))
    s_rat = rat_lr.predict_proba(np.nan_to_num(np.stack([gv(k) for k in feats], 1)))[:, 1]
    put("size_only_auc", lambda i: auc(yb[i] == 1, s_size[i]), binm, 4)
    put("size_only_ece", lambda i: ece(yb[i], s_size[i]), binm, 5)
    put("brock_auc", lambda i: auc(yb[i] == 1, s_brock[i]), binm, 6)
    put("ratings_oracle_auc", lambda i: auc(yb[i] == 1, s_rat[i]), binm, 7)
    put("cnn_minus_size_auc", lambda i: auc(yb[i] == 1, p_mal[i]) - auc(yb[i] == 1, s_size[i]), binm, 8)
    put("cnn_minus_brock_auc", lambda i: auc(yb[i] == 1, p_mal[i]) - auc(yb[i] == 1, s_brock[i]), binm, 9)
    if "reader_diameter_mm" in R[0]:
        # Like for like: the diameter of the one reading that was rendered into the image the CNN sees
        # (the readers' mean above holds size information no single image shows). Fitted on train renderings.
        rdiam = f("reader_diameter_mm")
        trr = [r for r in rows if r["split"] == "train" and r["malignant"] != "" and r["reader_diameter_mm"] != ""]
        ytr = fa(trr, "malignant")
        rsize_lr = LogisticRegression().fit(fa(trr, "reader_diameter_mm")[:, None], ytr)
        s_rsize = rsize_lr.predict_proba(np.nan_to_num(rdiam)[:, None])[:, 1]
        put("size_rendered_auc", lambda i: auc(yb[i] == 1, s_rsize[i]), binm, 10)
        put("cnn_minus_size_rendered_auc", lambda i: auc(yb[i] == 1, p_mal[i]) - auc(yb[i] == 1, s_rsize[i]), binm, 11)
        # How much a rendering could show at best: gradient-boosted trees (fitted on train renderings) on
        # one reader's own ratings vs on the readers' consensus ratings (+ diameter). References, not competitors.
        from sklearn.ensemble import HistGradientBoostingClassifier
        def own(rs):
            return np.stack([np.log(fa(rs, "reader_diameter_mm")), fa(rs, "reader_spiculation"), fa(rs, "reader_margin"),
                             fa(rs, "reader_texture"), (fa(rs, "reader_calcification") < 6).astype(float)], 1)
        def cons(rs):
            return np.stack([np.log(fa(rs, "diameter_mm")), fa(rs, "spiculation_median"), fa(rs, "margin_median"),
                             fa(rs, "texture_median"), fa(rs, "calcified")], 1)
        for key, feat in (("reference_reader_ratings_auc", own), ("reference_consensus_ratings_auc", cons)):
            hgb = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_depth=3, random_state=a.seed).fit(feat(trr), ytr)
            s_ref = hgb.predict_proba(np.nan_to_num(feat(R)))[:, 1]
            put(key, lambda i, s_ref=s_ref: auc(yb[i] == 1, s_ref[i]), binm, 12 if key.startswith("reference_reader") else 13)
    metrics["baselines"] = {
        "size_only": "logistic regression on the readers' mean largest in-plane diameter, fitted on train nodules",
        "reference_reader_ratings": "gradient-boosted trees on one reader's own diameter, spiculation, margin, texture and calcification (what a rendering with that reader's appearance shows), fitted on train renderings",
        "reference_consensus_ratings": "gradient-boosted trees on the consensus diameter, spiculation, margin, texture and calcification (what a rendering with the consensus appearance shows, up to shape), fitted on train renderings",
        "size_rendered": "logistic regression on the largest in-plane diameter of the one reading rendered into the test image (what the image shows), fitted on train renderings",
        "brock": "Brock/PanCan full model with spiculation (McWilliams 2013), published coefficients; LIDC lacks age, sex, family history, emphysema and lobe: age 62 (model centre), female 0.5 (unknown sex), family history 0, emphysema 0, upper lobe = nodule centroid in the upper half of the scan's z range (proxy), nodule count = annotated nodules (>= 3 mm) in the scan, spiculation = readers' median >= 3, type from the median texture",
        "ratings_oracle": "logistic regression on the readers' consensus ratings that drive the renderer (diameter, texture, calcification, margin, spiculation, lobulation, subtlety), fitted on train nodules: how much of the malignancy rating the ratings themselves explain (leakage reference, not a fair competitor)",
    }
    # Subgroups (point estimates).
    sub = {}
    for name, m in [
        ("background_synthetic", np.array([r["background"] == "synthetic" for r in R])),
        ("background_lung1", np.array([r["background"] == "lung1" for r in R])),
        ("dose_low", np.array([r["dose"] == "low" for r in R])),
        ("dose_standard", np.array([r["dose"] == "standard" for r in R])),
        ("thickness_le_2.5mm", f("thickness_mm") <= 2.5),
        ("thickness_gt_2.5mm", f("thickness_mm") > 2.5),
        ("readers_ge_3", f("n_readers") >= 3),
        ("juxtapleural", np.array([r["juxtapleural"] == "1" for r in R])),
        ("diameter_lt_10mm", diam < 10),
    ]:
        mm = binm & m
        sub[name] = {"n": int(mm.sum()), "malignancy_auc": round(auc(yb[mm] == 1, p_mal[mm]), 4),
                     "nodule_auc": round(auc(y_nod[m] > 0.5, p_nod[m]), 4) if (m & ~pos).any() and (m & pos).any() else None}
    metrics["subgroups"] = sub
    # Secondary heads.
    tc = f("type_class")
    typ = logits[:, [col["solid"], col["part_solid"], col["ground_glass"]]].argmax(1)
    metrics["type_accuracy"] = round(float(np.mean(typ[pos] == tc[pos])), 4)
    calc = f("calcified")
    metrics["calcified_auc"] = round(auc(calc[pos] == 1, logits[pos, col["calcified"]]), 4)
    sp = f("spiculation_median")
    metrics["spiculation_spearman"] = round(float(np.corrcoef(np.argsort(np.argsort(sp[pos])), np.argsort(np.argsort(logits[pos, col["spiculation"]])))[0, 1]), 4)
    metrics["goals"] = {
        "malignancy_auc_ge_0.90": bool(metrics["malignancy_auc"]["value"] >= 0.90),
        "ece_le_0.05": bool(metrics["malignancy_ece"]["value"] <= 0.05),
        "beats_size_only": bool(metrics["cnn_minus_size_auc"]["ci95"][0] > 0),
    }
    metrics["dataset_sha256"] = meta["dataset_sha256"]
    metrics = clean(metrics)
    json.dump(metrics, open(a.out, "w"), indent=1)
    man["metrics"] = {k: metrics[k] for k in ["split", "unit", "counts", "nodule_auc", "nodule_sensitivity_at_threshold", "nodule_specificity_at_threshold",
                                              "malignancy_auc", "malignancy_ece", "malignancy_ece_before_calibration", "malignancy_auc_per_nodule_mean_of_renderings",
                                              "size_only_auc", "brock_auc", "ratings_oracle_auc", "cnn_minus_size_auc", "cnn_minus_brock_auc", "size_rendered_auc", "cnn_minus_size_rendered_auc", "reference_reader_ratings_auc", "reference_consensus_ratings_auc", "type_accuracy", "calcified_auc", "goals"] if k in metrics}
    with open(a.manifest, "w") as fh:
        json.dump(clean(man), fh, indent=1)
    print(json.dumps(man["metrics"], indent=1))
    if a.card:
        c = metrics["counts"]
        lines = [
            "<!-- metrics:begin (generated by training/evaluate.py; do not edit by hand) -->",
            f"Held-out **test** patients: {c['test_patients']} patients, {c['test_nodules']} nodules, {c['renderings_positive']} nodule renderings and {c['renderings_negative']} negative candidates; malignancy metrics on {c['renderings_malignancy_binary']} renderings with a binary label ({c['malignant']} malignant, {c['benign']} benign; {c['indeterminate_excluded']} indeterminate excluded). 95% CIs: percentile bootstrap over test patients ({B} resamples). Dataset SHA-256 `{meta['dataset_sha256']}`.",
            "",
            "| metric | value [95% CI] | goal |",
            "|---|---|---|",
            f"| malignancy AUC (CNN) | {fmt(metrics, 'malignancy_auc')} | ≥ 0.90 {'✓' if metrics['goals']['malignancy_auc_ge_0.90'] else '✗ not met'} |",
            f"| malignancy ECE (10 bins, after {cal_method} calibration on validation) | {fmt(metrics, 'malignancy_ece')} | ≤ 0.05 {'✓' if metrics['goals']['ece_le_0.05'] else '✗ not met'} |",
            f"| malignancy ECE before calibration (scale {cal_a:.3f}, shift {cal_b:.3f}) | {num(metrics['malignancy_ece_before_calibration'])} | |",
            f"| baseline: size only (logistic regression on diameter) AUC | {fmt(metrics, 'size_only_auc')} | |",
            f"| baseline: Brock (PanCan full, defaults) AUC | {fmt(metrics, 'brock_auc')} | |",
            f"| CNN − size-only AUC (paired) | {fmt(metrics, 'cnn_minus_size_auc')} | > 0 {'✓' if metrics['goals']['beats_size_only'] else '✗ not met'} |",
            f"| CNN − Brock AUC (paired) | {fmt(metrics, 'cnn_minus_brock_auc')} | |",
        ] + ([
            f"| baseline: size of the rendered reading only (like for like) AUC | {fmt(metrics, 'size_rendered_auc')} | |",
            f"| CNN − rendered-reading size AUC (paired) | {fmt(metrics, 'cnn_minus_size_rendered_auc')} | |",
            f"| reference: boosted trees on one reader's own ratings AUC | {fmt(metrics, 'reference_reader_ratings_auc')} | |",
            f"| reference: boosted trees on the consensus ratings AUC | {fmt(metrics, 'reference_consensus_ratings_auc')} | |",
        ] if "size_rendered_auc" in metrics else []) + [
            f"| reference: LR on the readers' ratings (leakage reference) AUC | {fmt(metrics, 'ratings_oracle_auc')} | |",
            f"| malignancy AUC per nodule (mean of its renderings) | {num(metrics['malignancy_auc_per_nodule_mean_of_renderings'])} | |",
            f"| nodule vs non-nodule AUC | {fmt(metrics, 'nodule_auc')} | |",
            f"| sensitivity / specificity at nodule_threshold {thr:.3f} | {num(metrics['nodule_sensitivity_at_threshold'])} / {num(metrics['nodule_specificity_at_threshold'])} | |",
            f"| type accuracy (solid / part-solid / ground glass) | {num(metrics['type_accuracy'])} | |",
            f"| calcified AUC | {num(metrics['calcified_auc'])} | |",
            f"| spiculation head vs readers' median (Spearman) | {num(metrics['spiculation_spearman'])} | |",
            "",
            "False-positive rate at the threshold by negative kind: " + ", ".join(f"{k} {num(v)}" for k, v in metrics["false_positive_rate_by_negative_kind"].items()) + ".",
        "Sensitivity at the threshold by positive kind: " + ", ".join(f"{k} {num(v)}" for k, v in metrics["sensitivity_by_positive_kind"].items()) + ".",
            "",
            "Malignancy AUC by subgroup (point estimates): " + ", ".join(f"{k} {num(v['malignancy_auc'])} (n={v['n']})" for k, v in sub.items()) + ".",
            "<!-- metrics:end -->",
        ]
        text = open(a.card).read() if os.path.exists(a.card) else "<!-- metrics:begin -->\n<!-- metrics:end -->\n"
        b, e = text.find("<!-- metrics:begin"), text.find("<!-- metrics:end -->")
        if b < 0 or e < 0:
            text += "\n" + "\n".join(lines) + "\n"
        else:
            text = text[:b] + "\n".join(lines) + text[e + len("<!-- metrics:end -->"):]
        open(a.card, "w").write(text)


if __name__ == "__main__":
    main()
