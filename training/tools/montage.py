"""Montage of central axial / coronal slices of dataset patches (for eyeballing renderings).

usage: montage.py DATASET_DIR OUT.png [--per-kind N]
"""
import csv, sys, zlib, struct
import numpy as np

def png(path, img):
    img = np.clip(img, 0, 255).astype(np.uint8)
    h, w = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))

def main():
    d, out = sys.argv[1], sys.argv[2]
    per = int(sys.argv[4]) if len(sys.argv) > 4 else 6
    rows = list(csv.DictReader(open(f"{d}/index.csv")))
    n = len(rows)
    p = np.memmap(f"{d}/patches.f32", dtype="<f4", mode="r").reshape(n, 32, 32, 32)
    kinds = sorted({r["kind"] for r in rows})
    tiles = []
    for k in kinds:
        idx = [int(r["idx"]) for r in rows if r["kind"] == k][:per]
        line = []
        for i in idx:
            v = np.asarray(p[i])
            # display window lung: input -1..1.29 ~ HU -1000..600
            ax = v[16]; co = v[:, 16, :]
            for s in (ax, co):
                img = np.kron((s + 1.0) / 2.286 * 255, np.ones((3, 3)))
                line.append(np.pad(img, 2, constant_values=255))
        while len(line) < 2 * per:
            line.append(np.full((100, 100), 255.0))
        tiles.append(np.concatenate(line, axis=1))
        print(k, idx, file=sys.stderr)
    png(out, np.concatenate(tiles, axis=0))

main()
