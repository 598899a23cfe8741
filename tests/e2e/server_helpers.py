#!/usr/bin/env python3
"""Helpers of tests/e2e/server.sh (standard library only).

Subcommands:
  free-ports N                      print N free TCP ports on 127.0.0.1
  json EXPR                         read JSON on stdin, print eval(EXPR) with `d` bound to it
  stow-body OUT BOUNDARY FILE...    write a multipart/related (application/dicom) body
  zip OUT FILE...                   zip files (flat)
  slab DIR N OUTDIR                 link the N middle slices (by z position, via dcmdump) of DIR into OUTDIR
  batch-check OUT SNAPSHOT N        check a resumed batch: N series done exactly once, none lost
  orthanc-config PATH HTTP DICOM STORAGE SCP_AET SCP_PORT
"""
import json
import os
import socket
import sqlite3
import subprocess
import sys
import zipfile


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def stow_body(out, boundary, files):
    with open(out, "wb") as f:
        for path in files:
            f.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
            with open(path, "rb") as src:
                f.write(src.read())
            f.write(b"\r\n")
        f.write(f"--{boundary}--\r\n".encode())


def make_zip(out, files):
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for p in files:
            z.write(p, os.path.basename(p))


def slab(src, n, outdir):
    zs = []
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        out = subprocess.run(["dcmdump", "+P", "0020,0032", path],
                             capture_output=True, text=True, check=True).stdout
        value = out.split("[", 1)[1].split("]", 1)[0]
        zs.append((float(value.split("\\")[2]), path))
    zs.sort()
    start = (len(zs) - n) // 2
    os.makedirs(outdir, exist_ok=True)
    for _, path in zs[start:start + n]:
        os.link(path, os.path.join(outdir, os.path.basename(path)))


def events(db):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT job, event FROM events ORDER BY seq").fetchall()
    jobs = con.execute("SELECT id, state, dedup_key, output FROM jobs").fetchall()
    con.close()
    return rows, jobs


def batch_check(out, snapshot, n):
    n = int(n)
    before, _ = events(snapshot)
    done_before = {j for j, e in before if e in ("done", "adopted")}
    started_before = {j for j, e in before if e == "started"}
    after, jobs = events(os.path.join(out, "jobs.sqlite"))
    errors = []
    if len(jobs) != n:
        errors.append(f"{len(jobs)} jobs, expected {n}")
    for job_id, state, key, output in jobs:
        finished = [e for j, e in after if j == job_id and e in ("done", "adopted", "failed")]
        starts = [e for j, e in after if j == job_id and e == "started"]
        if state != "done" or finished not in (["done"], ["adopted"]):
            errors.append(f"{key}: state {state}, finishing events {finished}")
        if job_id in done_before and len(starts) != 1:
            errors.append(f"{key}: finished before the kill but started {len(starts)} times")
        if not output or not os.path.isfile(os.path.join(output, "report.json")):
            errors.append(f"{key}: no report at {output}")
    dirs = sorted(os.listdir(os.path.join(out, "series")))
    if len(dirs) != n:
        errors.append(f"{len(dirs)} result folders, expected {n}: {dirs}")
    with open(os.path.join(out, "worklist.json")) as f:
        rows = json.load(f)
    if len(rows) != n or len({r["job_id"] for r in rows}) != n:
        errors.append(f"worklist has {len(rows)} rows, expected {n} distinct")
    if os.path.exists(os.path.join(out, ".tmp")) and os.listdir(os.path.join(out, ".tmp")):
        errors.append("temporary results left behind")
    interrupted = len(started_before - done_before)
    print(f"batch: {len(done_before)} series finished before kill -9, {interrupted} interrupted, "
          f"{n - len(done_before)} finished after resuming")
    if not done_before or len(done_before) >= n:
        errors.append(f"the kill did not land mid-run ({len(done_before)} of {n} done before it)")
    if errors:
        print("\n".join("FAIL: " + e for e in errors))
        sys.exit(1)


def orthanc_config(path, http, dicom, storage, scp_aet, scp_port):
    cfg = {
        "Name": "ctt-e2e",
        "StorageDirectory": os.path.join(storage, "db"),
        "IndexDirectory": os.path.join(storage, "db"),
        "HttpPort": int(http),
        "DicomPort": int(dicom),
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {"ctt": [scp_aet, "127.0.0.1", int(scp_port)]},
        "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StableAge": 2,
    }
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "free-ports":
        free_ports(int(args[0]))
    elif cmd == "json":
        d = json.load(sys.stdin)
        v = eval(args[0], {"d": d, "len": len, "sorted": sorted, "set": set})
        print(v if isinstance(v, str) else json.dumps(v))
    elif cmd == "stow-body":
        stow_body(args[0], args[1], args[2:])
    elif cmd == "zip":
        make_zip(args[0], args[1:])
    elif cmd == "slab":
        slab(args[0], int(args[1]), args[2])
    elif cmd == "batch-check":
        batch_check(*args)
    elif cmd == "orthanc-config":
        orthanc_config(*args)
    else:
        sys.exit(f"unknown helper {cmd}")


if __name__ == "__main__":
    main()
