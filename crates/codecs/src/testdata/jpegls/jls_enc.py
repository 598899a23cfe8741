"""Straightforward JPEG-LS (T.87) encoder used only to generate test streams
with restart intervals and custom preset parameters (CharLS's Python binding
cannot produce those). Validated against CharLS: byte-identical output for
default parameters, and CharLS decodes the variants to the same samples."""
import numpy as np

J = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15]


def ceil_log2(n):
    b = 0
    while (1 << b) < n:
        b += 1
    return b


def default_t(maxval, near):
    def clamp(i, j):
        return j if (i > maxval or i < j) else i
    if maxval >= 128:
        f = (min(maxval, 4095) + 128) // 256
        t1 = clamp(f * 1 + 2 + 3 * near, near + 1)
        t2 = clamp(f * 4 + 3 + 5 * near, t1)
        t3 = clamp(f * 17 + 4 + 7 * near, t2)
    else:
        f = 256 // (maxval + 1)
        t1 = clamp(max(2, 3 // f + 3 * near), near + 1)
        t2 = clamp(max(3, 7 // f + 5 * near), t1)
        t3 = clamp(max(4, 21 // f + 7 * near), t2)
    return t1, t2, t3


class BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0  # bits in acc
        self.cap = 8

    def bit(self, b):
        self.acc = (self.acc << 1) | b
        self.n += 1
        if self.n == self.cap:
            self.out.append(self.acc)
            self.cap = 7 if self.acc == 0xFF else 8
            self.acc = 0
            self.n = 0

    def bits(self, v, n):
        for i in range(n - 1, -1, -1):
            self.bit((v >> i) & 1)

    def flush(self):
        while self.n != 0:
            self.bit(0)
        if self.out and self.out[-1] == 0xFF:
            self.out.append(0)
        self.cap = 8
        return bytes(self.out)


def encode(img, P, near=0, maxval=None, t=(0, 0, 0), reset=0, ri=0, lse=False,
           lse_first=False, fill=False, app=False, reconstruct=None):
    img = np.asarray(img, dtype=np.int64)
    H, W = img.shape
    MAXVAL = maxval or (1 << P) - 1
    dt = default_t(MAXVAL, near)
    T1, T2, T3 = [t[i] or dt[i] for i in range(3)]
    RESET = reset or 64
    RANGE = (MAXVAL + 2 * near) // (2 * near + 1) + 1
    qbpp = ceil_log2(RANGE)
    bpp = max(2, ceil_log2(MAXVAL + 1))
    LIMIT = 2 * (bpp + max(8, bpp))
    rec = np.zeros((H, W), dtype=np.int64)

    def quant(d):
        if d <= -T3: return -4
        if d <= -T2: return -3
        if d <= -T1: return -2
        if d < -near: return -1
        if d <= near: return 0
        if d < T1: return 1
        if d < T2: return 2
        if d < T3: return 3
        return 4

    def qerr(e):
        if near == 0:
            return e
        if e > 0:
            return (e + near) // (2 * near + 1)
        return -((near - e) // (2 * near + 1))

    def modrange(e):
        if e < 0: e += RANGE
        if e >= (RANGE + 1) // 2: e -= RANGE
        return e

    def clampv(v):
        return max(0, min(MAXVAL, v))

    def golomb(bw, m, k, glimit):
        high = m >> k
        if high < glimit - qbpp - 1:
            bw.bits(0, high); bw.bit(1); bw.bits(m & ((1 << k) - 1), k)
        else:
            bw.bits(0, glimit - qbpp - 1); bw.bit(1); bw.bits(m - 1, qbpp)

    segs = []
    line = 0
    while line < H:
        nlines = H - line if ri == 0 else min(ri, H - line)
        A0 = max(2, (RANGE + 32) // 64)
        A = [A0] * 367; B = [0] * 365; C = [0] * 365; N = [1] * 367; Nn = [0, 0]
        RI = 0
        prev = [0] * (W + 2)
        cur = [0] * (W + 2)
        bw = BitWriter()
        for y in range(line, line + nlines):
            prev[W + 1] = prev[W]
            cur[0] = prev[1]
            x = 1
            while x <= W:
                ra, rb, rc, rd = cur[x - 1], prev[x], prev[x - 1], prev[x + 1]
                q1, q2, q3 = quant(rd - rb), quant(rb - rc), quant(rc - ra)
                ix = int(img[y, x - 1])
                if q1 == 0 and q2 == 0 and q3 == 0:
                    runval = ra
                    cnt = 0
                    while x <= W and abs(int(img[y, x - 1]) - runval) <= near:
                        cur[x] = runval; cnt += 1; x += 1
                    while cnt >= (1 << J[RI]):
                        bw.bit(1); cnt -= 1 << J[RI]
                        if RI < 31: RI += 1
                    if x > W:
                        if cnt > 0: bw.bit(1)
                        continue
                    bw.bit(0); bw.bits(cnt, J[RI])
                    # run interruption
                    ix = int(img[y, x - 1]); rb = prev[x]
                    ritype = 1 if abs(runval - rb) <= near else 0
                    px = runval if ritype else rb
                    e = ix - px
                    sign = 1
                    if ritype == 0 and runval > rb:
                        e = -e; sign = -1
                    e = qerr(e)
                    rx = px + sign * e * (2 * near + 1)
                    cur[x] = clampv(rx)
                    e = modrange(e)
                    qi = 365 + ritype
                    temp = A[qi] + (N[qi] >> 1) * ritype
                    k = 0
                    while (N[qi] << k) < temp: k += 1
                    nn = Nn[ritype]
                    if (k == 0 and e > 0 and 2 * nn < N[qi]) or (e < 0 and 2 * nn >= N[qi]) or (e < 0 and k != 0):
                        mp = 1
                    else:
                        mp = 0
                    em = 2 * abs(e) - ritype - mp
                    golomb(bw, em, k, LIMIT - J[RI] - 1)
                    if e < 0: Nn[ritype] += 1
                    A[qi] += (em + 1 - ritype) >> 1
                    if N[qi] == RESET:
                        A[qi] >>= 1; N[qi] >>= 1; Nn[ritype] >>= 1
                    N[qi] += 1
                    if RI > 0: RI -= 1
                    x += 1
                    continue
                q = 81 * q1 + 9 * q2 + q3
                sign = 1
                if q < 0:
                    q = -q; sign = -1
                mx, mn = max(ra, rb), min(ra, rb)
                if rc >= mx: px = mn
                elif rc <= mn: px = mx
                else: px = ra + rb - rc
                px = clampv(px + sign * C[q])
                e = ix - px
                if sign < 0: e = -e
                e = qerr(e)
                cur[x] = clampv(px + sign * e * (2 * near + 1))
                e = modrange(e)
                k = 0
                while (N[q] << k) < A[q]: k += 1
                if near == 0 and k == 0 and 2 * B[q] <= -N[q]:
                    m = 2 * e + 1 if e >= 0 else -2 * (e + 1)
                else:
                    m = 2 * e if e >= 0 else -2 * e - 1
                golomb(bw, m, k, LIMIT)
                B[q] += e * (2 * near + 1); A[q] += abs(e)
                if N[q] == RESET:
                    A[q] >>= 1; B[q] >>= 1; N[q] >>= 1
                N[q] += 1
                if B[q] <= -N[q]:
                    B[q] += N[q]
                    if C[q] > -128: C[q] -= 1
                    if B[q] <= -N[q]: B[q] = -N[q] + 1
                elif B[q] > 0:
                    B[q] -= N[q]
                    if C[q] < 127: C[q] += 1
                    if B[q] > 0: B[q] = 0
                x += 1
            rec[y] = cur[1:W + 1]
            prev, cur = cur, prev
        segs.append(bw.flush())
        line += nlines

    def seg(m, body):
        return bytes([0xFF, m]) + (len(body) + 2).to_bytes(2, 'big') + body
    ff = b'\xff\xff' if fill else b'\xff'
    out = bytearray(b'\xff\xd8')
    if app:
        out += seg(0xE0, b'JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00')
        out += seg(0xFE, b'made by jls_enc.py')
    sof = seg(0xF7, bytes([P]) + H.to_bytes(2, 'big') + W.to_bytes(2, 'big') + bytes([1, 1, 0x11, 0]))
    lseb = seg(0xF8, bytes([1]) + b''.join(int(v).to_bytes(2, 'big') for v in (maxval or 0, t[0], t[1], t[2], reset)))
    if lse and lse_first:
        out += lseb
    out += sof
    if lse and not lse_first:
        out += lseb
    if ri:
        out += seg(0xDD, ri.to_bytes(2, 'big'))
    out += seg(0xDA, bytes([1, 1, 0, near, 0, 0]))
    for i, s in enumerate(segs):
        if i > 0:
            out += ff[:-1] + bytes([0xFF, 0xD0 + (i - 1) % 8])
        out += s
    out += ff[:-1] + b'\xff\xd9'
    return bytes(out), rec
