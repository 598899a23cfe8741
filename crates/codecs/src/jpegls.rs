//! Pure-Rust JPEG-LS decoder (ISO/IEC 14495-1:1999 | ITU-T T.87 (06/1998)).
//!
//! DICOM stores some CT series as JPEG-LS (transfer syntaxes
//! `1.2.840.10008.1.2.4.80`, lossless, and `1.2.840.10008.1.2.4.81`,
//! near-lossless). dicom-rs decodes JPEG-LS only through CharLS, a C++ library
//! that does not build for `wasm32-unknown-unknown` (the browser build), and the
//! only pure-Rust JPEG-LS crate on crates.io (dicom-toolkit-codec 0.5.0) fails
//! on real files ("unexpected end of bitstream", "error value out of range").
//! This module is therefore a small, hand-rolled decoder that needs nothing but
//! `std` (no threads, no file system) and compiles natively and for wasm32.
//!
//! Scope: single-component images (every greyscale DICOM frame), 2 to 16 bits
//! per sample, lossless and near-lossless coding, i.e. the full baseline
//! algorithm of T.87 Annex A, run in reverse as a decoder:
//!
//! * markers (Annex C): SOI, SOF55, SOS (NEAR, ILV), LSE preset coding
//!   parameters (ID 1: MAXVAL, T1, T2, T3, RESET; ID 4: oversize dimensions),
//!   DRI with RSTm restart markers, APPn/COM (skipped), EOI. Mapping tables
//!   (LSE ID 2/3, SOS `Tm` != 0), point transforms and multi-component frames
//!   are refused with an error. Default thresholds follow C.2.4.1.1.
//! * regular mode (A.3-A.6): local gradients and their quantisation, context
//!   sign merging, edge-detecting (MED) prediction with bias correction `C[Q]`,
//!   Golomb-Rice parameter `k` from `A[Q]`/`N[Q]`, the inverse error mapping
//!   including the `k == 0`, `2·B[Q] <= -N[Q]` special case, the `LIMIT`/`qbpp`
//!   escape code, and the context update with `RESET` halving;
//! * run mode (A.7): `RUNindex` and the `J` table, run interruption samples with
//!   the two run-interruption contexts 365/366 (`RItype`);
//! * near-lossless reconstruction with modulo-`RANGE` wrapping (A.4.4, A.4.5);
//! * the bit-stuffing rule of entropy-coded segments: after a `0xFF`
//!   byte the next byte carries only 7 bits (its high bit is a stuffed 0), and a
//!   `0xFF` followed by a byte >= `0x80` is a marker that ends the segment.
//!
//! Robustness: the decoder never panics on hostile input. All lengths are
//! checked, every loop is bounded by the image size or a small constant,
//! arithmetic is sized so it cannot overflow, the output is only allocated
//! after the `max_pixels` check (with `try_reserve`, so an allocation failure is
//! an error too), and a stream that runs out of bits is an error, not a
//! zero-filled image.

// `decode` has no caller until pixels.rs dispatches JPEG-LS to it.

use std::cmp::{max, min};

/// Run-length order table `J[0..32]` (T.87 A.7.1.1): a run segment of
/// `2^J[RUNindex]` samples is coded by one `1` bit.
const J: [u32; 32] = [
    0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13,
    14, 15,
];

/// Number of regular-mode contexts (T.87 A.3.3: 365 after sign merging).
const REGULAR_CONTEXTS: usize = 365;

/// Lower bound of the bias correction value `C[Q]` (T.87 A.6.2, `MIN_C`).
const MIN_C: i32 = -128;

/// Upper bound of the bias correction value `C[Q]` (T.87 A.6.2, `MAX_C`).
const MAX_C: i32 = 127;

/// Default `RESET` value (T.87 C.2.4.1.1).
const DEFAULT_RESET: u32 = 64;

/// Largest Golomb-Rice parameter `k` the decoder will compute. A valid stream
/// never needs more than `qbpp + 1 <= 17`; the cap only bounds the search loop
/// and the shift widths on corrupted context state.
const MAX_K: u32 = 30;

/// Largest mapped error value accepted: |error| <= 65536, the bound CharLS
/// applies too. Valid streams stay below `RANGE + 1`; the bound keeps all
/// context arithmetic far from overflow on corrupted data.
const MAX_MERR: u64 = 1 << 17;

/// Zero bits tolerated in a Golomb prefix beyond the escape length.
const MAX_EXTRA_ZEROS: u32 = 32;

/// Marker code: start of image.
const SOI: u8 = 0xD8;
/// Marker code: end of image.
const EOI: u8 = 0xD9;
/// Marker code: start of scan.
const SOS: u8 = 0xDA;
/// Marker code: define number of lines.
const DNL: u8 = 0xDC;
/// Marker code: define restart interval.
const DRI: u8 = 0xDD;
/// Marker code: JPEG-LS start of frame (SOF55).
const SOF55: u8 = 0xF7;
/// Marker code: JPEG-LS preset parameters (LSE).
const LSE: u8 = 0xF8;
/// Marker code: first restart marker (RST0; RST0..=RST7 are 0xD0..=0xD7).
const RST0: u8 = 0xD0;
/// Marker code: last restart marker (RST7).
const RST7: u8 = 0xD7;

/// A decoded single-component JPEG-LS image.
#[derive(Debug, Clone, PartialEq)]
pub struct JlsImage {
    /// Number of samples per line (X).
    pub width: u32,
    /// Number of lines (Y).
    pub height: u32,
    /// Bits per sample from the SOF55 marker (2..=16).
    pub precision: u8,
    /// Samples, row-major, width * height of them.
    pub samples: Vec<u16>,
}

/// Decode a single-component JPEG-LS codestream (lossless or near-lossless).
/// Refuses images larger than `max_pixels` before allocating.
/// Never panics on any input; every failure is an Err with a short reason.
pub fn decode(data: &[u8], max_pixels: u64) -> Result<JlsImage, crate::CodecError> {
    decode_codestream(data, max_pixels).map_err(crate::CodecError::JpegLs)
}

fn decode_codestream(data: &[u8], max_pixels: u64) -> Result<JlsImage, String> {
    if data.get(..2) != Some(&[0xFF, SOI][..]) {
        return Err("not a JPEG-LS codestream (missing SOI marker)".into());
    }
    let mut pos = 2usize;
    let mut frame: Option<Frame> = None;
    let mut preset = Preset::default();
    let mut oversize: Option<(u32, u32)> = None;
    let mut restart_interval = 0u32;
    // Every iteration consumes at least two bytes, so this terminates.
    loop {
        let (marker, after) = next_marker(data, pos)?;
        pos = after;
        match marker {
            SOF55 => {
                let (body, next) = segment(data, pos, "SOF55")?;
                pos = next;
                if frame.is_some() {
                    return Err("more than one SOF55 marker".into());
                }
                frame = Some(Frame::parse(body)?);
            }
            LSE => {
                let (body, next) = segment(data, pos, "LSE")?;
                pos = next;
                match body.first().copied() {
                    Some(1) => preset = Preset::parse(body)?,
                    Some(2) | Some(3) => {
                        return Err("JPEG-LS mapping tables (LSE ID 2/3) are not supported".into());
                    }
                    Some(4) => oversize = Some(parse_oversize(body)?),
                    Some(id) => return Err(format!("unsupported LSE marker segment ID {id}")),
                    None => return Err("empty LSE marker segment".into()),
                }
            }
            DRI => {
                let (body, next) = segment(data, pos, "DRI")?;
                pos = next;
                if body.len() < 2 || body.len() > 4 {
                    return Err("invalid DRI marker segment length".into());
                }
                restart_interval = be_uint(body);
            }
            SOS => {
                let (body, next) = segment(data, pos, "SOS")?;
                let frame = frame.ok_or("SOS marker before SOF55")?;
                let scan = Scan::parse(body)?;
                let (width, height) = frame.dimensions(oversize)?;
                let pixels = u64::from(width) * u64::from(height);
                if pixels > max_pixels {
                    return Err(format!(
                        "image {width}x{height} exceeds the limit of {max_pixels} pixels"
                    ));
                }
                let coding = Coding::new(frame.precision, scan.near, &preset)?;
                let samples = decode_scan(data, next, width, height, restart_interval, coding)
                    .map_err(String::from)?;
                return Ok(JlsImage {
                    width,
                    height,
                    precision: frame.precision,
                    samples,
                });
            }
            EOI => return Err("no scan before the EOI marker".into()),
            DNL => {
                return Err("DNL marker (height defined after the scan) is not supported".into());
            }
            0xC0..=0xCF => {
                return Err(format!(
                    "not a JPEG-LS codestream (marker 0xFF{marker:02X} belongs to ISO 10918-1 JPEG)"
                ));
            }
            0xF9 => return Err("JPEG-LS part 2 extensions (SOF57) are not supported".into()),
            SOI | RST0..=RST7 | 0x01 => {
                return Err(format!(
                    "unexpected marker 0xFF{marker:02X} before the scan"
                ));
            }
            // APPn, COM, JPGn and any other segment with a length: skip it.
            _ => {
                let (_, next) = segment(data, pos, &format!("0xFF{marker:02X}"))?;
                pos = next;
            }
        }
    }
}

/// Reads a marker at `pos`: a `0xFF`, any number of `0xFF` fill bytes (T.81
/// B.1.1.2) and the marker code. Returns the code and the position after it.
fn next_marker(data: &[u8], mut pos: usize) -> Result<(u8, usize), String> {
    if data.get(pos) != Some(&0xFF) {
        return Err(match data.get(pos) {
            None => "unexpected end of data (marker expected)".to_string(),
            Some(b) => format!("expected a marker at offset {pos}, found byte 0x{b:02X}"),
        });
    }
    while data.get(pos) == Some(&0xFF) {
        pos += 1;
    }
    match data.get(pos) {
        None => Err("unexpected end of data inside a marker".into()),
        Some(0) => Err(format!("invalid marker 0xFF00 at offset {pos}")),
        Some(&code) => Ok((code, pos + 1)),
    }
}

/// Returns the body of the marker segment whose length field starts at `pos`
/// and the position just past the segment.
fn segment<'a>(data: &'a [u8], pos: usize, name: &str) -> Result<(&'a [u8], usize), String> {
    let len = data
        .get(pos..pos.saturating_add(2))
        .map(be_uint)
        .ok_or_else(|| format!("truncated {name} marker segment"))? as usize;
    if len < 2 {
        return Err(format!("invalid {name} marker segment length {len}"));
    }
    let end = pos.saturating_add(len);
    let body = data
        .get(pos + 2..end)
        .ok_or_else(|| format!("truncated {name} marker segment"))?;
    Ok((body, end))
}

/// Big-endian unsigned integer of up to four bytes.
fn be_uint(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
}

/// Parses an LSE ID 4 segment (T.87 C.2.4.1.4, oversize image dimensions):
/// returns `(height, width)`.
fn parse_oversize(body: &[u8]) -> Result<(u32, u32), String> {
    let wxy = usize::from(*body.get(1).ok_or("truncated LSE oversize segment")?);
    if !(2..=4).contains(&wxy) {
        return Err(format!("invalid LSE oversize field width {wxy}"));
    }
    let height = body
        .get(2..2 + wxy)
        .ok_or("truncated LSE oversize segment")?;
    let width = body
        .get(2 + wxy..2 + 2 * wxy)
        .ok_or("truncated LSE oversize segment")?;
    Ok((be_uint(height), be_uint(width)))
}

/// Frame header fields of the SOF55 marker segment (T.87 C.2.2).
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// Sample precision `P` in bits (2..=16).
    precision: u8,
    /// Number of lines `Y` (0: defined elsewhere).
    height: u32,
    /// Samples per line `X` (0: defined by an LSE ID 4 segment).
    width: u32,
}

impl Frame {
    /// Parses and validates the SOF55 segment body.
    fn parse(body: &[u8]) -> Result<Frame, String> {
        let header = body.get(..6).ok_or("truncated SOF55 marker segment")?;
        let precision = header[0];
        let height = be_uint(&header[1..3]);
        let width = be_uint(&header[3..5]);
        let components = header[5];
        if !(2..=16).contains(&precision) {
            return Err(format!("invalid JPEG-LS sample precision {precision}"));
        }
        if components != 1 {
            return Err(format!(
                "only single-component JPEG-LS images are supported (frame has {components})"
            ));
        }
        if body.len() < 9 {
            return Err("truncated SOF55 marker segment".into());
        }
        Ok(Frame {
            precision,
            height,
            width,
        })
    }

    /// Resolves the image size, using the LSE ID 4 values where the frame
    /// header carries 0.
    fn dimensions(&self, oversize: Option<(u32, u32)>) -> Result<(u32, u32), String> {
        let (o_height, o_width) = oversize.unwrap_or((0, 0));
        let width = if self.width == 0 { o_width } else { self.width };
        let height = if self.height == 0 {
            o_height
        } else {
            self.height
        };
        if width == 0 || height == 0 {
            return Err(format!("invalid image size {width}x{height}"));
        }
        Ok((width, height))
    }
}

/// Scan header fields of the SOS marker segment (T.87 C.2.3).
#[derive(Debug, Clone, Copy)]
struct Scan {
    /// Near-lossless error bound `NEAR` (0: lossless).
    near: u32,
}

impl Scan {
    /// Parses and validates the SOS segment body for a single-component scan.
    fn parse(body: &[u8]) -> Result<Scan, String> {
        let count = *body.first().ok_or("truncated SOS marker segment")?;
        if count != 1 {
            return Err(format!(
                "only single-component JPEG-LS scans are supported (scan has {count})"
            ));
        }
        // Ns, Cs1, Tm1, NEAR, ILV, Ah/Al.
        let fields = body.get(..6).ok_or("truncated SOS marker segment")?;
        if fields[2] != 0 {
            return Err("JPEG-LS mapping tables (SOS Tm != 0) are not supported".into());
        }
        // ILV is irrelevant with one component: every interleave mode codes
        // the same sample sequence, so any value 0..=2 is accepted.
        if fields[4] > 2 {
            return Err(format!("invalid JPEG-LS interleave mode {}", fields[4]));
        }
        if fields[5] & 0x0F != 0 {
            return Err("JPEG-LS point transform (Al != 0) is not supported".into());
        }
        Ok(Scan {
            near: u32::from(fields[3]),
        })
    }
}

/// Preset coding parameters from an LSE ID 1 segment (T.87 C.2.4.1.1); zero
/// means "use the default".
#[derive(Debug, Clone, Copy, Default)]
struct Preset {
    /// Maximum sample value `MAXVAL`.
    maxval: u32,
    /// Gradient quantisation threshold `T1`.
    t1: u32,
    /// Gradient quantisation threshold `T2`.
    t2: u32,
    /// Gradient quantisation threshold `T3`.
    t3: u32,
    /// Context counter reset threshold `RESET`.
    reset: u32,
}

impl Preset {
    /// Parses an LSE ID 1 segment body.
    fn parse(body: &[u8]) -> Result<Preset, String> {
        let f = body.get(1..11).ok_or("truncated LSE preset parameters")?;
        Ok(Preset {
            maxval: be_uint(&f[0..2]),
            t1: be_uint(&f[2..4]),
            t2: be_uint(&f[4..6]),
            t3: be_uint(&f[6..8]),
            reset: be_uint(&f[8..10]),
        })
    }
}

/// Default gradient thresholds `(T1, T2, T3)` for `MAXVAL` and `NEAR`
/// (T.87 C.2.4.1.1.1).
fn default_thresholds(maxval: u32, near: u32) -> (u32, u32, u32) {
    // CLAMP(i, j, MAXVAL) from C.2.4.1.1.1.
    let clamp = |i: u32, j: u32| if i > maxval || i < j { j } else { i };
    // BASIC_T1..3 = 3, 7, 21, so FACTOR·(BASIC_T1 - 2) = FACTOR, etc.
    if maxval >= 128 {
        let factor = (min(maxval, 4095) + 128) / 256;
        let t1 = clamp(factor + 2 + 3 * near, near + 1);
        let t2 = clamp(factor * 4 + 3 + 5 * near, t1);
        let t3 = clamp(factor * 17 + 4 + 7 * near, t2);
        (t1, t2, t3)
    } else {
        let factor = 256 / (maxval + 1);
        let t1 = clamp(max(2, 3 / factor + 3 * near), near + 1);
        let t2 = clamp(max(3, 7 / factor + 5 * near), t1);
        let t3 = clamp(max(4, 21 / factor + 7 * near), t2);
        (t1, t2, t3)
    }
}

/// `ceil(log2(n))`: the smallest `b` with `2^b >= n`.
fn ceil_log2(n: u32) -> u32 {
    let mut bits = 0;
    while bits < 32 && (1u64 << bits) < u64::from(n) {
        bits += 1;
    }
    bits
}

/// Coding parameters of a scan, resolved and validated (T.87 A.2.1, C.2.4.1).
#[derive(Debug, Clone, Copy)]
struct Coding {
    /// `MAXVAL`: largest sample value (1..=65535).
    maxval: i32,
    /// `NEAR`: near-lossless error bound (0 = lossless).
    near: i32,
    /// Gradient quantisation threshold `T1`.
    t1: i32,
    /// Gradient quantisation threshold `T2`.
    t2: i32,
    /// Gradient quantisation threshold `T3`.
    t3: i32,
    /// `RESET`: context counter halving threshold (>= 3).
    reset: i32,
    /// `RANGE`: number of quantised prediction-error values.
    range: i32,
    /// `qbpp`: bits of an escaped mapped error value.
    qbpp: u32,
    /// `LIMIT`: maximum Golomb code length in regular mode.
    limit: u32,
}

impl Coding {
    /// Resolves defaults and checks the parameter ranges of T.87 C.2.4.1.1
    /// (the same checks CharLS applies).
    fn new(precision: u8, near: u32, preset: &Preset) -> Result<Coding, String> {
        let max_component = (1u32 << precision) - 1;
        let maxval = if preset.maxval == 0 {
            max_component
        } else {
            preset.maxval
        };
        if maxval > max_component {
            return Err(format!(
                "MAXVAL {maxval} exceeds the {precision}-bit sample precision"
            ));
        }
        if near > min(255, maxval / 2) {
            return Err(format!("invalid NEAR {near} for MAXVAL {maxval}"));
        }
        let (d1, d2, d3) = default_thresholds(maxval, near);
        let pick = |given: u32, default: u32, lo: u32, name: &str| {
            if given == 0 {
                Ok(default)
            } else if given < lo || given > maxval {
                Err(format!("invalid JPEG-LS threshold {name} = {given}"))
            } else {
                Ok(given)
            }
        };
        let t1 = pick(preset.t1, d1, near + 1, "T1")?;
        let t2 = pick(preset.t2, d2, t1, "T2")?;
        let t3 = pick(preset.t3, d3, t2, "T3")?;
        let reset = match preset.reset {
            0 => DEFAULT_RESET,
            r if r < 3 || r > max(255, maxval) => {
                return Err(format!("invalid JPEG-LS RESET {r}"));
            }
            r => r,
        };
        let range = (maxval + 2 * near) / (2 * near + 1) + 1;
        let qbpp = ceil_log2(range);
        let bpp = max(2, ceil_log2(maxval + 1));
        let limit = 2 * (bpp + max(8, bpp));
        // All values below are at most 65535 + 2 * 255 + 1, so the casts to
        // i32 are lossless.
        Ok(Coding {
            maxval: maxval as i32,
            near: near as i32,
            t1: t1 as i32,
            t2: t2 as i32,
            t3: t3 as i32,
            reset: reset as i32,
            range: range as i32,
            qbpp,
            limit,
        })
    }

    /// Decodes a mapped error value with Golomb-Rice parameter `k` and code
    /// length limit `glimit` (T.87 A.5.3, including the `LIMIT`/`qbpp` escape).
    #[inline(always)]
    fn decode_merr(
        &self,
        reader: &mut BitReader<'_>,
        k: u32,
        glimit: u32,
    ) -> Result<i32, &'static str> {
        // A prefix of `glimit - qbpp - 1` zeros announces an escaped value in
        // `qbpp` bits. Like CharLS, longer prefixes are read as escapes too,
        // up to a bound that keeps the read short.
        let escape = glimit.saturating_sub(self.qbpp + 1);
        let zeros = reader.read_zeros(escape + MAX_EXTRA_ZEROS)?;
        let value = if zeros >= escape {
            u64::from(reader.read_bits(self.qbpp)) + 1
        } else {
            (u64::from(zeros) << k) | u64::from(reader.read_bits(k))
        };
        if value > MAX_MERR {
            return Err("error value out of range");
        }
        // value <= MAX_MERR < 2^31.
        Ok(value as i32)
    }
}

/// MSB-first bit reader over one entropy-coded segment (T.87 bit stuffing): after
/// a `0xFF` data byte the next byte contributes only its 7 low bits, and a
/// `0xFF` followed by a byte `>= 0x80` (or the end of the buffer) ends the
/// segment. Past the end it supplies zero bits and counts them, so decoding
/// stays bounded and the caller can detect a truncated stream.
struct BitReader<'a> {
    /// The whole codestream.
    data: &'a [u8],
    /// Offset of the next byte to load.
    pos: usize,
    /// Bit cache, next bit in the MSB; bits below the valid ones are zero.
    cache: u64,
    /// Number of valid bits in `cache`.
    bits: u32,
    /// The previous byte loaded was `0xFF`: the next one carries 7 bits.
    stuffed: bool,
    /// A marker or the end of the buffer was reached.
    ended: bool,
    /// Zero bits appended after the end of the segment.
    padding: u64,
}

impl<'a> BitReader<'a> {
    /// Starts reading entropy-coded data at `pos`.
    fn new(data: &'a [u8], pos: usize) -> Self {
        BitReader {
            data,
            pos,
            cache: 0,
            bits: 0,
            stuffed: false,
            ended: false,
            padding: 0,
        }
    }

    /// Fills the cache to at least 57 valid bits.
    #[inline]
    fn refill(&mut self) {
        while self.bits <= 56 {
            if self.ended {
                self.padding = self.padding.saturating_add(u64::from(64 - self.bits));
                self.bits = 64;
                return;
            }
            let Some(&byte) = self.data.get(self.pos) else {
                self.ended = true;
                continue;
            };
            if self.stuffed {
                // Guaranteed < 0x80 by the check made when the 0xFF was read.
                self.stuffed = false;
                self.cache |= u64::from(byte & 0x7F) << (57 - self.bits);
                self.bits += 7;
                self.pos += 1;
            } else if byte == 0xFF {
                match self.data.get(self.pos + 1) {
                    Some(&next) if next < 0x80 => {
                        self.cache |= 0xFFu64 << (56 - self.bits);
                        self.bits += 8;
                        self.pos += 1;
                        self.stuffed = true;
                    }
                    _ => self.ended = true,
                }
            } else {
                self.cache |= u64::from(byte) << (56 - self.bits);
                self.bits += 8;
                self.pos += 1;
            }
        }
    }

    /// Reads `n` bits (`n <= 32`) as an unsigned value.
    #[inline]
    fn read_bits(&mut self, n: u32) -> u32 {
        let n = min(n, 32);
        if n == 0 {
            return 0;
        }
        if self.bits < n {
            self.refill();
        }
        let value = (self.cache >> (64 - n)) as u32;
        self.cache <<= n;
        self.bits -= n;
        value
    }

    /// Reads one bit.
    #[inline]
    fn read_bit(&mut self) -> bool {
        if self.bits == 0 {
            self.refill();
        }
        let bit = self.cache >> 63 != 0;
        self.cache <<= 1;
        self.bits -= 1;
        bit
    }

    /// Reads a unary prefix: counts `0` bits up to and including the
    /// terminating `1`. More than `max` zeros is an error.
    #[inline]
    fn read_zeros(&mut self, max: u32) -> Result<u32, &'static str> {
        let mut count = 0u32;
        // Each round adds at least 57 to `count` or returns, and `max` is
        // below 128, so at most three rounds run.
        loop {
            if self.bits <= 56 {
                self.refill();
            }
            let zeros = self.cache.leading_zeros();
            if zeros < self.bits {
                count += zeros;
                if count > max {
                    return Err("invalid Golomb code (prefix too long)");
                }
                // zeros < bits <= 64, so both shifts are < 64.
                self.cache <<= zeros;
                self.cache <<= 1;
                self.bits -= zeros + 1;
                return Ok(count);
            }
            count += self.bits;
            self.cache = 0;
            self.bits = 0;
            if count > max {
                return Err("invalid Golomb code (prefix too long)");
            }
        }
    }

    /// True once bits beyond the end of the segment were consumed.
    fn overrun(&self) -> bool {
        // Padding bits sit at the tail of the cache.
        self.padding > u64::from(self.bits)
    }
}

/// Regular-mode context variables (T.87 A.2.1).
#[derive(Debug, Clone, Copy)]
struct RegularContext {
    /// `A[Q]`: accumulated prediction error magnitudes (i64: with RESET up to
    /// 65535 it can exceed 2^31).
    a: i64,
    /// `B[Q]`: accumulated bias, kept in `-N[Q] < B[Q] <= 0`.
    b: i32,
    /// `C[Q]`: bias correction, in `MIN_C..=MAX_C`.
    c: i32,
    /// `N[Q]`: occurrence counter, in `1..=RESET`.
    n: i32,
}

/// Run-interruption context variables (T.87 A.2.1, contexts 365 and 366).
#[derive(Debug, Clone, Copy)]
struct RunContext {
    /// `A[Q]`: accumulated error magnitudes.
    a: i64,
    /// `N[Q]`: occurrence counter.
    n: i32,
    /// `Nn[Q]`: counter of negative prediction errors.
    nn: i32,
}

/// Decoding state of one scan.
struct ScanDecoder {
    /// Coding parameters.
    p: Coding,
    /// Regular contexts, indexed by the merged context number `Q` (0..365).
    regular: Vec<RegularContext>,
    /// Run-interruption contexts for `RItype` 0 and 1.
    run: [RunContext; 2],
    /// `RUNindex` (0..=31).
    run_index: usize,
    /// Gradient quantisation table: `Q(d)` at index `clamp(d, -T3, T3) + T3`.
    quant: Vec<i8>,
}

impl ScanDecoder {
    /// Creates the decoder with freshly initialised contexts.
    fn new(p: Coding) -> Self {
        let mut decoder = ScanDecoder {
            p,
            regular: Vec::new(),
            run: [RunContext { a: 0, n: 1, nn: 0 }; 2],
            run_index: 0,
            quant: Vec::new(),
        };
        decoder.quant = (-p.t3..=p.t3).map(|d| quantize(&p, d)).collect();
        decoder.reset();
        decoder
    }

    /// Initialises all context variables (T.87 A.2.1); also done after every
    /// restart marker.
    fn reset(&mut self) {
        let a = i64::from(max(2, (self.p.range + 32) / 64));
        self.regular.clear();
        self.regular.resize(
            REGULAR_CONTEXTS,
            RegularContext {
                a,
                b: 0,
                c: 0,
                n: 1,
            },
        );
        self.run = [RunContext { a, n: 1, nn: 0 }; 2];
        self.run_index = 0;
    }

    /// Quantised gradient `Q(d)` via the lookup table.
    #[inline]
    fn q(&self, d: i32) -> i32 {
        let t3 = self.p.t3;
        // Q(d) is -4 for every d <= -T3 and 4 for every d >= T3, so d is
        // clamped to -T3..=T3 and the index lies in the table's 0..=2·T3.
        self.quant
            .get(max(0, min(d + t3, 2 * t3)) as usize)
            .map_or(0, |&q| i32::from(q))
    }

    /// Maps a reconstructed value back into `0..=MAXVAL` (T.87 A.4.5 modulo
    /// reduction in the decoder, then clamping).
    #[inline]
    fn reconstruct(&self, value: i32) -> i32 {
        let p = &self.p;
        let mut v = value;
        if v < -p.near {
            v += p.range * (2 * p.near + 1);
        } else if v > p.maxval + p.near {
            v -= p.range * (2 * p.near + 1);
        }
        // min/max rather than clamp(), which carries an assertion.
        max(0, min(v, p.maxval))
    }

    /// Decodes one line into `cur[1..=width]`, given the previous line in
    /// `prev` (both `width + 2` long, with the edge samples of T.87 A.2.1
    /// already set up by the caller).
    fn decode_line(
        &mut self,
        reader: &mut BitReader<'_>,
        prev: &[i32],
        cur: &mut [i32],
        width: usize,
    ) -> Result<(), &'static str> {
        if prev.len() < width + 2 || cur.len() < width + 2 {
            return Err("internal line buffer error");
        }
        let mut x = 1usize;
        while x <= width {
            let ra = cur[x - 1];
            let rb = prev[x];
            let rc = prev[x - 1];
            let rd = prev[x + 1];
            let q1 = self.q(rd - rb);
            let q2 = self.q(rb - rc);
            let q3 = self.q(rc - ra);
            let q = 81 * q1 + 9 * q2 + q3;
            if q == 0 {
                x = self.decode_run(reader, prev, cur, x, width)?;
            } else {
                cur[x] = self.decode_regular(reader, q, ra, rb, rc)?;
                x += 1;
            }
        }
        Ok(())
    }

    /// Decodes one sample in regular mode (T.87 A.4-A.6) for the unmerged
    /// context number `q = 81·Q1 + 9·Q2 + Q3 != 0`.
    #[inline]
    fn decode_regular(
        &mut self,
        reader: &mut BitReader<'_>,
        q: i32,
        ra: i32,
        rb: i32,
        rc: i32,
    ) -> Result<i32, &'static str> {
        // The sign of 81·Q1 + 9·Q2 + Q3 is the sign of its first non-zero
        // term (|9·Q2 + Q3| <= 40 < 81), which is the merging rule of A.3.4.
        // `sign` is -1 or 1, `index` is |q| in 1..=364 (branch-free: the
        // signs of the samples are unpredictable).
        let sign = (q >> 31) | 1;
        let index = (q * sign) as usize;
        let p = self.p;
        let ctx = self
            .regular
            .get_mut(index)
            .ok_or("internal context index error")?;

        // Edge-detecting predictor (A.4.1), written as the equivalent
        // median(Ra, Rb, Ra + Rb - Rc), and prediction correction (A.4.2).
        let px = max(min(ra, rb), min(max(ra, rb), ra + rb - rc));
        let px = max(0, min(px + sign * ctx.c, p.maxval));

        let k = golomb_k(ctx.n, ctx.a);
        let merr = p.decode_merr(reader, k, p.limit)?;
        // Inverse error mapping (A.5.2): even values are non-negative errors,
        // odd ones negative; with k == 0 and 2·B[Q] <= -N[Q] (lossless only)
        // the mapping is mirrored, i.e. err becomes -err - 1.
        let mut err = (merr >> 1) ^ -(merr & 1);
        if k == 0 && p.near == 0 && 2 * ctx.b <= -ctx.n {
            err = -err - 1;
        }

        // Context update (A.6.1) and bias computation (A.6.2).
        ctx.a += i64::from(err.abs());
        ctx.b += err * (2 * p.near + 1);
        if ctx.n == p.reset {
            ctx.a >>= 1;
            ctx.b >>= 1;
            ctx.n >>= 1;
        }
        ctx.n += 1;
        if ctx.b <= -ctx.n {
            ctx.b += ctx.n;
            if ctx.c > MIN_C {
                ctx.c -= 1;
            }
            if ctx.b <= -ctx.n {
                ctx.b = -ctx.n + 1;
            }
        } else if ctx.b > 0 {
            ctx.b -= ctx.n;
            if ctx.c < MAX_C {
                ctx.c += 1;
            }
            if ctx.b > 0 {
                ctx.b = 0;
            }
        }

        Ok(self.reconstruct(px + sign * err * (2 * p.near + 1)))
    }

    /// Decodes a run starting at `cur[x]` (T.87 A.7.1) and, unless the run
    /// reaches the end of the line, the run-interruption sample (A.7.2).
    /// Returns the index of the next sample to decode.
    fn decode_run(
        &mut self,
        reader: &mut BitReader<'_>,
        prev: &[i32],
        cur: &mut [i32],
        x: usize,
        width: usize,
    ) -> Result<usize, &'static str> {
        let ra = *cur.get(x - 1).ok_or("internal line buffer error")?;
        let remaining = width + 1 - x;
        let mut run = 0usize;
        let mut to_end = false;
        // Every `1` bit advances `run` by at least one sample.
        while reader.read_bit() {
            let segment = 1usize << J[self.run_index & 31];
            let count = min(segment, remaining - run);
            run += count;
            if count == segment {
                self.run_index = min(self.run_index + 1, 31);
            }
            if run == remaining {
                to_end = true;
                break;
            }
        }
        if !to_end {
            run += reader.read_bits(J[self.run_index & 31]) as usize;
            if run > remaining {
                return Err("run length exceeds the line");
            }
        }
        cur.get_mut(x..x + run)
            .ok_or("internal line buffer error")?
            .fill(ra);
        let end = x + run;
        if end == width + 1 {
            return Ok(end);
        }
        let rb = *prev.get(end).ok_or("internal line buffer error")?;
        let value = self.decode_interruption(reader, ra, rb)?;
        *cur.get_mut(end).ok_or("internal line buffer error")? = value;
        self.run_index = self.run_index.saturating_sub(1);
        Ok(end + 1)
    }

    /// Decodes a run-interruption sample (T.87 A.7.2) with left neighbour `ra`
    /// (the run value) and upper neighbour `rb`.
    fn decode_interruption(
        &mut self,
        reader: &mut BitReader<'_>,
        ra: i32,
        rb: i32,
    ) -> Result<i32, &'static str> {
        let p = self.p;
        let ritype = i32::from((ra - rb).abs() <= p.near);
        let ctx = self.run[usize::from(ritype == 1)];
        let temp = if ritype == 1 {
            ctx.a + i64::from(ctx.n >> 1)
        } else {
            ctx.a
        };
        let k = golomb_k(ctx.n, temp);
        let glimit = p.limit.saturating_sub(J[self.run_index & 31] + 1);
        let em = p.decode_merr(reader, k, glimit)?;

        // Inverse of the run-interruption error mapping (A.7.2.2).
        let t = em + ritype;
        let map = t & 1;
        let magnitude = (t + map) >> 1;
        let negative = (k != 0 || 2 * ctx.nn >= ctx.n) == (map == 1);
        let err = if negative { -magnitude } else { magnitude };

        // Context update (A.7.2.3).
        let ctx = &mut self.run[usize::from(ritype == 1)];
        if err < 0 {
            ctx.nn += 1;
        }
        ctx.a += i64::from((em + 1 - ritype) >> 1);
        if ctx.n == p.reset {
            ctx.a >>= 1;
            ctx.n >>= 1;
            ctx.nn >>= 1;
        }
        ctx.n += 1;

        let (px, err) = if ritype == 1 {
            (ra, err)
        } else if ra > rb {
            (rb, -err)
        } else {
            (rb, err)
        };
        Ok(self.reconstruct(px + err * (2 * p.near + 1)))
    }
}

/// Quantises a local gradient (T.87 A.3.3).
fn quantize(p: &Coding, d: i32) -> i8 {
    if d <= -p.t3 {
        -4
    } else if d <= -p.t2 {
        -3
    } else if d <= -p.t1 {
        -2
    } else if d < -p.near {
        -1
    } else if d <= p.near {
        0
    } else if d < p.t1 {
        1
    } else if d < p.t2 {
        2
    } else if d < p.t3 {
        3
    } else {
        4
    }
}

/// Golomb-Rice parameter: the smallest `k` with `N · 2^k >= A` (T.87 A.5.1,
/// A.7.2.1), capped at [`MAX_K`].
#[inline]
fn golomb_k(n: i32, a: i64) -> u32 {
    let n = i64::from(max(n, 1));
    if n >= a {
        return 0;
    }
    // a > n >= 1: shifting n left by the difference of their bit lengths
    // aligns the leading bits; one more step is needed if still below a.
    let k = n.leading_zeros() - a.leading_zeros();
    let k = if (n << k) < a { k + 1 } else { k };
    min(k, MAX_K)
}

/// Decodes the entropy-coded data of a scan that starts at `start`, including
/// restart intervals of `restart_interval` lines (0: none), into a row-major
/// sample buffer.
fn decode_scan(
    data: &[u8],
    start: usize,
    width: u32,
    height: u32,
    restart_interval: u32,
    coding: Coding,
) -> Result<Vec<u16>, &'static str> {
    let w = usize::try_from(width).map_err(|_| "image too large")?;
    let h = usize::try_from(height).map_err(|_| "image too large")?;
    let total = w.checked_mul(h).ok_or("image too large")?;
    let line_len = w.checked_add(2).ok_or("image too large")?;
    let mut samples: Vec<u16> = Vec::new();
    samples
        .try_reserve_exact(total)
        .map_err(|_| "cannot allocate the image")?;
    let mut prev: Vec<i32> = Vec::new();
    let mut cur: Vec<i32> = Vec::new();
    prev.try_reserve_exact(line_len)
        .and_then(|_| cur.try_reserve_exact(line_len))
        .map_err(|_| "cannot allocate the image")?;
    prev.resize(line_len, 0);
    cur.resize(line_len, 0);

    let interval = if restart_interval == 0 {
        h
    } else {
        usize::try_from(restart_interval).unwrap_or(usize::MAX)
    };
    let mut decoder = ScanDecoder::new(coding);
    let mut pos = start;
    let mut line = 0usize;
    loop {
        let mut reader = BitReader::new(data, pos);
        let lines = min(interval, h - line);
        for _ in 0..lines {
            // Edge samples (A.2.1): Rd past the end repeats Rb, Ra at the
            // start is Rb, Rc at the start is the previous line's Ra.
            prev[w + 1] = prev[w];
            cur[0] = prev[1];
            decoder.decode_line(&mut reader, &prev, &mut cur, w)?;
            if reader.overrun() {
                return Err("unexpected end of JPEG-LS data");
            }
            // Reconstructed values are clamped to 0..=MAXVAL <= 65535.
            samples.extend(cur[1..=w].iter().map(|&v| v as u16));
            std::mem::swap(&mut prev, &mut cur);
            line += 1;
        }
        if line >= h {
            break;
        }
        // The interval ends at a byte boundary followed by RSTm (T.87 D.2):
        // find that marker, skip fill bytes, and start afresh after it.
        pos = find_marker(data, reader.pos).ok_or("missing restart marker")?;
        while data.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        match data.get(pos) {
            Some(RST0..=RST7) => pos += 1,
            _ => return Err("missing restart marker"),
        }
        decoder.reset();
        prev.fill(0);
        cur.fill(0);
    }
    Ok(samples)
}

/// Position of the first marker (`0xFF` followed by a byte `>= 0x80`) at or
/// after `pos` in entropy-coded data, where stuffing guarantees that a data
/// `0xFF` is always followed by a byte `< 0x80`.
fn find_marker(data: &[u8], pos: usize) -> Option<usize> {
    let tail = data.get(pos..)?;
    tail.windows(2)
        .position(|w| w[0] == 0xFF && w[1] >= 0x80)
        .map(|i| pos + i)
}

#[cfg(test)]
mod tests {
    //! Fixtures in `testdata/jpegls/` (regenerate with
    //! `testdata/jpegls/make_fixtures.py`):
    //!
    //! * `lung_*`: a 512x512 12-bit CT slice of `sample-dicom/lung1` encoded
    //!   by dcmtk's `dcmcjpls` (lossless: P = 16 with an LSE segment, as dcmtk
    //!   writes it; near-lossless NEAR = 2 with default parameters; NEAR = 5
    //!   with RESET = 32 in an LSE segment). The near-lossless references are
    //!   SHA-256 digests of the `dcmdjpls` decode, which CharLS 2.4 (pyjpegls)
    //!   reproduces exactly.
    //! * `mr_small*`, `emri_small*`: pydicom's `MR_small_jpeg_ls_lossless.dcm`
    //!   (16-bit signed) and `emri_small_jpeg_ls_lossless.dcm` (10 frames,
    //!   12-bit), with the pixels of their uncompressed twins.
    //! * `charls_*`: small images encoded by CharLS 2.4 (pyjpegls), references
    //!   decoded by CharLS.
    //! * `enc_*`: streams with restart intervals, LSE preset parameters, fill
    //!   bytes and APPn/COM segments from `jls_enc.py`, a plain T.87 encoder
    //!   whose output is byte-identical to CharLS for default parameters;
    //!   CharLS decodes the restart/LSE streams to the same samples. The
    //!   `enc_maxval3000*` streams (MAXVAL = 3000, not 2^P - 1) follow the
    //!   standard's prediction clamping, which CharLS does not implement for
    //!   such MAXVAL (it refuses them), so they only guard this decoder.

    use super::*;
    use sha2::{Digest, Sha256};

    /// Generous pixel limit for the fixtures.
    const LIMIT: u64 = 1 << 24;

    /// Lung slice, lossless (dcmcjpls).
    const LUNG_LOSSLESS: &[u8] = include_bytes!("testdata/jpegls/lung_lossless.jls");
    /// Original pixels of the lung slice (raw little-endian u16).
    const LUNG_ORIGINAL: &[u8] = include_bytes!("testdata/jpegls/lung_original.u16");
    /// Lung slice, near-lossless NEAR = 2 (dcmcjpls +en).
    const LUNG_NEAR2: &[u8] = include_bytes!("testdata/jpegls/lung_near2.jls");
    /// SHA-256 of the little-endian u16 dcmdjpls/CharLS decode of [`LUNG_NEAR2`].
    const LUNG_NEAR2_SHA256: &str =
        "4534c93b7103242f82ae5dcc32d1ab7822279843623dc6ab9f4775725fd5f80e";
    /// Lung slice, near-lossless NEAR = 5, RESET = 32 (dcmcjpls +en +md 5 +rs 32).
    const LUNG_NEAR5: &[u8] = include_bytes!("testdata/jpegls/lung_near5_reset32.jls");
    /// SHA-256 of the little-endian u16 dcmdjpls/CharLS decode of [`LUNG_NEAR5`].
    const LUNG_NEAR5_SHA256: &str =
        "48f4b6092976ac16c5157f4851cd6a0418df9eefd603e7263db564c31baa025d";
    /// pydicom MR_small_jpeg_ls_lossless.dcm codestream (64x64, 16-bit signed).
    const MR_SMALL: &[u8] = include_bytes!("testdata/jpegls/mr_small_lossless.jls");
    /// Pixels of MR_small.dcm (raw little-endian, i16 bit patterns).
    const MR_SMALL_REF: &[u8] = include_bytes!("testdata/jpegls/mr_small.u16");
    /// The 10 frames of emri_small_jpeg_ls_lossless.dcm (64x64, 12-bit).
    const EMRI_FRAMES: [&[u8]; 10] = [
        include_bytes!("testdata/jpegls/emri_small_f0.jls"),
        include_bytes!("testdata/jpegls/emri_small_f1.jls"),
        include_bytes!("testdata/jpegls/emri_small_f2.jls"),
        include_bytes!("testdata/jpegls/emri_small_f3.jls"),
        include_bytes!("testdata/jpegls/emri_small_f4.jls"),
        include_bytes!("testdata/jpegls/emri_small_f5.jls"),
        include_bytes!("testdata/jpegls/emri_small_f6.jls"),
        include_bytes!("testdata/jpegls/emri_small_f7.jls"),
        include_bytes!("testdata/jpegls/emri_small_f8.jls"),
        include_bytes!("testdata/jpegls/emri_small_f9.jls"),
    ];
    /// Pixels of emri_small.dcm, all 10 frames (raw little-endian u16).
    const EMRI_REF: &[u8] = include_bytes!("testdata/jpegls/emri_small.u16");
    /// 3x40000 flat image with three outliers (CharLS): long runs, J up to 15.
    const FLAT_RUNS: &[u8] = include_bytes!("testdata/jpegls/charls_flat_runs.jls");
    /// 64x48 lossless, DRI = 5, LSE before SOF, fill bytes, APP0 + COM.
    const RESTART5: &[u8] = include_bytes!("testdata/jpegls/enc_restart5_lse_fill.jls");

    /// `(name, codestream, reference, width, height, precision)` of the small
    /// fixtures that come with a raw reference.
    type Case = (&'static str, &'static [u8], &'static [u8], u32, u32, u8);

    /// Expands to a [`Case`] for `testdata/jpegls/<name>.{jls,u16}`.
    macro_rules! case {
        ($name:literal, $w:expr, $h:expr, $p:expr) => {
            (
                $name,
                include_bytes!(concat!("testdata/jpegls/", $name, ".jls")).as_slice(),
                include_bytes!(concat!("testdata/jpegls/", $name, ".u16")).as_slice(),
                $w,
                $h,
                $p,
            )
        };
    }

    /// Small fixtures with raw references.
    const CASES: [Case; 17] = [
        case!("charls_ct12_lossless", 128, 128, 12),
        case!("charls_ct12_near3", 128, 128, 12),
        case!("charls_rand8", 37, 23, 8),
        case!("charls_rand16", 19, 17, 16),
        case!("charls_rand16_near7", 16, 16, 16),
        case!("charls_rand8_near30", 20, 20, 8),
        case!("charls_two_bit", 30, 20, 2),
        case!("charls_spiky_near1", 41, 40, 12),
        case!("charls_one_column", 1, 50, 10),
        case!("charls_one_row", 60, 1, 6),
        case!("enc_one_pixel", 1, 1, 8),
        case!("enc_restart5_lse_fill", 64, 48, 12),
        case!("enc_restart1_near2_reset3", 64, 48, 12),
        case!("enc_restart7_rand16_near1", 25, 30, 16),
        case!("enc_restart_big", 64, 10, 12),
        case!("enc_maxval3000", 64, 48, 12),
        case!("enc_maxval3000_near4_restart3", 64, 48, 12),
    ];

    /// Little-endian u16 array from raw bytes.
    fn u16le(bytes: &[u8]) -> Vec<u16> {
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    /// Hex SHA-256 of the little-endian bytes of `samples`.
    fn sha256(samples: &[u16]) -> String {
        let mut hasher = Sha256::new();
        for s in samples {
            hasher.update(s.to_le_bytes());
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Largest absolute difference between two equally long sample arrays.
    fn max_diff(a: &[u16], b: &[u16]) -> u16 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    /// Small xorshift64* generator for the fuzz-style tests.
    struct Rng(u64);

    impl Rng {
        /// Next pseudo-random value.
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// Pseudo-random index below `n` (n > 0).
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Decodes and asserts geometry.
    fn decode_ok(data: &[u8], w: u32, h: u32, p: u8) -> Vec<u16> {
        let img = decode(data, LIMIT).unwrap();
        assert_eq!((img.width, img.height, img.precision), (w, h, p));
        assert_eq!(img.samples.len(), (w * h) as usize);
        img.samples
    }

    /// The dcmtk-encoded lung slice decodes to the original pixels.
    #[test]
    fn lung_slice_lossless_is_bit_exact() {
        let got = decode_ok(LUNG_LOSSLESS, 512, 512, 16);
        assert!(got == u16le(LUNG_ORIGINAL), "lossless lung slice differs");
    }

    /// pydicom's JPEG-LS files decode to their uncompressed twins.
    #[test]
    fn pydicom_lossless_fixtures_are_bit_exact() {
        let got = decode_ok(MR_SMALL, 64, 64, 16);
        assert_eq!(got, u16le(MR_SMALL_REF));
        let reference = u16le(EMRI_REF);
        for (i, frame) in EMRI_FRAMES.iter().enumerate() {
            let got = decode_ok(frame, 64, 64, 16);
            assert_eq!(got, reference[i * 4096..(i + 1) * 4096], "emri frame {i}");
        }
    }

    /// Near-lossless slices equal the reference decode and stay within NEAR.
    #[test]
    fn lung_slice_near_lossless_matches_reference_decoder() {
        let original = u16le(LUNG_ORIGINAL);
        for (data, near, digest) in [
            (LUNG_NEAR2, 2, LUNG_NEAR2_SHA256),
            (LUNG_NEAR5, 5, LUNG_NEAR5_SHA256),
        ] {
            let got = decode_ok(data, 512, 512, 12);
            assert!(max_diff(&got, &original) <= near, "NEAR {near} exceeded");
            assert_eq!(sha256(&got), digest, "NEAR {near} differs from dcmdjpls");
        }
    }

    /// CharLS and restart/LSE fixtures equal their references.
    #[test]
    fn small_fixtures_match_references() {
        for (name, data, reference, w, h, p) in CASES {
            let img = decode(data, LIMIT).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((img.width, img.height, img.precision), (w, h, p), "{name}");
            assert!(img.samples == u16le(reference), "{name}: samples differ");
        }
    }

    /// Runs longer than a line and up to the largest `J` segments.
    #[test]
    fn long_runs_across_lines() {
        let got = decode_ok(FLAT_RUNS, 40000, 3, 11);
        let mut expected = vec![1000u16; 120_000];
        expected[5] = 999;
        expected[40_000 + 20_000] = 1200;
        expected[80_000 + 39_999] = 0;
        assert!(got == expected);
    }

    /// `max_pixels` is enforced before any allocation.
    #[test]
    fn refuses_images_above_the_pixel_limit() {
        let err = decode(LUNG_LOSSLESS, 512 * 512 - 1).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
        assert!(decode(LUNG_LOSSLESS, 512 * 512).is_ok());
        // 65535 x 65535 header with no data: refused before allocating.
        let mut huge = LUNG_LOSSLESS[..64].to_vec();
        huge[7..11].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(
            decode(&huge, LIMIT)
                .unwrap_err()
                .to_string()
                .contains("exceeds")
        );
    }

    /// Unsupported or invalid headers give a specific error.
    #[test]
    fn refuses_unsupported_codestreams() {
        // Layout of RESTART5: SOI, APP0 (18), COM (22), LSE (15), SOF55 (13)...
        let sof = RESTART5
            .windows(2)
            .position(|w| w == [0xFF, SOF55])
            .unwrap();
        let lse = RESTART5.windows(2).position(|w| w == [0xFF, LSE]).unwrap();
        let sos = RESTART5.windows(2).position(|w| w == [0xFF, SOS]).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (RESTART5[2..].to_vec(), "SOI"),
            (
                [&[0xFF, 0xD8, 0xFF, 0xC0][..], &RESTART5[4..]].concat(),
                "JPEG",
            ),
            (with(RESTART5, lse + 4, 2), "mapping"),
            (with(RESTART5, lse + 4, 3), "mapping"),
            (with(RESTART5, sos + 6, 1), "mapping"),
            (with(RESTART5, sof + 9, 3), "single-component"),
            (with(RESTART5, sof + 4, 1), "precision"),
            (with(RESTART5, sof + 4, 17), "precision"),
            (with(RESTART5, sos + 9, 3), "point transform"),
            (with(RESTART5, sos + 8, 3), "interleave"),
            // NEAR 200 conflicts with the stream's T1 = 5 from its LSE.
            (with(RESTART5, sos + 7, 200), "threshold"),
            (RESTART5[..sos].to_vec(), "end of data"),
            ([&RESTART5[..sos], &[0xFF, 0xD9][..]].concat(), "EOI"),
        ];
        for (data, reason) in cases {
            let err = decode(&data, LIMIT).unwrap_err();
            assert!(
                err.to_string().contains(reason),
                "expected {reason:?}, got {err:?}"
            );
        }
    }

    /// Copy of `data` with the byte at `at` replaced.
    fn with(data: &[u8], at: usize, value: u8) -> Vec<u8> {
        let mut v = data.to_vec();
        v[at] = value;
        v
    }

    /// A missing RSTm between restart intervals is an error.
    #[test]
    fn restart_markers_are_required_between_intervals() {
        // Replace the first RST0 by a COM-like non-RST marker code.
        let rst = RESTART5.windows(2).position(|w| w == [0xFF, RST0]).unwrap();
        let bad = with(RESTART5, rst + 1, 0xC4);
        assert!(decode(&bad, LIMIT).is_err());
    }

    /// Fixtures the robustness tests mutate (small, to keep debug runs fast).
    fn fuzz_inputs() -> Vec<&'static [u8]> {
        let mut v: Vec<&[u8]> = CASES
            .iter()
            .filter(|c| c.1.len() < 4000)
            .map(|c| c.1)
            .collect();
        v.push(MR_SMALL);
        v.push(EMRI_FRAMES[3]);
        v
    }

    /// Truncated streams fail (or decode identically when only EOI is cut).
    #[test]
    fn truncations_never_panic_nor_decode_wrongly() {
        for data in fuzz_inputs() {
            let full = decode(data, LIMIT).unwrap();
            let step = 1 + data.len() / 700;
            for len in (0..data.len()).step_by(step) {
                // A truncated stream either fails or decodes the same samples
                // (only its EOI or padding was cut).
                if let Ok(img) = decode(&data[..len], LIMIT) {
                    assert!(img == full, "truncation at {len} decoded differently");
                    assert!(len + 8 >= data.len(), "truncation at {len} accepted");
                }
            }
        }
        // The lung slice: a few cuts inside the scan fail; a missing EOI
        // (here with its 0xFF fill byte) is tolerated.
        for len in [40, 1000, 50_000, 134_000, LUNG_LOSSLESS.len() - 4] {
            assert!(decode(&LUNG_LOSSLESS[..len], LIMIT).is_err(), "{len}");
        }
        let no_eoi = &LUNG_LOSSLESS[..LUNG_LOSSLESS.len() - 3];
        assert!(decode(no_eoi, LIMIT).unwrap().samples == u16le(LUNG_ORIGINAL));
    }

    /// Random bit flips and byte edits never panic.
    #[test]
    fn bit_flips_and_byte_noise_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for data in fuzz_inputs() {
            for round in 0..150 {
                let mut v = data.to_vec();
                let edits = 1 + rng.below(4);
                for _ in 0..edits {
                    // Half the edits target the headers, where parsing lives.
                    let at = if round % 2 == 0 {
                        rng.below(v.len().min(64))
                    } else {
                        rng.below(v.len())
                    };
                    if rng.below(3) == 0 {
                        v[at] = rng.next() as u8;
                    } else {
                        v[at] ^= 1 << rng.below(8);
                    }
                }
                let _ = decode(&v, LIMIT);
            }
        }
    }

    /// Random data, alone or after valid or random headers, never panics.
    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        // A valid header from RESTART5, followed by random scan data.
        let sos = RESTART5.windows(2).position(|w| w == [0xFF, SOS]).unwrap();
        let header = &RESTART5[..sos + 10];
        for round in 0..600 {
            let len = rng.below(600);
            let mut noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if round % 3 == 0 {
                // Plenty of 0xFF bytes exercise the stuffing and marker logic.
                for b in noise.iter_mut() {
                    if rng.below(4) == 0 {
                        *b = 0xFF;
                    }
                }
            }
            let _ = decode(&noise, LIMIT);
            let _ = decode(&[header, &noise].concat(), LIMIT);
            let _ = decode(&[&[0xFF, 0xD8][..], &noise].concat(), LIMIT);
        }
        // Random headers: SOF55/LSE/SOS fields with arbitrary values.
        for _ in 0..1500 {
            let mut v = vec![0xFF, 0xD8, 0xFF, SOF55, 0, 11];
            v.extend((0..9).map(|_| rng.next() as u8));
            // Mostly valid precision, small sizes (below the pixel limit) and
            // a single component, so the scan decoder gets to run.
            v[6] = 1 + rng.below(17) as u8;
            v[7] = 0;
            v[9] = 0;
            v[11] = 1;
            if rng.below(2) == 0 {
                v.extend([0xFF, LSE, 0, 13, 1]);
                v.extend((0..10).map(|_| (rng.next() as u8) & 0x1F));
            }
            if rng.below(2) == 0 {
                v.extend([0xFF, DRI, 0, 4, 0, 1 + rng.below(3) as u8]);
            }
            v.extend([0xFF, SOS, 0, 8, 1, 1, 0, rng.below(8) as u8, 0, 0]);
            v.extend((0..rng.below(300)).map(|_| rng.next() as u8));
            let _ = decode(&v, 1 << 16);
        }
    }

    /// Default T1..T3 match T.87 C.2.4.1.1 and dcmtk's LSE values.
    #[test]
    fn default_thresholds_follow_the_standard() {
        // T.87 C.2.4.1.1.1 examples: 8-bit lossless defaults are 3, 7, 21.
        assert_eq!(default_thresholds(255, 0), (3, 7, 21));
        // 12-bit and 16-bit (dcmtk writes the latter into its LSE segment).
        assert_eq!(default_thresholds(4095, 0), (18, 67, 276));
        assert_eq!(default_thresholds(65535, 0), (18, 67, 276));
        assert_eq!(default_thresholds(4095, 5), (33, 92, 311));
        // Low bit depths use the second set of formulas.
        assert_eq!(default_thresholds(15, 0), (2, 3, 4));
    }

    /// Prints the decode time of the 512x512 lung slices.
    #[test]
    #[ignore = "timing; run with --release -- --ignored --nocapture"]
    fn decode_time_512x512() {
        for (name, data) in [("lossless", LUNG_LOSSLESS), ("near2", LUNG_NEAR2)] {
            let start = std::time::Instant::now();
            let runs = 20;
            for _ in 0..runs {
                decode(data, LIMIT).unwrap();
            }
            println!("{name}: {:?} per 512x512 slice", start.elapsed() / runs);
        }
    }
}
