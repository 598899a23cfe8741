#!/usr/bin/env python3
"""Rebuild tests/data/lung2/ from the pyradiomics 3.0.1 source archive.

    curl -sO https://files.pythonhosted.org/packages/1b/35/c7f7fb7affd302fd8107dcee6b6e7aaf3708b75ad69d5f9a3dfcadb73eaa/pyradiomics-3.0.1.tar.gz
    # sha256 47c57f441d6cb7973fa3b2ea48d3948df78e3348e1c69e1e2ff19001601fc2f5
    tar xzf pyradiomics-3.0.1.tar.gz
    python tests/data/lung2/make_lung2.py pyradiomics-3.0.1/data tests/data/lung2
    # then JPEG 2000 lossless, as the series was first seen: gdcmconv --j2k (see README.md)

Writes one DICOM CT file per slice (Explicit VR Little Endian, HU+1024 in
12 bits, synthetic headers and deterministic UIDs, like sample-dicom/lung1)
and lung2.truth.json (the labelled lesion: centroid, bounding box, volume,
largest in-plane diameter).
"""
import gzip
import hashlib
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian


def read_nrrd(path):
    raw = open(path, "rb").read()
    i = raw.index(b"\n\n")
    hdr, data = raw[:i].decode().splitlines(), raw[i + 2:]
    h = {}
    for line in hdr[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        h[k.strip()] = v.strip()
    if h.get("encoding") == "gzip":
        data = gzip.decompress(data)
    dt = {"short": "<i2", "unsigned char": "u1", "uchar": "u1"}[h["type"]]
    sizes = [int(x) for x in h["sizes"].split()]
    arr = np.frombuffer(data, dtype=dt).reshape(sizes[::-1])
    dirs = [[float(x) for x in d.strip("()").split(",")] for d in h["space directions"].split()]
    origin = [float(x) for x in h["space origin"].strip("()").split(",")]
    return arr, dirs, origin


def uid(*parts):
    d = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()[:16]
    v = int.from_bytes(d, "big") & ((1 << 127) - 1)
    return f"2.25.{v}"


def main(src, out):
    img, dirs, origin = read_nrrd(os.path.join(src, "lung2_image.nrrd"))
    lab, _, _ = read_nrrd(os.path.join(src, "lung2_label.nrrd"))
    sx, sy, sz = dirs[0][0], dirs[1][1], dirs[2][2]
    nz, ny, nx = img.shape
    study, series, frame = uid("lung2", "study"), uid("lung2", "series"), uid("lung2", "frame")
    os.makedirs(os.path.join(out, "dicom"), exist_ok=True)
    for k in range(nz):
        z = origin[2] + k * sz
        sop = uid("lung2", "slice", k)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop
        ds.StudyDate, ds.StudyTime = "20200102", "090000"
        ds.AccessionNumber = "ACC-LUNG2"
        ds.Modality = "CT"
        ds.Manufacturer = "ANONYMIZED"
        ds.SeriesDescription = "CHEST 5mm"
        ds.PatientName = "Anonymous^Lung2"
        ds.PatientID = "ANON-LUNG2"
        ds.PatientSex = "O"
        ds.BodyPartExamined = "CHEST"
        ds.SliceThickness = f"{sz:.1f}"
        ds.KVP = "120.0"
        ds.ConvolutionKernel = "STANDARD"
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.StudyID, ds.SeriesNumber = "1", "2"
        # Instance numbers run head to feet, as scanners usually number an axial series.
        ds.InstanceNumber = str(nz - k)
        ds.ImagePositionPatient = [f"{origin[0]:.4f}", f"{origin[1]:.4f}", f"{z:.4f}"]
        ds.ImageOrientationPatient = ["1.0", "0.0", "0.0", "0.0", "1.0", "0.0"]
        ds.FrameOfReferenceUID = frame
        ds.SliceLocation = f"{z:.4f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = ny, nx
        ds.PixelSpacing = [f"{sy:.8f}", f"{sx:.8f}"]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = "-600.0", "1500.0"
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024.0", "1.0", "HU"
        stored = (img[k].astype(np.int32) + 1024).clip(0, 4095).astype("<u2")
        ds.PixelData = stored.tobytes()
        ds.save_as(os.path.join(out, "dicom", sop + ".dcm"), enforce_file_format=True)
    # Truth: the labelled lesion.
    zz, yy, xx = np.nonzero(lab)
    c = [float(xx.mean()), float(yy.mean()), float(zz.mean())]
    lps = [origin[0] + c[0] * sx, origin[1] + c[1] * sy, origin[2] + c[2] * sz]
    best = 0.0
    for k in range(zz.min(), zz.max() + 1):
        py, px = np.nonzero(lab[k])
        if len(px) < 2:
            continue
        pts = np.stack([px * sx, py * sy], 1)
        # edge pixels suffice for the largest distance
        d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).max() + (sx + sy) / 2
        best = max(best, float(d))
    truth = {
        "case": "lung2",
        "source": "pyradiomics 3.0.1 sdist data/ (BSD-3); pixels real, DICOM headers synthetic",
        "shape_zyx": [nz, ny, nx],
        "spacing_xyz_mm": [sx, sy, sz],
        "origin_lps_mm": origin,
        "lesions": [{
            "description": "mass, left lower lobe, broad-based on the posterior chest wall beside the spine",
            "centroid_voxel_xyz": c,
            "centroid_lps_mm": lps,
            "bbox_voxel_min_xyz": [int(xx.min()), int(yy.min()), int(zz.min())],
            "bbox_voxel_max_xyz": [int(xx.max()), int(yy.max()), int(zz.max())],
            "voxels": int(len(zz)),
            "volume_mm3": float(len(zz) * sx * sy * sz),
            "max_inplane_diameter_mm": best,
        }],
    }
    with open(os.path.join(out, "lung2.truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
