#!/usr/bin/env bash
# Interoperability end to end: the DICOM objects ct-triage writes, checked by
# independent readers.
#
#   1. cargo test --test interop_dicom: SR/SEG/SC/de-identification against
#      dsrdump, dsr2xml, highdicom/pydicom, dcmdump and Orthanc (lung1 with
#      hand-built findings, plus the real model once models/ has it);
#   2. `ct-triage analyze sample-dicom/lung1` (the CLI, with its model) and the
#      same readers on the folder it wrote: report.sr.dcm, findings.seg.dcm,
#      key-images/finding-N{,-zoom}.sc.dcm, key-objects.kos.dcm beside
#      report.json; dciodvfy (dicom3tools) finds no Error in any of them;
#      Orthanc stores them all.
#
# Needs: dcmtk (dsrdump, dsr2xml, dcmdump), dicom3tools (dciodvfy), Orthanc (/usr/sbin/Orthanc or
# $CTT_ORTHANC), curl, a Python with pydicom + highdicom ($CTT_PYTHON,
# default .venv/bin/python from scripts/setup.sh). Every missing tool is an error.
#
# Usage: tests/e2e/interop.sh            (both steps)
#        tests/e2e/interop.sh --cli-only (step 2 only)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=${CTT_PYTHON:-$ROOT/.venv/bin/python}
ORTHANC=${CTT_ORTHANC:-/usr/sbin/Orthanc}
for tool in dsrdump dsr2xml dcmdump dciodvfy curl "$PY" "$ORTHANC"; do
  command -v "$tool" >/dev/null || { echo "interop.sh: $tool is not installed" >&2; exit 2; }
done

if [[ "${1:-}" != "--cli-only" ]]; then
  echo "== 1. cargo test --test interop_dicom"
  (cd "$ROOT" && cargo test -q -p ct-triage-tests --test interop_dicom -- --nocapture --test-threads 1)
fi

echo "== 2. ct-triage analyze on lung1"
WORK=$(mktemp -d)
ORTHANC_PID=
cleanup() {
  [[ -n "$ORTHANC_PID" ]] && kill "$ORTHANC_PID" 2>/dev/null && wait "$ORTHANC_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

BIN=${CTT_BIN:-$ROOT/target/release/ct-triage}
if [[ ! -x "$BIN" ]]; then
  (cd "$ROOT" && cargo build -q --release -p ct-triage --bin ct-triage)
fi
OUT="$WORK/result"
set +e
"$BIN" analyze "$ROOT/sample-dicom/lung1" --out "$OUT" --quiet
rc=$?
set -e
# 0 = conclusive, 3 = inconclusive (still a complete result folder).
[[ $rc == 0 || $rc == 3 ]] || { echo "ct-triage analyze failed ($rc)" >&2; exit 1; }
ls -R "$OUT"
test -f "$OUT/report.json"
test -f "$OUT/report.sr.dcm" || { echo "no report.sr.dcm beside report.json" >&2; exit 1; }

echo "-- dsrdump"
dsrdump +Pt "$OUT/report.sr.dcm" >"$WORK/dsrdump.txt" 2>"$WORK/dsrdump.err"
grep -v -- '------' "$WORK/dsrdump.txt" | grep -E 'TID|NUM' | head -30
# dcmtk 3.6.7 cannot VR-check UTF-8 text; that notice is not a finding.
if grep -E '^(E|W):' "$WORK/dsrdump.err" | grep -v 'VR checker does not support'; then
  echo "dsrdump complained" >&2; exit 1
fi
grep -q "TID 1500 (DCMR)" "$WORK/dsrdump.txt"
dsr2xml "$OUT/report.sr.dcm" > "$WORK/report.sr.xml" 2>"$WORK/dsr2xml.err"

echo "-- pydicom/highdicom: SR values = report.json, SEG = findings"
"$PY" - "$OUT" <<'PY'
import json, sys, glob, os
import highdicom as hd
out = sys.argv[1]
rep = json.load(open(os.path.join(out, 'report.json')))
sr = hd.sr.srread(os.path.join(out, 'report.sr.dcm'))
groups = sr.content.get_volumetric_roi_measurement_groups()
# Issue 16: the opacity types' TID 1411 groups follow the findings' (tracked for OHIF).
ogroups = [g for g in groups if not g.tracking_identifier.startswith('Cornerstone3DTools')]
groups = [g for g in groups if g.tracking_identifier.startswith('Cornerstone3DTools')]
assert len(groups) == len(rep['findings']), (len(groups), len(rep['findings']))
op = rep.get('opacities')
KEY = {'Ground glass opacity': 'ground_glass', 'Consolidation': 'consolidation'}
for g in ogroups:
    k = KEY[g.tracking_identifier]
    vols = [m.value for m in g.get_measurements() if m.name.value == '118565006']
    assert vols == [round(op['right'][k + '_ml'] + op['left'][k + '_ml'], 3), op['right'][k + '_ml'], op['left'][k + '_ml']], (k, vols)
for g, f in zip(groups, rep['findings']):
    assert g.tracking_uid == f['tracking_uid']
    ms = g.get_measurements()
    names = [m.name.meaning for m in ms]
    assert len(names) == len(set(names)), ('two measurements share a concept name', names)
    got = {m.name.value: m.value for m in ms}
    for code, key in [('103339001', 'long_axis_mm'), ('103340004', 'short_axis_mm'),
                      ('81827009', 'diameter_mm'), ('118565006', 'volume_mm3'), ('112031', 'mean_hu'),
                      ('AIMALIG', 'malignancy_probability'), ('111047', 'brock_probability')]:
        assert abs(got[code] - f[key]) <= 1e-9 * max(1, abs(f[key])), (code, got[code], f[key])
    assert [m.method.value for m in ms if m.name.value == '111047'] == ['BROCK']
    assert isinstance(f['image_number'], int), f['image_number']
seg_path = os.path.join(out, 'findings.seg.dcm')
ms = (op or {}).get('most_affected_slice')
if rep['findings'] or ms:
    seg = hd.seg.segread(seg_path)
    n = len(rep['findings'])
    assert list(seg.segment_numbers) == list(range(1, n + len(ogroups) + 1)), (list(seg.segment_numbers), n, len(ogroups))
    for i, f in enumerate(rep['findings']):
        assert seg.get_segment_description(i + 1).tracking_uid == f['tracking_uid']
    for i, g in enumerate(ogroups):
        assert seg.get_segment_description(n + i + 1).segment_label == g.tracking_identifier
    key = [k for k in glob.glob(os.path.join(out, 'key-images', '*.sc.dcm'))]
    with_opacity = 1 if ms and ms.get('key_image') else 0
    assert len(key) == 2 * n + with_opacity, key
    import pydicom
    ko = hd.ko.KeyObjectSelectionDocument.from_dataset(pydicom.dcmread(os.path.join(out, 'key-objects.kos.dcm')))
    refs = {r.referenced_sop_instance_uid for r in ko.content.get_references()}
    sc = {pydicom.dcmread(k, stop_before_pixels=True).SOPInstanceUID for k in key}
    want = sc | {k['sop_instance_uid'] for k in rep['key_images']}
    if with_opacity:
        # The opacity key image's source slice: the most affected slice.
        o = pydicom.dcmread(os.path.join(out, 'key-images', 'opacities.sc.dcm'), stop_before_pixels=True)
        want.add(o.SourceImageSequence[0].ReferencedSOPInstanceUID)
    assert refs == want, sorted(refs ^ want)
print('SR: %d finding groups and %d opacity groups equal report.json, one concept name per finding measurement; SEG, key images and the KOS present'
      % (len(groups), len(ogroups)))
PY

echo "-- dciodvfy (dicom3tools): no Error in any object"
errors=0
while IFS= read -r -d '' f; do
  out=$(dciodvfy "$f" 2>&1 || true)
  e=$(grep -c '^Error' <<<"$out" || true)
  w=$(grep -c '^Warning' <<<"$out" || true)
  echo "dciodvfy ${f#"$OUT"/}: $e error(s), $w warning(s)"
  if [[ $e != 0 ]]; then grep '^Error' <<<"$out" >&2; errors=$((errors + e)); fi
done < <(find "$OUT" -name '*.dcm' -print0 | sort -z)
[[ $errors == 0 ]] || { echo "dciodvfy: $errors Error line(s)" >&2; exit 1; }

echo "-- dcmdump"
find "$OUT" -name '*.dcm' -print0 | while IFS= read -r -d '' f; do dcmdump -q "$f" >/dev/null; echo "ok $f"; done

echo "-- Orthanc"
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/orthanc.json" <<JSON
{"Name": "ct-triage-e2e", "StorageDirectory": "$WORK/storage", "IndexDirectory": "$WORK/index",
 "HttpPort": $PORT, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
 "DicomServerEnabled": false, "Plugins": []}
JSON
"$ORTHANC" "$WORK/orthanc.json" >"$WORK/orthanc.log" 2>&1 &
ORTHANC_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/system" >/dev/null && break; sleep 0.2; done
n=0
for f in "$ROOT"/sample-dicom/lung1/*.dcm $(find "$OUT" -name '*.dcm'); do
  code=$(curl -s -o "$WORK/resp.json" -w '%{http_code}' -X POST --data-binary @"$f" \
         -H 'Content-Type: application/dicom' "http://127.0.0.1:$PORT/instances")
  [[ $code == 200 ]] || { echo "Orthanc answered $code for $f: $(cat "$WORK/resp.json")" >&2; exit 1; }
  n=$((n + 1))
done
stored=$(curl -sf "http://127.0.0.1:$PORT/instances" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')
[[ $stored == "$n" ]] || { echo "Orthanc lists $stored of $n instances" >&2; exit 1; }
echo "Orthanc stored $stored instances (200 each)"
echo "interop.sh: all checks passed"
