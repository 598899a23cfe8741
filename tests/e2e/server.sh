#!/usr/bin/env bash
# End-to-end tests of `ct-triage serve` and `ct-triage batch` against real peers
# on 127.0.0.1: dcmtk's storescu, a real Orthanc (DICOM + REST), curl (HTTP
# multipart and STOW-RS); a bounded load test with a kill -9 / restart of the
# server; a kill -9 / resume test of batch.
#
#   tests/e2e/server.sh            # builds target/release/ct-triage first
#   CTT_BIN=path/to/ct-triage tests/e2e/server.sh
#   CTT_MODEL=path/to/manifest.json tests/e2e/server.sh   # binary built without models/
#   KEEP=1 tests/e2e/server.sh     # keep the work folder for inspection
#
# Needs: storescu and dcmdump (Debian dcmtk), /usr/sbin/Orthanc (Debian
# orthanc), curl, python3. A missing tool is a failure, not a skip.
# Every process it starts is stopped by PID on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HELP="$ROOT/tests/e2e/server_helpers.py"
LUNG1="$ROOT/sample-dicom/lung1"
TOKEN="ci-token-0123456789abcdef"
T0=$(date +%s)

for tool in storescu dcmdump curl python3 /usr/sbin/Orthanc; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 1; }
done

if [ -z "${CTT_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release -p ct-triage --quiet)
    CTT_BIN="$ROOT/target/release/ct-triage"
fi
MODEL_ARGS=()
if [ -n "${CTT_MODEL:-}" ]; then MODEL_ARGS=(--model "$CTT_MODEL"); fi

WORK="$(mktemp -d /tmp/ctt-e2e.XXXXXX)"
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$rc" -ne 0 ]; then
        echo "--- server log (tail)"; tail -n 40 "$WORK/server.log" 2>/dev/null || true
        echo "--- orthanc log (tail)"; tail -n 20 "$WORK/orthanc.log" 2>/dev/null || true
    fi
    if [ -n "${KEEP:-}" ]; then echo "work folder kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
json() { python3 "$HELP" json "$1"; }
api() { curl -fsS -H "Authorization: Bearer $TOKEN" "$@"; }

# Wait until `cmd` succeeds, at most $1 seconds.
wait_for() {
    local limit=$1; shift
    local end=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.5
    done
}

read -r HTTP DICOM OH_HTTP OH_DICOM <<<"$(python3 "$HELP" free-ports 4)"
echo "ports: http $HTTP, dicom $DICOM, orthanc http $OH_HTTP, orthanc dicom $OH_DICOM"
echo "ci:admin:$TOKEN" >"$WORK/tokens"

# ---------------------------------------------------------------- Orthanc
mkdir -p "$WORK/orthanc"
python3 "$HELP" orthanc-config "$WORK/orthanc/config.json" "$OH_HTTP" "$OH_DICOM" "$WORK/orthanc" CTTRIAGE "$DICOM"
/usr/sbin/Orthanc "$WORK/orthanc/config.json" >"$WORK/orthanc.log" 2>&1 &
PIDS+=($!)
wait_for 60 curl -fsS "http://127.0.0.1:$OH_HTTP/system"
ok "Orthanc up"

# ---------------------------------------------------------------- server
start_server() {
    "$CTT_BIN" serve --listen "127.0.0.1:$HTTP" --token-file "$WORK/tokens" \
        --data-dir "$WORK/data" --dicom-port "$DICOM" --ae-title CTTRIAGE \
        --forward-to "127.0.0.1:$OH_DICOM:ORTHANC" \
        --quiet-seconds 2 --workers 2 "${MODEL_ARGS[@]}" >>"$WORK/server.log" 2>&1 &
    SERVER=$!
    PIDS+=("$SERVER")
    wait_for 60 curl -fsS "http://127.0.0.1:$HTTP/healthz"
}
start_server
ok "server up"
BASE="http://127.0.0.1:$HTTP"

# ---------------------------------------------------------------- auth, docs, metrics
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
check "no token → 401" test "$(code "$BASE/v1/worklist")" = 401
check "wrong token → 401" test "$(code -H 'Authorization: Bearer wrong-token-xxxxxxxx' "$BASE/v1/worklist")" = 401
check "healthz needs no token" test "$(code "$BASE/healthz")" = 200
check "openapi.json lists every route" bash -c "curl -fsS -H 'Authorization: Bearer $TOKEN' $BASE/openapi.json | python3 -c '
import json,sys; p=json.load(sys.stdin)[\"paths\"]
need=[\"/v1/studies\",\"/v1/jobs/{id}\",\"/v1/jobs/{id}/report\",\"/v1/jobs/{id}/key-images/{n}.png\",\"/v1/worklist\",\"/dicomweb/studies\",\"/metrics\",\"/healthz\"]
sys.exit(0 if all(k in p for k in need) else 1)'"
check "unknown job → 404" test "$(code -H "Authorization: Bearer $TOKEN" "$BASE/v1/jobs/nope")" = 404

job_state() { api "$BASE/v1/jobs/$1" | json 'd["state"]'; }
job_finished() { local s; s=$(job_state "$1"); [ "$s" = done ] || [ "$s" = failed ]; }
wait_done() {
    wait_for "${2:-300}" job_finished "$1" || { echo "job $1 did not finish"; return 1; }
    [ "$(job_state "$1")" = done ] || { api "$BASE/v1/jobs/$1"; echo; return 1; }
}
LUNG1_SERIES=$("$CTT_BIN" inspect --json "$LUNG1" | json 'd["volume"]["series_instance_uid"]')

# ---------------------------------------------------------------- C-STORE in (storescu) → report → forwarded to Orthanc
storescu -aet STORESCU -aec CTTRIAGE 127.0.0.1 "$DICOM" "$LUNG1"/*.dcm
ok "storescu sent lung1 to the SCP"
dicom_job() {
    api "$BASE/v1/worklist" | json '[r["job_id"] for r in d["worklist"] if "STORESCU" in r["input"]][0]'
}
wait_for 300 dicom_job
JOB=$(dicom_job)
check "DICOM job done" wait_done "$JOB"
api "$BASE/v1/jobs/$JOB/report" >"$WORK/dicom-report.json"
check "report of the DICOM job is lung1's" test "$(json 'd["input"]["series_instance_uid"]' <"$WORK/dicom-report.json")" = "$LUNG1_SERIES"
check "report has a triage priority" bash -c "json() { python3 '$HELP' json \"\$1\"; }; json 'd[\"exam\"][\"triage_priority\"]' <'$WORK/dicom-report.json' | grep -Eq '^(urgent|priority|routine|inconclusive)$'"
fwd() { api "$BASE/v1/jobs/$JOB" | json 'd["forward"] or ""'; }
forwarded() { fwd | grep -Eq '^sent [0-9]+/'; }
wait_for 120 forwarded || true
FWD=$(fwd)
check "every result object forwarded to Orthanc ($FWD)" python3 -c '
import re, sys; m = re.match(r"sent (\d+)/(\d+)", sys.argv[1])
sys.exit(0 if m and m[1] == m[2] and int(m[1]) > 0 else 1)' "$FWD"
SENT=$(echo "$FWD" | sed -E 's#^sent ([0-9]+)/.*#\1#')
STUDY=$(json 'd["input"]["study_instance_uid"]' <"$WORK/dicom-report.json")
orthanc_find() {
    curl -fsS -X POST "http://127.0.0.1:$OH_HTTP/tools/find" -d "{\"Level\":\"$1\",\"Query\":{$2}}" | json 'len(d)'
}
check "Orthanc REST: $SENT forwarded instances in the study" test "$(orthanc_find Instance "\"StudyInstanceUID\":\"$STUDY\"")" = "$SENT"
check "Orthanc REST: a DICOM SR series" test "$(orthanc_find Series "\"StudyInstanceUID\":\"$STUDY\",\"Modality\":\"SR\"")" -ge 1
check "Orthanc REST: a DICOM SEG series" test "$(orthanc_find Series "\"StudyInstanceUID\":\"$STUDY\",\"Modality\":\"SEG\"")" -ge 1

# Orthanc as the PACS routing a CT series to us (C-STORE from Orthanc → SCP).
storescu -aet LOADER -aec ORTHANC 127.0.0.1 "$OH_DICOM" "$LUNG1"/*.dcm
OH_SERIES=$(curl -fsS -X POST "http://127.0.0.1:$OH_HTTP/tools/find" \
    -d "{\"Level\":\"Series\",\"Query\":{\"SeriesInstanceUID\":\"$LUNG1_SERIES\"}}" | json 'd[0]')
curl -fsS -X POST "http://127.0.0.1:$OH_HTTP/modalities/ctt/store" -d "$OH_SERIES" >/dev/null
orthanc_job() {
    api "$BASE/v1/worklist" | json '[r["job_id"] for r in d["worklist"] if "ORTHANC" in r["input"]][0]'
}
check "Orthanc-routed series analysed" wait_for 300 orthanc_job
check "Orthanc-routed job done" wait_done "$(orthanc_job)"

# ---------------------------------------------------------------- HTTP multipart upload
FORM=()
for f in "$LUNG1"/*.dcm; do FORM+=(-F "file=@$f;type=application/dicom"); done
UP=$(api -X POST "${FORM[@]}" "$BASE/v1/studies")
JOB=$(echo "$UP" | json 'd["job_id"]')
check "multipart upload accepted" test -n "$JOB"
check "multipart job done" wait_done "$JOB"
check "multipart report" bash -c "curl -fsS -H 'Authorization: Bearer $TOKEN' $BASE/v1/jobs/$JOB/report | grep -q triage_priority"
api "$BASE/v1/jobs/$JOB/report" >"$WORK/upload-report.json"
KEY=$(api "$BASE/v1/jobs/$JOB" | json '(d["links"]["key_images"] + [""])[0]')
if [ -n "$KEY" ]; then
    check "key image is a PNG" bash -c "curl -fsS -H 'Authorization: Bearer $TOKEN' $BASE$KEY | head -c 4 | od -An -c | grep -q 'P   N   G'"
else
    ok "no finding, no key image"
fi
python3 "$HELP" zip "$WORK/lung1.zip" "$LUNG1"/*.dcm
JOB=$(api -X POST -F "file=@$WORK/lung1.zip" "$BASE/v1/studies" | json 'd["job_id"]')
check "zip upload job done" wait_done "$JOB"
check "upload without files → 400" test "$(code -H "Authorization: Bearer $TOKEN" -X POST -F note=x "$BASE/v1/studies")" = 400

# ---------------------------------------------------------------- STOW-RS
python3 "$HELP" stow-body "$WORK/stow.body" BOUNDARYctt "$LUNG1"/*.dcm
HDRS="$WORK/stow.headers"
curl -fsS -D "$HDRS" -o "$WORK/stow.json" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: multipart/related; type="application/dicom"; boundary=BOUNDARYctt' \
    --data-binary @"$WORK/stow.body" "$BASE/dicomweb/studies"
check "STOW-RS stored 48 instances" test "$(json 'len(d["00081199"]["Value"])' <"$WORK/stow.json")" = 48
JOB=$(tr -d '\r' <"$HDRS" | awk -F': ' 'tolower($1)=="x-job-id"{print $2}')
check "STOW-RS job done" wait_done "$JOB"
echo "not dicom" >"$WORK/junk.dcm"
python3 "$HELP" stow-body "$WORK/stow2.body" B2 "$WORK/junk.dcm" "$LUNG1"/*.dcm
check "STOW-RS with a bad part → 202 + FailedSOPSequence" test "$(curl -s -o "$WORK/stow2.json" -w '%{http_code}' \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: multipart/related; type="application/dicom"; boundary=B2' \
    --data-binary @"$WORK/stow2.body" "$BASE/dicomweb/studies")" = 202
check "STOW-RS wrong media type → 415" test "$(code -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{}' "$BASE/dicomweb/studies")" = 415

# ---------------------------------------------------------------- load: 50 concurrent uploads, kill -9, restart
python3 "$HELP" slab "$LUNG1" 20 "$WORK/small"
python3 "$HELP" zip "$WORK/small.zip" "$WORK/small"/*.dcm
# Each upload writes its response to a file of its own (one writer per file):
# 50 writers sharing one output file once put two job ids on one line.
mkdir -p "$WORK/load"
upload() {
    curl -sS -o "$WORK/load/$1.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        -X POST -F "file=@$WORK/small.zip" "$BASE/v1/studies" >"$WORK/load/$1.code"
}
export -f upload
export TOKEN BASE WORK
LOAD_T0=$(date +%s.%N)
seq 50 | xargs -P 50 -I{} bash -c 'upload "$1"' _ {} || true
LOAD_T1=$(date +%s.%N)
for i in $(seq 50); do
    code=$(cat "$WORK/load/$i.code" 2>/dev/null || echo none)
    if [ "$code" = 202 ] || [ "$code" = 200 ]; then
        json 'd["job_id"]' <"$WORK/load/$i.json"
    else
        echo "     upload $i: HTTP $code $(head -c 200 "$WORK/load/$i.json" 2>/dev/null)" >&2
    fi
done >"$WORK/load.ids"
check "50 concurrent uploads accepted with 50 distinct job ids" test "$(sort -u "$WORK/load.ids" | grep -c .)" = 50
echo "     (50 uploads accepted in $(python3 -c "print(round($LOAD_T1-$LOAD_T0,2))") s)"
kill -9 "$SERVER"
wait "$SERVER" 2>/dev/null || true
start_server
ok "server killed with -9 mid-queue and restarted"
all_finished() { while read -r id; do job_finished "$id" || return 1; done <"$WORK/load.ids"; }
check "every one of the 50 jobs finished after the restart" wait_for 900 all_finished
DONE=0
while read -r id; do [ "$(job_state "$id")" = done ] && DONE=$((DONE + 1)); done <"$WORK/load.ids"
check "all 50 load jobs done (got $DONE)" test "$DONE" = 50
check "metrics exported" bash -c "curl -fsS -H 'Authorization: Bearer $TOKEN' $BASE/metrics | grep -q '^ctt_jobs{state=\"done\"}'"

# ---------------------------------------------------------------- audit log
AUDIT="$WORK/data/audit.jsonl"
check "audit: uploads by token:ci" grep -q '"actor":"token:ci","action":"submit"' "$AUDIT"
check "audit: DICOM peer STORESCU" grep -q '"actor":"ae:STORESCU@127.0.0.1","action":"dicom_store"' "$AUDIT"
check "audit: report reads" grep -q '"action":"read_report"' "$AUDIT"
check "audit: forwarding" grep -q '"action":"forward"' "$AUDIT"
check "audit: rejected caller" grep -q '"action":"auth_failed"' "$AUDIT"

# ---------------------------------------------------------------- DICOMweb: a job naming a study on Orthanc, results back by STOW-RS
kill "$SERVER"
wait "$SERVER" 2>/dev/null || true
read -r HTTP2 <<<"$(python3 "$HELP" free-ports 1)"
OH_WEB="http://127.0.0.1:$OH_HTTP/dicom-web"
"$CTT_BIN" serve --listen "127.0.0.1:$HTTP2" --token-file "$WORK/tokens" --data-dir "$WORK/data-web" \
    --forward-to "$OH_WEB" --dicomweb-source "$OH_WEB" --workers 1 "${MODEL_ARGS[@]}" >>"$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
wait_for 60 curl -fsS "http://127.0.0.1:$HTTP2/healthz"
BASE="http://127.0.0.1:$HTTP2"
LUNG1_STUDY=$("$CTT_BIN" inspect --json "$LUNG1" | json 'd["studies"][0]["study_instance_uid"]')
dw_job() { curl -s -o "$WORK/dw.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$1" "$BASE/v1/studies"; }
oh_instances() { curl -fsS "http://127.0.0.1:$OH_HTTP/statistics" | json 'd["CountInstances"]'; }
BEFORE=$(oh_instances)
check "DICOMweb job accepted (202)" test "$(dw_job "{\"dicomweb\":\"$OH_WEB\",\"study\":\"$LUNG1_STUDY\"}")" = 202
JOB=$(json 'd["job_id"]' <"$WORK/dw.json")
check "DICOMweb job (QIDO-RS + WADO-RS from Orthanc) done" wait_done "$JOB"
api "$BASE/v1/jobs/$JOB/report" >"$WORK/dw-report.json"
check "the DICOMweb job's report equals the upload's (timings aside)" python3 -c '
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for r in (a, b): r.pop("timings_ms", None)
sys.exit(0 if a == b else 1)' "$WORK/upload-report.json" "$WORK/dw-report.json"
wait_for 120 forwarded || true
FWD=$(fwd)
check "results forwarded by STOW-RS ($FWD)" python3 -c '
import re, sys
m = re.fullmatch(r"sent (\d+)/(\d+) to (.*)", sys.argv[1])
sys.exit(0 if m and m[1] == m[2] and int(m[1]) > 0 and m[3] == sys.argv[2] else 1)' "$FWD" "$OH_WEB"
SENT=$(echo "$FWD" | sed -E 's#^sent ([0-9]+)/.*#\1#')
check "Orthanc holds $SENT more instances after the STOW-RS" test "$(( $(oh_instances) - BEFORE ))" = "$SENT"
check "DICOMweb job: a server not in dicomweb_sources → 403" test "$(dw_job "{\"dicomweb\":\"http://127.0.0.1:9/dicom-web\",\"study\":\"$LUNG1_STUDY\"}")" = 403
check "DICOMweb job: an unknown study → 404" test "$(dw_job "{\"dicomweb\":\"$OH_WEB\",\"study\":\"1.2.3.4.5\"}")" = 404
check "DICOMweb job: a series that is not CT → 422" test "$(dw_job "{\"dicomweb\":\"$OH_WEB\",\"study\":\"$LUNG1_STUDY\",\"series\":\"$(curl -fsS "$OH_WEB/studies/$LUNG1_STUDY/series?Modality=SR" | json 'd[0]["0020000E"]["Value"][0]')\"}")" = 422
check "DICOMweb job: not a UID → 400" test "$(dw_job "{\"dicomweb\":\"$OH_WEB\",\"study\":\"x; rm\"}")" = 400

# ---------------------------------------------------------------- batch: kill -9 and resume
mkdir -p "$WORK/batch-root"
for i in 1 2 3 4 5 6; do cp -al "$LUNG1" "$WORK/batch-root/study$i"; done
OUT="$WORK/batch-out"
"$CTT_BIN" batch "$WORK/batch-root" --out "$OUT" --jobs 2 --quiet "${MODEL_ARGS[@]}" >"$WORK/batch1.log" 2>&1 &
BATCH=$!
PIDS+=("$BATCH")
# Kill as soon as the first result is published (polled every 0.1 s): five
# series (≈ 4 s on 2 cores) are still to go, so the kill lands mid-run.
one_done() { [ "$(find "$OUT/series" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)" -ge 1 ]; }
end=$(( $(date +%s) + 600 ))
until one_done; do [ "$(date +%s)" -lt "$end" ] || break; sleep 0.1; done
kill -9 "$BATCH"
wait "$BATCH" 2>/dev/null || true
python3 - "$OUT/jobs.sqlite" "$WORK/snapshot.sqlite" <<'PY'
import sqlite3, sys
src = sqlite3.connect(sys.argv[1]); dst = sqlite3.connect(sys.argv[2]); src.backup(dst)
PY
"$CTT_BIN" batch "$WORK/batch-root" --out "$OUT" --jobs 2 --quiet "${MODEL_ARGS[@]}" >"$WORK/batch2.log" 2>&1
ok "batch resumed after kill -9 and exited 0"
check "every series done exactly once, none lost" python3 "$HELP" batch-check "$OUT" "$WORK/snapshot.sqlite" 6
check "worklist.csv has a header and 6 rows" test "$(grep -c . "$OUT/worklist.csv")" = 7

echo
echo "$PASS passed, $FAIL failed ($(( $(date +%s) - T0 )) s)"
[ "$FAIL" -eq 0 ]
