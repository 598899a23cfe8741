"""Regenerate the jpeg12.rs test fixtures (run from this directory).

Needs pydicom 3 + numpy + pylibjpeg + Pillow, and dcmtk (dcmcjpeg, dcmdjpeg).
Outputs: *.jpg codestreams and their reference decodes as raw little-endian
u16 (*.u16le) or u8 (*.u8) arrays, row-major.
"""
import io, os, subprocess, tempfile
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from PIL import Image

CONF = os.path.join(os.path.dirname(__file__), "../../../../tests/data/conformance")
tmp = tempfile.mkdtemp()


def codestream(path):
    ds = pydicom.dcmread(path)
    return next(generate_frames(ds.PixelData, number_of_frames=1))


# 1. JPGExtended.dcm (12-bit, SOF1): codestream + pydicom/pylibjpeg decode.
src = os.path.join(CONF, "JPGExtended.dcm")
open("jpgextended.jpg", "wb").write(codestream(src))
pydicom.dcmread(src).pixel_array.astype("<u2").tofile("jpgextended.pydicom.u16le")

# 2. A synthetic 12-bit CT-like phantom, 130x97, encoded by dcmtk (IJG 12-bit)
#    at quality 90 (8-bit DQT) and 3 (16-bit DQT); reference = dcmdjpeg (IJG).
rng = np.random.default_rng(12)
H, W = 97, 130
y, x = np.mgrid[0:H, 0:W]
img = np.zeros((H, W))
body = ((x - 65) / 60) ** 2 + ((y - 48) / 44) ** 2 < 1
img[body] = 1040
for cx in (42, 88):
    img[((x - cx) / 17) ** 2 + ((y - 46) / 28) ** 2 < 1] = 170
img[((x - 65) / 6) ** 2 + ((y - 80) / 6) ** 2 < 1] = 2600
img[(x - 88) ** 2 + (y - 40) ** 2 < 9] = 1000
img += rng.normal(0, 25, img.shape) * body
img[5:12, 5:40] = 4095
img[85:95, 100:128] = np.linspace(0, 4095, 28)[None, :]
img = np.clip(np.round(img), 0, 4095).astype(np.uint16)
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset()
ds.file_meta = meta
ds.SOPClassUID = meta.MediaStorageSOPClassUID
ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
ds.Modality = "CT"
ds.PatientName = "Phantom^Twelve"
ds.PatientID = "P12"
ds.StudyInstanceUID = generate_uid()
ds.SeriesInstanceUID = generate_uid()
ds.Rows, ds.Columns = H, W
ds.SamplesPerPixel = 1
ds.PhotometricInterpretation = "MONOCHROME2"
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
ds.PixelData = img.tobytes()
src12 = os.path.join(tmp, "src12.dcm")
ds.save_as(src12, enforce_file_format=True)
for q in (90, 3):
    enc, dec = os.path.join(tmp, f"e{q}.dcm"), os.path.join(tmp, f"d{q}.dcm")
    subprocess.run(["dcmcjpeg", "+ee", "+q", str(q), src12, enc], check=True)
    subprocess.run(["dcmdjpeg", enc, dec], check=True)
    open(f"ct12_q{q}.jpg", "wb").write(codestream(enc))
    pydicom.dcmread(dec).pixel_array.astype("<u2").tofile(f"ct12_q{q}.ijg.u16le")

# 3. 8-bit grayscale 61x37 via Pillow (libjpeg-turbo); reference = Pillow decode.
rng = np.random.default_rng(8)
H, W = 37, 61
y, x = np.mgrid[0:H, 0:W]
g = 128 + 90 * np.sin(x / 5.0) * np.cos(y / 7.0) + rng.normal(0, 12, (H, W))
g[3:9, 40:58] = 255
g[28:34, 2:20] = 0
g[((x - 30) / 9) ** 2 + ((y - 18) / 9) ** 2 < 1] = 230
im = Image.fromarray(np.clip(np.round(g), 0, 255).astype(np.uint8), "L")
for name, kw in [
    ("gray8_q75", dict(quality=75)),  # SOF0
    ("gray8_rst", dict(quality=60, restart_marker_blocks=5)),  # DRI + RST0..7
    ("gray8_q16", dict(qtables=[[min(16 + i * 9, 600) for i in range(64)]])),  # SOF1, 16-bit DQT
]:
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    open(f"{name}.jpg", "wb").write(b.getvalue())
    np.array(Image.open(io.BytesIO(b.getvalue()))).tofile(f"{name}.ref.u8")
