"""Regenerates the JPEG-LS fixtures of crates/codecs/src/jpegls.rs.

Run from the repository root with the project venv (pydicom 3, numpy,
pyjpegls = CharLS 2.4) and dcmtk (dcmcjpls/dcmdjpls) on PATH:

    /opt/ctt-venv/bin/python crates/codecs/src/testdata/jpegls/make_fixtures.py [OUT_DIR]

Prints the SHA-256 digests the tests expect for the near-lossless lung slices.
"""
import hashlib
import os
import subprocess
import sys
import tempfile

import jpeg_ls
import numpy as np
import pydicom
from pydicom.encaps import generate_frames

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jls_enc import encode  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
CONF = 'tests/data/conformance/'
LUNG = 'sample-dicom/lung1/2.25.472492870909262516169920939309838087.dcm'


def frames(path):
    ds = pydicom.dcmread(path)
    n = int(getattr(ds, 'NumberOfFrames', 1) or 1)
    return list(generate_frames(ds.PixelData, number_of_frames=n))


def u16(a):
    return np.asarray(a).astype('<u2').tobytes()


def write(name, data):
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)


def charls_enc(a, bits, near):
    a = np.ascontiguousarray(a)
    raw = a.astype('<u2' if bits > 8 else 'u1').tobytes()
    return bytes(jpeg_ls.encode_buffer(raw, a.shape[0], a.shape[1], 1, bits, near))


def charls_dec(b):
    return jpeg_ls.decode(np.frombuffer(b, dtype=np.uint8)).astype(np.int64)


os.makedirs(OUT, exist_ok=True)

# pydicom conformance files and their uncompressed twins.
write('mr_small_lossless.jls', frames(CONF + 'MR_small_jpeg_ls_lossless.dcm')[0])
write('mr_small.u16', pydicom.dcmread(CONF + 'MR_small.dcm').pixel_array.astype('<i2').tobytes())
for i, f in enumerate(frames(CONF + 'emri_small_jpeg_ls_lossless.dcm')):
    write(f'emri_small_f{i}.jls', f)
write('emri_small.u16', u16(pydicom.dcmread(CONF + 'emri_small.dcm').pixel_array))

# The lung slice through dcmtk: lossless, NEAR 2, NEAR 5 with RESET 32.
lung = pydicom.dcmread(LUNG).pixel_array.astype(np.int64)
write('lung_original.u16', u16(lung))
with tempfile.TemporaryDirectory() as tmp:
    for name, args in [('lung_lossless', []), ('lung_near2', ['+en', '+md', '2']),
                       ('lung_near5_reset32', ['+en', '+md', '5', '+rs', '32'])]:
        enc, dec = os.path.join(tmp, name + '.dcm'), os.path.join(tmp, name + '_dec.dcm')
        subprocess.run(['dcmcjpls', *args, LUNG, enc], check=True)
        code = frames(enc)[0]
        write(name + '.jls', code)
        if args:
            subprocess.run(['dcmdjpls', enc, dec], check=True)
            ref = pydicom.dcmread(dec).pixel_array
            assert np.array_equal(ref, charls_dec(code).reshape(ref.shape)), 'dcmtk != CharLS'
            assert np.abs(ref.astype(np.int64) - lung).max() <= int(args[2])
            print(name, 'sha256', hashlib.sha256(u16(ref)).hexdigest())

# Small CharLS-encoded images; references decoded by CharLS.
rng = np.random.default_rng(7)
flat = np.full((3, 40000), 1000)
flat[0, 5], flat[1, 20000], flat[2, 39999] = 999, 1200, 0
cases = {
    'charls_ct12_lossless': (lung[150:278, 150:278], 12, 0),
    'charls_ct12_near3': (lung[150:278, 150:278], 12, 3),
    'charls_rand8': (rng.integers(0, 256, (23, 37)), 8, 0),
    'charls_rand16': (rng.integers(0, 65536, (17, 19)), 16, 0),
    'charls_rand16_near7': (rng.integers(0, 65536, (16, 16)), 16, 7),
    'charls_rand8_near30': (rng.integers(0, 256, (20, 20)), 8, 30),
    'charls_two_bit': (rng.integers(0, 4, (20, 30)), 2, 0),
    'charls_flat_runs': (flat, 11, 0),
    'charls_spiky_near1': (rng.integers(0, 3, (40, 41)) * 50 + 2000, 12, 1),
    'charls_one_column': (rng.integers(0, 1024, (50, 1)), 10, 0),
    'charls_one_row': (np.concatenate([np.full((1, 40), 5), rng.integers(0, 64, (1, 20))], axis=1), 6, 0),
}
for name, (a, bits, near) in cases.items():
    code = charls_enc(a, bits, near)
    dec = charls_dec(code)
    assert np.abs(dec - a).max() <= near, name
    write(name + '.jls', code)
    if name != 'charls_flat_runs':  # its reference is built in the test
        write(name + '.u16', u16(dec))

# jls_enc.py streams: restart intervals, LSE presets, fill bytes, APPn/COM.
crop = lung[300:348, 200:264]
enc_cases = {
    'enc_restart5_lse_fill': dict(img=crop, P=12, ri=5, lse=True, lse_first=True,
                                  t=(5, 20, 70), reset=16, fill=True, app=True),
    'enc_restart1_near2_reset3': dict(img=crop, P=12, near=2, ri=1, lse=True, reset=3),
    'enc_restart7_rand16_near1': dict(img=rng.integers(0, 65536, (30, 25)), P=16, near=1, ri=7),
    'enc_one_pixel': dict(img=np.array([[77]]), P=8),
    'enc_restart_big': dict(img=crop[:10], P=12, ri=1000),
    'enc_maxval3000': dict(img=np.minimum(crop, 3000), P=12, maxval=3000, lse=True),
    'enc_maxval3000_near4_restart3': dict(img=np.minimum(crop, 3000), P=12, maxval=3000,
                                          near=4, lse=True, ri=3),
}
for name, kw in enc_cases.items():
    img = kw.pop('img')
    code, rec = encode(img, **kw)
    assert np.abs(rec - img).max() <= kw.get('near', 0)
    if 'maxval' not in kw:  # CharLS mishandles MAXVAL != 2^P - 1
        assert np.array_equal(charls_dec(code), rec), name
    write(name + '.jls', code)
    write(name + '.u16', u16(rec))
