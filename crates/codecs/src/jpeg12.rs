//! Hand-rolled decoder for single-component, Huffman-coded, sequential-DCT JPEG
//! (baseline SOF0 and extended SOF1), 8- or 12-bit sample precision.
//!
//! DICOM "JPEG Extended (Process 2 & 4)" (transfer syntax
//! 1.2.840.10008.1.2.4.51) is how many CT archives store lossy 12-bit slices.
//! The pure-Rust `jpeg-decoder` crate used by dicom-rs refuses such streams
//! ("unsupported JPEG feature: SamplePrecision(12)") and no pure-Rust crate on
//! crates.io decodes 12-bit sequential JPEG, while C libraries (IJG libjpeg,
//! libjpeg-turbo) do not build for `wasm32-unknown-unknown`. This module is
//! therefore a small, self-contained (`std` only) decoder for exactly what
//! CT needs: one component, Huffman entropy coding, sequential DCT.
//!
//! Supported: SOI, APPn/COM and other unknown segments (skipped), DQT with 8-
//! and 16-bit tables, DHT, SOF0/SOF1, DRI with RSTn restart markers, SOS, EOI,
//! fill bytes (0xFF runs before a marker) and byte stuffing (0xFF 0x00). Any
//! sampling factors are accepted: a single-component scan is non-interleaved,
//! so each MCU is one 8x8 block and the blocks cover `ceil(w/8) x ceil(h/8)`.
//! Like IJG libjpeg, the spectral-selection fields of a sequential SOS (Ss, Se,
//! Ah, Al) are ignored: some DICOM encoders write Se = 0 there.
//!
//! Refused with an error: progressive (SOF2), lossless (SOF3, decoded by
//! dicom-rs already), hierarchical and arithmetic-coded processes, more than
//! one component, precisions other than 8 and 12, DNL-defined heights, images
//! over the caller's pixel limit, and entropy-coded data that ends before the
//! last block (no silent zero fill).
//!
//! The inverse DCT is the accurate integer algorithm of IJG libjpeg
//! `jidctint.c` (ISLOW: Loeffler-Ligtenberg-Moschytz, `CONST_BITS` = 13,
//! `PASS1_BITS` = 2 for 8-bit and 1 for 12-bit samples), computed in `i64` so
//! that no input can overflow. Output is therefore bit-exact with IJG-based
//! decoders (dcmtk, GDCM, libjpeg-turbo) on valid data.
//!
//! The decoder never panics: every read of the input is bounds-checked, all
//! arithmetic on data-derived values is checked, widened to `i64` or (for the
//! DC predictor, as in IJG) explicitly wrapping, and the only
//! allocation proportional to the image (the output) happens after the size
//! has been checked against `max_pixels`.

/// A decoded single-component sequential-DCT JPEG image.
#[derive(Debug, Clone, PartialEq)]
pub struct JpegImage {
    /// Image width in pixels (samples per line).
    pub width: u32,
    /// Image height in pixels (number of lines).
    pub height: u32,
    /// Sample precision from the SOF marker (8 or 12).
    pub precision: u8,
    /// Samples, row-major, `width * height` of them, in 0..(1 << precision).
    pub samples: Vec<u16>,
}

/// Zigzag scan order: `ZIGZAG[k]` is the natural (row-major) index of the
/// `k`-th coefficient in the entropy-coded (and DQT) order.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Number of code bits resolved by one lookup in [`HuffTable::lookup`].
const LOOKUP_BITS: u32 = 9;

/// A Huffman decoding table built from a DHT segment (JPEG Annex C / F.2.2.3).
#[derive(Clone)]
struct HuffTable {
    /// Fast path indexed by the next [`LOOKUP_BITS`] bits: `len << 8 | symbol`
    /// for codes of at most `LOOKUP_BITS` bits, 0 when the code is longer.
    lookup: [u16; 1 << LOOKUP_BITS],
    /// `maxcode[l]`: largest code of length `l` (1..=16), -1 if none.
    maxcode: [i32; 17],
    /// `valoffset[l]`: index into `values` of a code of length `l`, minus that code.
    valoffset: [i32; 17],
    /// Symbols in order of increasing code length (HUFFVAL).
    values: [u8; 256],
}

impl HuffTable {
    /// Build the decoding table from BITS (`counts[l-1]` codes of length `l`)
    /// and HUFFVAL; rejects tables whose codes do not fit their lengths.
    fn new(counts: &[u8; 16], symbols: &[u8]) -> Result<Self, String> {
        let mut table = HuffTable {
            lookup: [0; 1 << LOOKUP_BITS],
            maxcode: [-1; 17],
            valoffset: [0; 17],
            values: [0; 256],
        };
        table
            .values
            .get_mut(..symbols.len())
            .ok_or("Huffman table has more than 256 symbols")?
            .copy_from_slice(symbols);
        let mut code: u32 = 0;
        let mut k: usize = 0;
        for (i, &count) in counts.iter().enumerate() {
            let len = i as u32 + 1;
            let count = usize::from(count);
            if count > 0 {
                table.valoffset[len as usize] = k as i32 - code as i32;
                for _ in 0..count {
                    if len <= LOOKUP_BITS {
                        let symbol = symbols.get(k).copied().ok_or("invalid Huffman table")?;
                        let shift = LOOKUP_BITS - len;
                        let first = (code << shift) as usize;
                        let entry = (len as u16) << 8 | u16::from(symbol);
                        for slot in table.lookup.iter_mut().skip(first).take(1 << shift) {
                            *slot = entry;
                        }
                    }
                    code += 1;
                    k += 1;
                }
                table.maxcode[len as usize] = code as i32 - 1;
                // As IJG: the all-ones code of each length is reserved.
                if code >= 1 << len {
                    return Err("invalid Huffman table (code overflow)".into());
                }
            }
            code <<= 1;
        }
        Ok(table)
    }
}

/// MSB-first reader of entropy-coded data: removes byte stuffing, stops at
/// markers and feeds zero bits past them (counting those, so that a scan that
/// actually consumed them can be reported as truncated).
struct BitReader<'a> {
    /// The whole JPEG stream.
    data: &'a [u8],
    /// Next byte of `data` to load into the bit buffer.
    pos: usize,
    /// Bit buffer, left-aligned: the next bit to read is bit 63.
    acc: u64,
    /// Number of valid bits in `acc`.
    nbits: u32,
    /// A marker (or the end of the data) was reached; `pos` is left on it.
    at_marker: bool,
    /// Zero bits appended after the marker / end of data.
    padding: u32,
}

impl<'a> BitReader<'a> {
    /// Start reading entropy-coded data at `pos`.
    fn new(data: &'a [u8], pos: usize) -> Self {
        BitReader {
            data,
            pos,
            acc: 0,
            nbits: 0,
            at_marker: false,
            padding: 0,
        }
    }

    /// Top up the buffer to at least 57 bits (zeros after a marker).
    fn fill(&mut self) {
        while self.nbits <= 56 {
            let mut byte = 0u8;
            if self.at_marker {
                self.padding = self.padding.saturating_add(8);
            } else {
                match self.data.get(self.pos) {
                    None => {
                        self.at_marker = true;
                        self.padding = self.padding.saturating_add(8);
                    }
                    Some(&0xFF) => {
                        // Skip fill bytes; 0xFF 0x00 is a stuffed 0xFF, anything else a marker.
                        let mut next = self.pos + 1;
                        while self.data.get(next) == Some(&0xFF) {
                            next += 1;
                        }
                        if self.data.get(next) == Some(&0x00) {
                            byte = 0xFF;
                            self.pos = next + 1;
                        } else {
                            self.at_marker = true;
                            self.padding = self.padding.saturating_add(8);
                        }
                    }
                    Some(&b) => {
                        byte = b;
                        self.pos += 1;
                    }
                }
            }
            self.acc |= u64::from(byte) << (56 - self.nbits);
            self.nbits += 8;
        }
    }

    /// True when bits past the end of the real data have been consumed.
    fn overran(&self) -> bool {
        self.padding > self.nbits
    }

    /// Read `n` (0..=16) bits as an unsigned number.
    fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        if self.nbits < n {
            self.fill();
        }
        let value = (self.acc >> (64 - n)) as u32;
        self.acc <<= n;
        self.nbits -= n;
        value
    }

    /// Read `n` (0..=16) bits and sign-extend them as a JPEG magnitude
    /// category value (EXTEND, F.2.2.1).
    fn receive_extend(&mut self, n: u32) -> i32 {
        if n == 0 {
            return 0;
        }
        let v = self.bits(n) as i32;
        if v < 1 << (n - 1) {
            v - (1 << n) + 1
        } else {
            v
        }
    }

    /// Decode one Huffman symbol.
    fn decode(&mut self, table: &HuffTable) -> Result<u8, String> {
        if self.nbits < 16 {
            self.fill();
        }
        let peek = (self.acc >> (64 - LOOKUP_BITS)) as usize;
        let entry = table.lookup.get(peek).copied().unwrap_or(0);
        if entry != 0 {
            let len = u32::from(entry >> 8);
            self.acc <<= len;
            self.nbits -= len;
            return Ok(entry as u8);
        }
        for len in LOOKUP_BITS + 1..=16 {
            let code = (self.acc >> (64 - len)) as i32;
            let max = table.maxcode.get(len as usize).copied().unwrap_or(-1);
            if code <= max {
                let offset = table.valoffset.get(len as usize).copied().unwrap_or(0);
                let index = usize::try_from(code + offset).map_err(|_| "bad Huffman code")?;
                let symbol = table.values.get(index).copied().ok_or("bad Huffman code")?;
                self.acc <<= len;
                self.nbits -= len;
                return Ok(symbol);
            }
        }
        Err("invalid Huffman code in entropy-coded data".into())
    }

    /// Discard buffered bits and position just after the next marker, which
    /// must be `RST<expected>`; used at restart-interval boundaries.
    fn restart(&mut self, expected: u8) -> Result<(), String> {
        self.acc = 0;
        self.nbits = 0;
        self.at_marker = false;
        self.padding = 0;
        let (marker, after) = next_marker(self.data, self.pos)
            .ok_or("entropy-coded data truncated (missing restart marker)")?;
        if marker != 0xD0 + expected {
            return Err(format!(
                "expected restart marker RST{expected}, found marker 0x{marker:02X}"
            ));
        }
        self.pos = after;
        Ok(())
    }
}

/// Find the next marker at or after `pos`, skipping stray bytes and 0xFF fill
/// bytes as IJG libjpeg does; returns the marker code and the position after it.
fn next_marker(data: &[u8], mut pos: usize) -> Option<(u8, usize)> {
    loop {
        while *data.get(pos)? != 0xFF {
            pos += 1;
        }
        while *data.get(pos)? == 0xFF {
            pos += 1;
        }
        let code = *data.get(pos)?;
        pos += 1;
        if code != 0 {
            return Some((code, pos));
        }
    }
}

/// Frame parameters from SOF0/SOF1.
struct Frame {
    /// Sample precision, 8 or 12.
    precision: u8,
    /// Number of lines.
    height: u32,
    /// Samples per line.
    width: u32,
    /// Component identifier (matched against the SOS component selector).
    component_id: u8,
    /// Quantization table selector Tq (0..=3).
    quant_table: usize,
}

/// Read a big-endian `u16` at `pos`.
fn be16(data: &[u8], pos: usize) -> Option<u16> {
    let bytes = data.get(pos..pos.checked_add(2)?)?;
    Some(u16::from_be_bytes(bytes.try_into().ok()?))
}

/// Name of a frame marker this decoder refuses, or `None` for SOF0/SOF1.
fn unsupported_sof(marker: u8) -> Option<&'static str> {
    match marker {
        0xC2 => Some("progressive DCT (SOF2)"),
        0xC3 => Some("lossless (SOF3)"),
        0xC5 => Some("hierarchical sequential (SOF5)"),
        0xC6 => Some("hierarchical progressive (SOF6)"),
        0xC7 => Some("hierarchical lossless (SOF7)"),
        0xC9 => Some("arithmetic-coded sequential (SOF9)"),
        0xCA => Some("arithmetic-coded progressive (SOF10)"),
        0xCB => Some("arithmetic-coded lossless (SOF11)"),
        0xCD => Some("arithmetic-coded hierarchical sequential (SOF13)"),
        0xCE => Some("arithmetic-coded hierarchical progressive (SOF14)"),
        0xCF => Some("arithmetic-coded hierarchical lossless (SOF15)"),
        _ => None,
    }
}

/// Parse a SOF0/SOF1 segment body.
fn parse_sof(seg: &[u8], max_pixels: u64) -> Result<Frame, String> {
    let short = || "truncated SOF segment".to_string();
    let precision = *seg.first().ok_or_else(short)?;
    let height = be16(seg, 1).ok_or_else(short)?;
    let width = be16(seg, 3).ok_or_else(short)?;
    let ncomp = *seg.get(5).ok_or_else(short)?;
    if precision != 8 && precision != 12 {
        return Err(format!(
            "unsupported JPEG sample precision {precision} (need 8 or 12)"
        ));
    }
    if ncomp != 1 {
        return Err(format!("unsupported JPEG with {ncomp} components (need 1)"));
    }
    let &[.., component_id, sampling, quant_table] = seg.get(..9).ok_or_else(short)? else {
        return Err(short());
    };
    if height == 0 {
        return Err("JPEG height defined by DNL marker is not supported".into());
    }
    if width == 0 {
        return Err("JPEG width is zero".into());
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(format!(
            "JPEG image {width}x{height} exceeds the limit of {max_pixels} pixels"
        ));
    }
    let (h, v) = (sampling >> 4, sampling & 0x0F);
    if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
        return Err(format!("invalid JPEG sampling factors {h}x{v}"));
    }
    let quant_table = usize::from(quant_table);
    if quant_table > 3 {
        return Err(format!(
            "invalid JPEG quantization table selector {quant_table}"
        ));
    }
    Ok(Frame {
        precision,
        height: u32::from(height),
        width: u32::from(width),
        component_id,
        quant_table,
    })
}

/// Parse a DQT segment body into `tables` (natural order).
fn parse_dqt(mut seg: &[u8], tables: &mut [Option<[u16; 64]>; 4]) -> Result<(), String> {
    while let Some((&pq_tq, rest)) = seg.split_first() {
        let (pq, tq) = (pq_tq >> 4, usize::from(pq_tq & 0x0F));
        let size = match pq {
            0 => 64,
            1 => 128,
            _ => return Err(format!("invalid DQT precision {pq}")),
        };
        let slot = tables
            .get_mut(tq)
            .ok_or_else(|| format!("invalid DQT table id {tq}"))?;
        let body = rest.get(..size).ok_or("truncated DQT segment")?;
        let mut table = [0u16; 64];
        for (k, &natural) in ZIGZAG.iter().enumerate() {
            let value = if pq == 0 {
                body.get(k).map(|&b| u16::from(b))
            } else {
                be16(body, 2 * k)
            };
            if let Some(dst) = table.get_mut(natural) {
                *dst = value.ok_or("truncated DQT segment")?;
            }
        }
        *slot = Some(table);
        seg = rest.get(size..).unwrap_or(&[]);
    }
    Ok(())
}

/// Parse a DHT segment body into the DC and AC table slots.
fn parse_dht(
    mut seg: &[u8],
    dc: &mut [Option<HuffTable>; 4],
    ac: &mut [Option<HuffTable>; 4],
) -> Result<(), String> {
    while let Some((&tc_th, rest)) = seg.split_first() {
        let (tc, th) = (tc_th >> 4, usize::from(tc_th & 0x0F));
        let counts_bytes = rest.get(..16).ok_or("truncated DHT segment")?;
        let mut counts = [0u8; 16];
        counts.copy_from_slice(counts_bytes);
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 {
            return Err("invalid DHT segment (more than 256 codes)".into());
        }
        let symbols = rest.get(16..16 + total).ok_or("truncated DHT segment")?;
        let table = HuffTable::new(&counts, symbols)?;
        let slots = match tc {
            0 => &mut *dc,
            1 => &mut *ac,
            _ => return Err(format!("invalid DHT table class {tc}")),
        };
        *slots
            .get_mut(th)
            .ok_or_else(|| format!("invalid DHT table id {th}"))? = Some(table);
        seg = rest.get(16 + total..).unwrap_or(&[]);
    }
    Ok(())
}

/// Decode a baseline (SOF0) or extended (SOF1) Huffman sequential DCT JPEG with one component,
/// precision 8 or 12. Refuses images larger than `max_pixels` before allocating.
/// Never panics on any input; every failure is an Err with a short reason.
pub fn decode(data: &[u8], max_pixels: u64) -> Result<JpegImage, crate::CodecError> {
    decode_codestream(data, max_pixels).map_err(crate::CodecError::JpegExtended)
}

fn decode_codestream(data: &[u8], max_pixels: u64) -> Result<JpegImage, String> {
    if data.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return Err("not a JPEG stream (no SOI marker)".into());
    }
    let mut pos = 2;
    let mut frame: Option<Frame> = None;
    let mut quant: [Option<[u16; 64]>; 4] = [None; 4];
    let mut dc_tables: [Option<HuffTable>; 4] = [None, None, None, None];
    let mut ac_tables: [Option<HuffTable>; 4] = [None, None, None, None];
    let mut restart_interval: u32 = 0;
    loop {
        let (marker, after) =
            next_marker(data, pos).ok_or("JPEG data ended before the scan (no SOS)")?;
        pos = after;
        match marker {
            // Standalone markers: TEM, stray RSTn.
            0x01 | 0xD0..=0xD7 => continue,
            0xD8 => return Err("unexpected second SOI marker".into()),
            0xD9 => return Err("EOI marker before any scan".into()),
            _ => {}
        }
        if let Some(name) = unsupported_sof(marker) {
            return Err(format!("unsupported JPEG process: {name}"));
        }
        let len = usize::from(be16(data, pos).ok_or("truncated marker segment")?);
        if len < 2 {
            return Err(format!("invalid length {len} of marker 0x{marker:02X}"));
        }
        let end = pos.saturating_add(len);
        let seg = data
            .get(pos.saturating_add(2)..end)
            .ok_or("truncated marker segment")?;
        pos = end;
        match marker {
            0xC0 | 0xC1 => {
                if frame.is_some() {
                    return Err("more than one SOF marker".into());
                }
                frame = Some(parse_sof(seg, max_pixels)?);
            }
            0xC4 => parse_dht(seg, &mut dc_tables, &mut ac_tables)?,
            0xDB => parse_dqt(seg, &mut quant)?,
            0xDD => {
                restart_interval = u32::from(be16(seg, 0).ok_or("truncated DRI segment")?);
            }
            0xDA => {
                let frame = frame.as_ref().ok_or("SOS marker before SOF")?;
                return decode_scan(
                    data,
                    pos,
                    seg,
                    frame,
                    &quant,
                    &dc_tables,
                    &ac_tables,
                    restart_interval,
                );
            }
            // APPn, COM, DAC, DNL, JPG and anything unknown with a length: skip.
            _ => {}
        }
    }
}

/// Decode the single scan whose SOS header is `sos` and whose entropy-coded
/// data starts at `start`, producing the whole image.
#[allow(clippy::too_many_arguments)]
fn decode_scan(
    data: &[u8],
    start: usize,
    sos: &[u8],
    frame: &Frame,
    quant: &[Option<[u16; 64]>; 4],
    dc_tables: &[Option<HuffTable>; 4],
    ac_tables: &[Option<HuffTable>; 4],
    restart_interval: u32,
) -> Result<JpegImage, String> {
    let ns = *sos.first().ok_or("truncated SOS segment")?;
    if ns != 1 {
        return Err(format!(
            "unsupported JPEG scan with {ns} components (need 1)"
        ));
    }
    let selector = *sos.get(1).ok_or("truncated SOS segment")?;
    let td_ta = *sos.get(2).ok_or("truncated SOS segment")?;
    if selector != frame.component_id {
        return Err(format!("SOS component {selector} not in frame"));
    }
    let dc = dc_tables
        .get(usize::from(td_ta >> 4))
        .and_then(Option::as_ref)
        .ok_or("scan uses an undefined DC Huffman table")?;
    let ac = ac_tables
        .get(usize::from(td_ta & 0x0F))
        .and_then(Option::as_ref)
        .ok_or("scan uses an undefined AC Huffman table")?;
    let qt = quant
        .get(frame.quant_table)
        .and_then(Option::as_ref)
        .ok_or("frame uses an undefined quantization table")?;

    let width = frame.width as usize;
    let height = frame.height as usize;
    let blocks_x = width.div_ceil(8);
    let blocks_y = height.div_ceil(8);
    let total_blocks = blocks_x * blocks_y;
    let pixels = width.checked_mul(height).ok_or("JPEG image too large")?;
    let mut samples: Vec<u16> = Vec::new();
    samples
        .try_reserve_exact(pixels)
        .map_err(|_| "out of memory for JPEG image")?;
    samples.resize(pixels, 0);

    let (pass1_bits, center, max_value) = if frame.precision == 12 {
        (1, 2048, 4095)
    } else {
        (2, 128, 255)
    };
    let mut reader = BitReader::new(data, start);
    let mut coefs = [0i32; 64];
    let mut block = [0u16; 64];
    let mut pred: i32 = 0;
    let mut next_rst: u8 = 0;
    let interval = restart_interval as usize;
    for index in 0..total_blocks {
        if interval > 0 && index > 0 && index % interval == 0 {
            if reader.overran() {
                return Err("JPEG entropy-coded data truncated".into());
            }
            reader.restart(next_rst)?;
            next_rst = (next_rst + 1) & 7;
            pred = 0;
        }
        decode_block(&mut reader, dc, ac, &mut pred, &mut coefs)?;
        if reader.overran() {
            return Err("JPEG entropy-coded data truncated".into());
        }
        idct_islow(&coefs, qt, pass1_bits, center, max_value, &mut block);
        let bx = index % blocks_x;
        let by = index / blocks_x;
        let x0 = bx * 8;
        let y0 = by * 8;
        let w = (width - x0).min(8);
        let h = (height - y0).min(8);
        for (r, src) in block.chunks_exact(8).take(h).enumerate() {
            let offset = (y0 + r) * width + x0;
            if let (Some(dst), Some(src)) = (samples.get_mut(offset..offset + w), src.get(..w)) {
                dst.copy_from_slice(src);
            }
        }
    }
    Ok(JpegImage {
        width: frame.width,
        height: frame.height,
        precision: frame.precision,
        samples,
    })
}

/// Decode one 8x8 block of quantized coefficients (natural order) into
/// `coefs`, updating the DC predictor `pred`.
fn decode_block(
    reader: &mut BitReader<'_>,
    dc: &HuffTable,
    ac: &HuffTable,
    pred: &mut i32,
    coefs: &mut [i32; 64],
) -> Result<(), String> {
    *coefs = [0; 64];
    let category = reader.decode(dc)?;
    if category > 15 {
        return Err(format!("invalid DC magnitude category {category}"));
    }
    let diff = reader.receive_extend(u32::from(category));
    *pred = pred.wrapping_add(diff);
    // IJG stores coefficients as 16-bit JCOEF; mirror that for corrupt data.
    coefs[0] = i32::from(*pred as i16);
    let mut k = 1usize;
    while k < 64 {
        let rs = reader.decode(ac)?;
        let run = usize::from(rs >> 4);
        let size = u32::from(rs & 0x0F);
        if size == 0 {
            if run == 15 {
                k += 16;
                continue;
            }
            break;
        }
        k += run;
        let natural = ZIGZAG
            .get(k)
            .copied()
            .ok_or("AC coefficient index past 63")?;
        if let Some(c) = coefs.get_mut(natural) {
            *c = reader.receive_extend(size);
        }
        k += 1;
    }
    Ok(())
}

/// Fixed-point constants of `jidctint.c` (`CONST_BITS` = 13).
const CONST_BITS: u32 = 13;
/// FIX(0.298631336)
const FIX_0_298631336: i64 = 2446;
/// FIX(0.390180644)
const FIX_0_390180644: i64 = 3196;
/// FIX(0.541196100)
const FIX_0_541196100: i64 = 4433;
/// FIX(0.765366865)
const FIX_0_765366865: i64 = 6270;
/// FIX(0.899976223)
const FIX_0_899976223: i64 = 7373;
/// FIX(1.175875602)
const FIX_1_175875602: i64 = 9633;
/// FIX(1.501321110)
const FIX_1_501321110: i64 = 12299;
/// FIX(1.847759065)
const FIX_1_847759065: i64 = 15137;
/// FIX(1.961570560)
const FIX_1_961570560: i64 = 16069;
/// FIX(2.053119869)
const FIX_2_053119869: i64 = 16819;
/// FIX(2.562915447)
const FIX_2_562915447: i64 = 20995;
/// FIX(3.072711026)
const FIX_3_072711026: i64 = 25172;

/// Right shift with rounding (IJG `DESCALE`).
#[inline(always)]
fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// One 1-D 8-point IDCT of the Loeffler-Ligtenberg-Moschytz algorithm as in
/// `jidctint.c`: inputs `v[0..8]`, outputs scaled by `2^CONST_BITS` (before
/// the caller's descale), in the order 0..8.
#[inline(always)]
fn idct_1d(v: [i64; 8]) -> [i64; 8] {
    // Even part.
    let z2 = v[2];
    let z3 = v[6];
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 - z3 * FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (v[0] + v[4]) << CONST_BITS;
    let tmp1 = (v[0] - v[4]) << CONST_BITS;
    let tmp10 = tmp0 + tmp3;
    let tmp13 = tmp0 - tmp3;
    let tmp11 = tmp1 + tmp2;
    let tmp12 = tmp1 - tmp2;
    // Odd part.
    let (t0, t1, t2, t3) = (v[7], v[5], v[3], v[1]);
    let z1 = t0 + t3;
    let z2 = t1 + t2;
    let z3 = t0 + t2;
    let z4 = t1 + t3;
    let z5 = (z3 + z4) * FIX_1_175875602;
    let t0 = t0 * FIX_0_298631336;
    let t1 = t1 * FIX_2_053119869;
    let t2 = t2 * FIX_3_072711026;
    let t3 = t3 * FIX_1_501321110;
    let z1 = -z1 * FIX_0_899976223;
    let z2 = -z2 * FIX_2_562915447;
    let z3 = -z3 * FIX_1_961570560 + z5;
    let z4 = -z4 * FIX_0_390180644 + z5;
    let t0 = t0 + z1 + z3;
    let t1 = t1 + z2 + z4;
    let t2 = t2 + z2 + z3;
    let t3 = t3 + z1 + z4;
    [
        tmp10 + t3,
        tmp11 + t2,
        tmp12 + t1,
        tmp13 + t0,
        tmp13 - t0,
        tmp12 - t1,
        tmp11 - t2,
        tmp10 - t3,
    ]
}

/// Dequantize and inverse-DCT one block (IJG ISLOW), then level-shift by
/// `center` and clamp to `0..=max_value`, writing row-major samples to `out`.
fn idct_islow(
    coefs: &[i32; 64],
    quant: &[u16; 64],
    pass1_bits: u32,
    center: i64,
    max_value: i64,
    out: &mut [u16; 64],
) {
    let mut ws = [0i64; 64];
    // Pass 1: columns, dequantizing; results scaled up by 2^pass1_bits.
    for col in 0..8 {
        let q = |row: usize| i64::from(coefs[row * 8 + col]) * i64::from(quant[row * 8 + col]);
        if (1..8).all(|row| coefs[row * 8 + col] == 0) {
            let dc = q(0) << pass1_bits;
            for row in 0..8 {
                ws[row * 8 + col] = dc;
            }
            continue;
        }
        let r = idct_1d([q(0), q(1), q(2), q(3), q(4), q(5), q(6), q(7)]);
        for (row, value) in r.into_iter().enumerate() {
            ws[row * 8 + col] = descale(value, CONST_BITS - pass1_bits);
        }
    }
    // Pass 2: rows, descaling by 2^(CONST_BITS + pass1_bits + 3).
    let shift = CONST_BITS + pass1_bits + 3;
    let clamp = |x: i64| (x + center).clamp(0, max_value) as u16;
    for (row, dst) in ws.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
        if row[1..].iter().all(|&x| x == 0) {
            let value = clamp(descale(row[0], pass1_bits + 3));
            dst.fill(value);
            continue;
        }
        let r = idct_1d([
            row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
        ]);
        for (d, value) in dst.iter_mut().zip(r) {
            *d = clamp(descale(value, shift));
        }
    }
}

#[cfg(test)]
mod tests {
    //! Fixtures in `testdata/` (see `testdata/make_fixtures.py`): codestreams
    //! and reference decodes by pydicom/pylibjpeg, dcmtk (IJG) and Pillow
    //! (libjpeg-turbo).

    use super::*;

    /// JPGExtended.dcm codestream (12-bit, SOF1, 256x1024).
    const EXT: &[u8] = include_bytes!("testdata/jpgextended.jpg");
    /// pydicom 3 + pylibjpeg decode of [`EXT`].
    const EXT_PYDICOM: &[u8] = include_bytes!("testdata/jpgextended.pydicom.u16le");
    /// FNV-1a 64 of the little-endian u16 decode of [`EXT`] by dcmtk's dcmdjpeg (IJG 12-bit).
    const EXT_IJG_FNV: u64 = 0x55ea_d43f_2558_5a5c;
    /// 12-bit 130x97 phantom encoded by dcmcjpeg +ee +q 90.
    const CT12_Q90: &[u8] = include_bytes!("testdata/ct12_q90.jpg");
    /// dcmdjpeg (IJG) decode of [`CT12_Q90`].
    const CT12_Q90_REF: &[u8] = include_bytes!("testdata/ct12_q90.ijg.u16le");
    /// Same phantom at quality 3 (16-bit DQT).
    const CT12_Q3: &[u8] = include_bytes!("testdata/ct12_q3.jpg");
    /// dcmdjpeg (IJG) decode of [`CT12_Q3`].
    const CT12_Q3_REF: &[u8] = include_bytes!("testdata/ct12_q3.ijg.u16le");
    /// 8-bit 61x37 baseline (SOF0) by Pillow.
    const G8_Q75: &[u8] = include_bytes!("testdata/gray8_q75.jpg");
    /// Pillow (libjpeg-turbo) decode of [`G8_Q75`].
    const G8_Q75_REF: &[u8] = include_bytes!("testdata/gray8_q75.ref.u8");
    /// 8-bit baseline with DRI = 5 and RST markers.
    const G8_RST: &[u8] = include_bytes!("testdata/gray8_rst.jpg");
    /// Pillow decode of [`G8_RST`].
    const G8_RST_REF: &[u8] = include_bytes!("testdata/gray8_rst.ref.u8");
    /// 8-bit extended (SOF1) with a 16-bit DQT.
    const G8_Q16: &[u8] = include_bytes!("testdata/gray8_q16.jpg");
    /// Pillow decode of [`G8_Q16`].
    const G8_Q16_REF: &[u8] = include_bytes!("testdata/gray8_q16.ref.u8");

    /// Generous pixel limit for the fixtures.
    const LIMIT: u64 = 1 << 24;

    /// Little-endian u16 array from raw bytes.
    fn u16le(bytes: &[u8]) -> Vec<u16> {
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    /// (max, mean) absolute difference.
    fn diff(a: &[u16], b: &[u16]) -> (u32, f64) {
        assert_eq!(a.len(), b.len());
        let mut max = 0u32;
        let mut sum = 0u64;
        for (&x, &y) in a.iter().zip(b) {
            let d = u32::from(x.abs_diff(y));
            max = max.max(d);
            sum += u64::from(d);
        }
        (max, sum as f64 / a.len() as f64)
    }

    /// FNV-1a 64 over the little-endian bytes of `samples`.
    fn fnv(samples: &[u16]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in samples.iter().flat_map(|s| s.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    /// Offset of the SOF segment's first byte (after the marker) in `data`.
    fn find_marker(data: &[u8], marker: u8) -> usize {
        data.windows(2)
            .position(|w| w == [0xFF, marker])
            .expect("marker present")
            + 2
    }

    #[test]
    fn zigzag_is_a_permutation_in_diagonal_order() {
        let mut seen = [false; 64];
        for (k, &n) in ZIGZAG.iter().enumerate() {
            assert!(!seen[n]);
            seen[n] = true;
            if k > 0 {
                let (r0, c0) = (ZIGZAG[k - 1] / 8, ZIGZAG[k - 1] % 8);
                let (r1, c1) = (n / 8, n % 8);
                assert!(r0.abs_diff(r1) <= 1 && c0.abs_diff(c1) <= 1, "step {k}");
            }
        }
    }

    #[test]
    fn jpg_extended_matches_pydicom_and_ijg() {
        let img = decode(EXT, LIMIT).unwrap();
        assert_eq!((img.width, img.height, img.precision), (256, 1024, 12));
        let reference = u16le(EXT_PYDICOM);
        let (max, mean) = diff(&img.samples, &reference);
        eprintln!("JPGExtended vs pydicom/pylibjpeg: max {max}, mean {mean:.5}");
        assert!(max <= 1 && mean < 0.05, "max {max} mean {mean}");
        // Bit-exact with IJG libjpeg (dcmtk dcmdjpeg).
        assert_eq!(fnv(&img.samples), EXT_IJG_FNV);
        let min = img.samples.iter().min().copied();
        let top = img.samples.iter().max().copied();
        assert_eq!((min, top), (Some(0), Some(264)));
    }

    #[test]
    fn dcmtk_12bit_is_bit_exact() {
        for (name, jpeg, reference) in [
            ("q90", CT12_Q90, CT12_Q90_REF),
            ("q3 (16-bit DQT)", CT12_Q3, CT12_Q3_REF),
        ] {
            let img = decode(jpeg, LIMIT).unwrap();
            assert_eq!((img.width, img.height, img.precision), (130, 97, 12));
            let (max, mean) = diff(&img.samples, &u16le(reference));
            eprintln!("ct12 {name} vs dcmdjpeg: max {max}, mean {mean:.5}");
            assert_eq!(max, 0, "{name}: mean {mean}");
            assert!(img.samples.iter().all(|&s| s < 4096));
        }
    }

    #[test]
    fn pillow_8bit_is_bit_exact() {
        for (name, jpeg, reference) in [
            ("q75", G8_Q75, G8_Q75_REF),
            ("restart", G8_RST, G8_RST_REF),
            ("16-bit DQT", G8_Q16, G8_Q16_REF),
        ] {
            let img = decode(jpeg, LIMIT).unwrap();
            assert_eq!((img.width, img.height, img.precision), (61, 37, 8));
            let reference: Vec<u16> = reference.iter().map(|&b| u16::from(b)).collect();
            let (max, mean) = diff(&img.samples, &reference);
            eprintln!("gray8 {name} vs Pillow: max {max}, mean {mean:.5}");
            assert_eq!(max, 0, "{name}: mean {mean}");
        }
    }

    #[test]
    fn sampling_factors_do_not_change_a_single_component_image() {
        for jpeg in [EXT, CT12_Q90, G8_Q75, G8_RST] {
            let expected = decode(jpeg, LIMIT).unwrap();
            let sof = find_marker(
                jpeg,
                if jpeg == EXT || jpeg == CT12_Q90 {
                    0xC1
                } else {
                    0xC0
                },
            );
            for hv in [0x22u8, 0x21, 0x12, 0x44] {
                let mut patched = jpeg.to_vec();
                patched[sof + 2 + 7] = hv;
                assert_eq!(
                    decode(&patched, LIMIT).unwrap(),
                    expected,
                    "sampling {hv:02x}"
                );
            }
        }
    }

    #[test]
    fn sequential_scan_with_se_zero_is_tolerated() {
        // JPEG-lossy.dcm is JPGExtended.dcm with Se = 0 in its SOS, as IJG tolerates.
        let expected = decode(EXT, LIMIT).unwrap();
        let sos = find_marker(EXT, 0xDA);
        let mut patched = EXT.to_vec();
        assert_eq!(patched[sos + 2 + 4], 0x3F);
        patched[sos + 2 + 4] = 0;
        assert_eq!(decode(&patched, LIMIT).unwrap(), expected);
    }

    #[test]
    fn fill_bytes_and_trailing_data_are_accepted() {
        let expected = decode(G8_Q75, LIMIT).unwrap();
        // Fill bytes before the DHT marker, and the stream without EOI.
        let dht = find_marker(G8_Q75, 0xC4) - 2;
        let mut filled = G8_Q75[..dht].to_vec();
        filled.extend_from_slice(&[0xFF, 0xFF, 0xFF]);
        filled.extend_from_slice(&G8_Q75[dht..]);
        assert_eq!(decode(&filled, LIMIT).unwrap(), expected);
        assert_eq!(
            decode(&G8_Q75[..G8_Q75.len() - 2], LIMIT).unwrap(),
            expected
        );
        let mut padded = G8_Q75.to_vec();
        padded.extend_from_slice(&[0xFF, 0, 0, 0]);
        assert_eq!(decode(&padded, LIMIT).unwrap(), expected);
    }

    #[test]
    fn unsupported_processes_are_refused() {
        let sof = find_marker(G8_Q75, 0xC0) - 1;
        for (code, word) in [
            (0xC2u8, "progressive"),
            (0xC3, "lossless"),
            (0xC9, "arithmetic"),
            (0xC5, "hierarchical"),
        ] {
            let mut patched = G8_Q75.to_vec();
            patched[sof] = code;
            let err = decode(&patched, LIMIT).unwrap_err();
            assert!(err.to_string().contains(word), "{err}");
        }
        // Three components.
        let rgb = [
            0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8, 0, 8, 0, 8, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0,
        ];
        assert!(
            decode(&rgb, LIMIT)
                .unwrap_err()
                .to_string()
                .contains("components")
        );
        // 16-bit precision.
        let mut p16 = G8_Q75.to_vec();
        p16[sof + 3] = 16;
        assert!(
            decode(&p16, LIMIT)
                .unwrap_err()
                .to_string()
                .contains("precision")
        );
        assert!(decode(b"", LIMIT).is_err());
        assert!(decode(b"\x89PNG\r\n", LIMIT).is_err());
    }

    #[test]
    fn pixel_limit_is_enforced() {
        let err = decode(EXT, 256 * 1024 - 1).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        assert!(decode(EXT, 256 * 1024).is_ok());
    }

    #[test]
    fn truncated_streams_fail_cleanly() {
        for jpeg in [EXT, CT12_Q90, CT12_Q3, G8_Q75, G8_RST, G8_Q16] {
            let expected = decode(jpeg, LIMIT).unwrap();
            // Position of the final EOI marker: everything before it is needed.
            let eoi = jpeg.len() - jpeg.iter().rev().position(|&b| b == 0xD9).unwrap() - 1;
            let eoi = jpeg[..eoi].iter().rposition(|&b| b != 0xFF).unwrap() + 1;
            // The large 12-bit fixture is slow in debug builds: sample it more sparsely.
            let (step, tail) = if jpeg == EXT {
                (397, 6)
            } else {
                ((jpeg.len() / 250).max(1), 24)
            };
            let lengths = (0..jpeg.len())
                .step_by(step)
                .chain(eoi.saturating_sub(tail)..jpeg.len());
            for len in lengths {
                match decode(&jpeg[..len], LIMIT) {
                    Ok(img) => {
                        assert!(len >= eoi, "truncated at {len} of {} decoded", jpeg.len());
                        assert_eq!(img, expected);
                    }
                    Err(e) => assert!(len < eoi, "full scan at {len} refused: {e}"),
                }
            }
        }
    }

    /// Small deterministic xorshift generator for the corruption tests.
    struct Rng(u64);

    impl Rng {
        /// Next pseudo-random value.
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Decoding must not panic; a success must be a well-formed image.
    fn check_no_panic(data: &[u8]) {
        if let Ok(img) = decode(data, LIMIT) {
            assert_eq!(
                img.samples.len() as u64,
                u64::from(img.width) * u64::from(img.height)
            );
            let max = 1u16 << img.precision;
            assert!(img.samples.iter().all(|&s| s < max));
        }
    }

    #[test]
    fn corrupted_streams_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for jpeg in [EXT, CT12_Q90, CT12_Q3, G8_Q75, G8_RST, G8_Q16] {
            let header = find_marker(jpeg, 0xDA) + 10;
            let rounds = if jpeg == EXT { 16 } else { 150 };
            for i in 0..rounds {
                let mut data = jpeg.to_vec();
                // Half the mutations hit the headers, the rest anywhere.
                let span = if i % 2 == 0 { header } else { data.len() };
                for _ in 0..1 + rng.next() % 4 {
                    let at = (rng.next() % span as u64) as usize;
                    if rng.next().is_multiple_of(3) {
                        data[at] = rng.next() as u8;
                    } else {
                        data[at] ^= 1 << (rng.next() % 8);
                    }
                }
                check_no_panic(&data);
            }
        }
        // Pure noise, with and without an SOI prefix, and tables-then-noise.
        for i in 0..300 {
            let len = (rng.next() % 2000) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if i % 2 == 0 && data.len() >= 2 {
                data[0] = 0xFF;
                data[1] = 0xD8;
            }
            check_no_panic(&data);
            let sos = find_marker(G8_Q75, 0xDA) + 10;
            let mut framed = G8_Q75[..sos].to_vec();
            framed.extend_from_slice(&data);
            check_no_panic(&framed);
        }
    }

    #[test]
    #[ignore = "timing; run with --release -- --ignored --nocapture"]
    fn decode_speed() {
        let start = std::time::Instant::now();
        let n = 50;
        for _ in 0..n {
            decode(EXT, LIMIT).unwrap();
        }
        eprintln!("JPGExtended 256x1024: {:?} per decode", start.elapsed() / n);
    }
}
