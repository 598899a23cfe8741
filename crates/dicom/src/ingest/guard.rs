//! Structural pre-check of a DICOM stream: every length field must fit in the
//! bytes that are actually there, before any parser allocates for it.
//!
//! Why this exists: dicom-rs (0.10) reserves and zero-fills a value buffer of
//! the declared length before reading it, so a 1 KB file declaring a 4 GB
//! element makes it touch 4 GB of memory (in a browser tab: an out-of-memory
//! crash). No DICOM library offers a bounded mode, so we walk the element
//! headers once (cheap: values are skipped, not read) and refuse the file with a
//! typed error naming the element if any length is absurd or the nesting is
//! deeper than a sane limit.

use std::io::Read;

use dicom_core::dictionary::DataDictionary;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

/// Deepest sequence nesting accepted (real data rarely exceeds 5).
const MAX_DEPTH: usize = 32;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQ_END: Tag = Tag(0xFFFE, 0xE0DD);

/// How the data set is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Encoding {
    pub explicit: bool,
    pub big_endian: bool,
}

impl Encoding {
    /// Encoding of a transfer syntax UID (`None` for deflated or unknown ones
    /// that are checked after inflating).
    pub fn of(ts: &str) -> Encoding {
        match ts {
            "1.2.840.10008.1.2" => Encoding {
                explicit: false,
                big_endian: false,
            },
            "1.2.840.10008.1.2.2" => Encoding {
                explicit: true,
                big_endian: true,
            },
            _ => Encoding {
                explicit: true,
                big_endian: false,
            },
        }
    }
}

/// Size of one value of a fixed-size binary VR (`None` for the others).
fn binary_unit(vr: VR) -> Option<u32> {
    match vr {
        VR::US | VR::SS | VR::OW => Some(2),
        VR::UL | VR::SL | VR::FL | VR::AT | VR::OL | VR::OF => Some(4),
        VR::FD | VR::SV | VR::UV | VR::OD | VR::OV => Some(8),
        _ => None,
    }
}

struct Walker<'a> {
    b: &'a [u8],
    enc: Encoding,
}

type R<T> = std::result::Result<T, String>;

impl Walker<'_> {
    fn u16(&self, at: usize) -> R<u16> {
        let s = self
            .b
            .get(at..at + 2)
            .ok_or_else(|| format!("truncated at byte {at}"))?;
        Ok(if self.enc.big_endian {
            u16::from_be_bytes([s[0], s[1]])
        } else {
            u16::from_le_bytes([s[0], s[1]])
        })
    }

    fn u32(&self, at: usize) -> R<u32> {
        let s = self
            .b
            .get(at..at + 4)
            .ok_or_else(|| format!("truncated at byte {at}"))?;
        Ok(if self.enc.big_endian {
            u32::from_be_bytes([s[0], s[1], s[2], s[3]])
        } else {
            u32::from_le_bytes([s[0], s[1], s[2], s[3]])
        })
    }

    /// Tag at `at`; item tags are always little endian in LE streams and big in BE.
    fn tag(&self, at: usize) -> R<Tag> {
        Ok(Tag(self.u16(at)?, self.u16(at + 2)?))
    }

    /// Walk data set elements in `pos..end` (or until an item delimiter when
    /// `until_delimiter`). Returns the position after the last element (after
    /// the delimiter, if one ended the walk).
    fn dataset(&self, mut pos: usize, end: usize, depth: usize, until_delimiter: bool) -> R<usize> {
        if depth > MAX_DEPTH {
            return Err(format!("sequences nested deeper than {MAX_DEPTH} levels"));
        }
        while pos < end {
            if end - pos < 8 {
                return if until_delimiter {
                    Err(format!("item without delimiter (truncated at byte {pos})"))
                } else if depth > 0 {
                    // Inside an item of defined length dicom-rs reads the next
                    // header across the item's end and goes out of step
                    // (cargo-fuzz: 1.5 GB for an 865-byte file).
                    Err(format!(
                        "item ends {} bytes into an element header at byte {pos}",
                        end - pos
                    ))
                } else {
                    // trailing padding shorter than a header, at the end of the file
                    Ok(end)
                };
            }
            let tag = self.tag(pos)?;
            if tag == ITEM_END {
                return if until_delimiter {
                    Ok(pos + 8)
                } else {
                    Err(format!("unexpected item delimiter at byte {pos}"))
                };
            }
            if tag.0 == 0xFFFE {
                // Items and delimiters belong in sequences. dicom-rs reads such a
                // tag as an item header wherever it is and goes out of step (a
                // 56-byte DIMSE command made it zero-fill 2.6 GB; cargo-fuzz).
                return Err(format!("item tag {tag} outside a sequence at byte {pos}"));
            }
            let (vr, len, value_at) = self.header(tag, pos)?;
            if len != UNDEFINED
                && let Some(unit) = vr.and_then(binary_unit)
                && len % unit != 0
            {
                // dicom-rs reads whole numbers and leaves the rest: the stream
                // would be parsed out of step from here on (and could then
                // "declare" any length). PS3.5 7.1.1: lengths are whole values.
                let vr = vr.map_or_else(String::new, |v| format!(" {v:?}"));
                return Err(format!(
                    "element {tag}{vr} has length {len}, not a multiple of its {unit}-byte values"
                ));
            }
            let remaining = end - value_at.min(end);
            let is_seq = vr == Some(VR::SQ) || (len == UNDEFINED && tag != Tag(0x7FE0, 0x0010));
            if len == UNDEFINED {
                if tag == Tag(0x7FE0, 0x0010) || vr == Some(VR::OB) || vr == Some(VR::OW) {
                    pos = self.fragments(value_at, end, tag)?;
                } else if is_seq {
                    pos = self.sequence(value_at, end, depth + 1, None)?;
                } else {
                    return Err(format!(
                        "element {tag} has undefined length but is not a sequence"
                    ));
                }
                continue;
            }
            if len as usize > remaining {
                return Err(format!(
                    "element {tag} declares {len} bytes but only {remaining} remain"
                ));
            }
            let next = value_at + len as usize;
            if is_seq {
                self.sequence(value_at, next, depth + 1, Some(next))?;
            }
            pos = next;
        }
        if until_delimiter {
            return Err("item without delimiter".to_string());
        }
        Ok(pos)
    }

    /// Element header at `pos`: VR (explicit, or from the dictionary for
    /// implicit), value length and where the value starts.
    fn header(&self, tag: Tag, pos: usize) -> R<(Option<VR>, u32, usize)> {
        if !self.enc.explicit || tag.0 == 0xFFFE {
            let vr = if tag.0 == 0xFFFE {
                None
            } else {
                StandardDataDictionary.by_tag(tag).map(|e| e.vr.relaxed())
            };
            return Ok((vr, self.u32(pos + 4)?, pos + 8));
        }
        let code = self
            .b
            .get(pos + 4..pos + 6)
            .ok_or("truncated element header")?;
        let vr = VR::from_binary([code[0], code[1]]);
        match vr {
            Some(
                VR::OB
                | VR::OD
                | VR::OF
                | VR::OL
                | VR::OV
                | VR::OW
                | VR::SQ
                | VR::SV
                | VR::UC
                | VR::UN
                | VR::UR
                | VR::UT
                | VR::UV,
            ) => Ok((vr, self.u32(pos + 8)?, pos + 12)),
            Some(_) => Ok((vr, self.u16(pos + 6)? as u32, pos + 8)),
            None => Err(format!("element {tag} has an invalid VR {:?}", code)),
        }
    }

    /// Walk the items of a sequence starting at `pos`. With `defined_end` the
    /// sequence ends there; otherwise at a sequence delimiter.
    fn sequence(
        &self,
        mut pos: usize,
        end: usize,
        depth: usize,
        defined_end: Option<usize>,
    ) -> R<usize> {
        if depth > MAX_DEPTH {
            return Err(format!("sequences nested deeper than {MAX_DEPTH} levels"));
        }
        // A sequence of unknown encoding (implicit VR UN) is parsed as implicit VR LE.
        let end = defined_end.unwrap_or(end);
        while pos + 8 <= end {
            let tag = self.tag(pos)?;
            let len = self.u32(pos + 4)?;
            if tag == SEQ_END {
                return Ok(pos + 8);
            }
            if tag != ITEM {
                return Err(format!(
                    "expected an item in a sequence at byte {pos}, found {tag}"
                ));
            }
            let value_at = pos + 8;
            if len == UNDEFINED {
                pos = self.dataset(value_at, end, depth, true)?;
            } else {
                if len as usize > end - value_at {
                    return Err(format!(
                        "sequence item declares {len} bytes but only {} remain",
                        end - value_at
                    ));
                }
                self.dataset(value_at, value_at + len as usize, depth, false)?;
                pos = value_at + len as usize;
            }
        }
        if defined_end.is_some() {
            if pos < end {
                // dicom-rs reads an item header there anyway, past the end of
                // the sequence, and goes out of step (cargo-fuzz: a sequence
                // of length 1 made it zero-fill 2.4 GB).
                return Err(format!(
                    "sequence ends {} bytes into an item header at byte {pos}",
                    end - pos
                ));
            }
            Ok(end)
        } else {
            Err("sequence without delimiter (truncated)".into())
        }
    }

    /// Encapsulated pixel data: items of raw fragments until a sequence delimiter.
    fn fragments(&self, mut pos: usize, end: usize, tag: Tag) -> R<usize> {
        while pos + 8 <= end {
            let t = self.tag(pos)?;
            let len = self.u32(pos + 4)?;
            if t == SEQ_END {
                return Ok(pos + 8);
            }
            if t != ITEM || len == UNDEFINED {
                return Err(format!("malformed fragment in {tag} at byte {pos}"));
            }
            if len as usize > end - pos - 8 {
                return Err(format!(
                    "pixel data fragment declares {len} bytes but only {} remain",
                    end - pos - 8
                ));
            }
            pos += 8 + len as usize;
        }
        Err(format!(
            "encapsulated {tag} is truncated (no sequence delimiter)"
        ))
    }
}

/// Check a whole Part 10 file (`start` = offset of the meta group, after "DICM"),
/// or a bare data set with the given transfer syntax (`meta_at = None`).
/// `max_inflated` bounds a deflated data set once inflated.
pub(crate) fn check(
    bytes: &[u8],
    meta_at: Option<usize>,
    bare_ts: &str,
    max_inflated: u64,
) -> R<()> {
    let (data_at, ts) = match meta_at {
        None => (0, bare_ts.to_string()),
        Some(m) => {
            let w = Walker {
                b: bytes,
                enc: Encoding {
                    explicit: true,
                    big_endian: false,
                },
            };
            // The meta group as dicom-rs reads it: (0002,0000) first, then
            // elements until its value (the group length) is used up. The data
            // set starts there, so the guard must check from the same byte.
            let first = w.tag(m)?;
            if first != Tag(0x0002, 0x0000) {
                return Err(format!(
                    "file meta starts with {first}, not the group length (0002,0000)"
                ));
            }
            let (_, gl_len, gl_at) = w.header(first, m)?;
            if gl_len != 4 {
                return Err(format!("file meta group length has length {gl_len}, not 4"));
            }
            let group_length = w.u32(gl_at)? as usize;
            let mut pos = gl_at + 4;
            let end = pos
                .checked_add(group_length)
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| format!("file meta group length {group_length} exceeds the file"))?;
            let mut ts = String::new();
            while pos < end {
                let tag = w.tag(pos)?;
                let (_, len, value_at) = w.header(tag, pos)?;
                if len == UNDEFINED || len as usize > end - value_at.min(end) {
                    return Err(format!(
                        "file meta element {tag} (length {len}) overruns the meta group length {group_length}"
                    ));
                }
                if tag == Tag(0x0002, 0x0010) {
                    ts = String::from_utf8_lossy(&bytes[value_at..value_at + len as usize])
                        .trim_end_matches(['\0', ' '])
                        .to_string();
                }
                pos = value_at + len as usize;
            }
            (pos, ts)
        }
    };
    if ts == "1.2.840.10008.1.2.1.99" {
        // Deflated: inflate with a cap and check the inflated data set.
        let mut inflated = Vec::new();
        let mut dec = flate2::read::DeflateDecoder::new(&bytes[data_at.min(bytes.len())..])
            .take(max_inflated + 1);
        dec.read_to_end(&mut inflated)
            .map_err(|e| format!("deflated data set is corrupt: {e}"))?;
        if inflated.len() as u64 > max_inflated {
            return Err(format!(
                "deflated data set inflates beyond {max_inflated} bytes"
            ));
        }
        let w = Walker {
            b: &inflated,
            enc: Encoding::of("1.2.840.10008.1.2.1"),
        };
        return w.dataset(0, inflated.len(), 0, false).map(|_| ());
    }
    let w = Walker {
        b: bytes,
        enc: Encoding::of(&ts),
    };
    w.dataset(data_at, bytes.len(), 0, false).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit_le(elements: &[(u16, u16, &[u8; 2], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (g, e, vr, v) in elements {
            out.extend(g.to_le_bytes());
            out.extend(e.to_le_bytes());
            out.extend(*vr);
            out.extend((v.len() as u16).to_le_bytes());
            out.extend(*v);
        }
        out
    }

    #[test]
    fn refuses_a_group_length_with_a_partial_value() {
        // Found by cargo-fuzz: (0000,0000) UL with 249 bytes. dicom-rs read 248
        // and went out of step into a "4 GB" element, zero-filling 4 GB.
        let b = include_bytes!("testdata/fuzz/oom-acf1df2373e38191a34bba1998ad0e3940ca61e0");
        let e = check(b, None, "1.2.840.10008.1.2", 1 << 20).unwrap_err();
        assert!(e.contains("not a multiple"), "{e}");
    }

    /// The first file of a fuzz input (the `ingest` fuzz target splits its
    /// input into files at 0xA5 bytes), checked to be a Part 10 file.
    fn first_fuzz_file(input: &[u8]) -> &[u8] {
        let file = input.split(|&b| b == 0xA5).next().unwrap_or_default();
        assert_eq!(file.get(128..132), Some(&b"DICM"[..]));
        file
    }

    #[test]
    fn refuses_a_corrupt_deflate_stream() {
        // Found by cargo-fuzz: a Deflated data set whose stream is corrupt
        // ("invalid distance too far back"). miniz_oxide inflated it without
        // error and dicom-rs then zero-filled a 3.3 GB value; zlib-rs refuses it.
        let file = first_fuzz_file(include_bytes!(
            "testdata/fuzz/oom-4a8552a2cd945ad838076ad371c1c4152450d0ee"
        ));
        // Refused before dicom-rs sees it (its meta group length is also wrong).
        assert!(check(file, Some(132), "", 1 << 30).is_err());
    }

    #[test]
    fn refuses_a_meta_group_length_that_disagrees_with_its_elements() {
        // Found by cargo-fuzz: dicom-rs starts the (deflated) data set where the
        // meta group length says; the guard used to walk group 0002 instead,
        // checked other bytes, and dicom-rs then zero-filled a 4 GB value.
        let file = first_fuzz_file(include_bytes!(
            "testdata/fuzz/oom-2a625bd82690570ad01899fb710e7cd5f50dc4b8"
        ));
        assert!(check(file, Some(132), "", 1 << 30).is_err());
    }

    #[test]
    fn accepts_consistent_and_refuses_absurd_lengths() {
        let ok = explicit_le(&[
            (0x0008, 0x0060, b"CS", b"CT"),
            (0x0010, 0x0010, b"PN", b"A^B "),
        ]);
        assert!(check(&ok, None, "1.2.840.10008.1.2.1", 1 << 20).is_ok());
        // An OW element declaring 2 GB in a 40-byte stream.
        let mut bad = ok.clone();
        bad.extend([0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0]);
        bad.extend(0x7FFF_FFF0u32.to_le_bytes());
        bad.extend([0u8; 16]);
        let e = check(&bad, None, "1.2.840.10008.1.2.1", 1 << 20).unwrap_err();
        assert!(e.contains("(7FE0,0010)") && e.contains("2147483632"), "{e}");
    }

    #[test]
    fn refuses_item_tags_outside_a_sequence() {
        // Found by the server's dimse_pdu fuzz target: a command set starting
        // with (FFFE,0000) of length 43. The guard skipped its value; dicom-rs
        // read it as an item header, parsed its value as elements and then
        // zero-filled a 2.6 GB "length".
        let mut b = vec![0xFE, 0xFF, 0x00, 0x00, 43, 0, 0, 0];
        b.extend([0x26, 0x00, 0x00, 0x00, 0x4E, 0x00, 0x00, 0x00]);
        b.resize(56, 0);
        let e = check(&b, None, "1.2.840.10008.1.2", 1 << 20).unwrap_err();
        assert!(e.contains("outside a sequence"), "{e}");
    }

    #[test]
    fn refuses_a_sequence_too_short_for_an_item() {
        // Found by cargo-fuzz (ingest): SensitiveContentCodeSequence (0008,001D)
        // of defined length 1, followed by an item header. The guard skipped
        // the one byte; dicom-rs read the item, then a 2.4 GB "element".
        let b = [
            0x08, 0x00, 0x1d, 0x00, 0x01, 0x00, 0x00, 0x00, 0xfe, 0xff, 0x00, 0xe0, 0x2a, 0x01,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x53, 0x00, 0x00, 0x94, 0x00,
        ];
        let e = check(&b, None, "1.2.840.10008.1.2", 1 << 20).unwrap_err();
        assert!(e.contains("into an item header"), "{e}");
    }

    #[test]
    fn refuses_an_item_that_ends_inside_an_element_header() {
        // Found by cargo-fuzz (ingest): an item of 54 bytes holding one element
        // of 8 + 45 bytes. The guard took the byte left as padding; dicom-rs
        // read a header across the item's end and zero-filled 1.5 GB.
        let mut item = vec![0x08, 0x00, 0x00, 0x01, b'S', b'H', 45, 0];
        item.extend([b'1'; 45]);
        item.push(0x08);
        let mut b = vec![0x08, 0x00, 0x15, 0x92, b'S', b'Q', 0, 0];
        b.extend((8 + item.len() as u32).to_le_bytes());
        b.extend([0xFE, 0xFF, 0x00, 0xE0]);
        b.extend((item.len() as u32).to_le_bytes());
        b.extend(&item);
        let e = check(&b, None, "1.2.840.10008.1.2.1", 1 << 20).unwrap_err();
        assert!(e.contains("into an element header"), "{e}");
        // The same padding byte at the end of a file is tolerated.
        let mut tail = explicit_le(&[(0x0008, 0x0060, b"CS", b"CT")]);
        tail.push(0);
        assert!(check(&tail, None, "1.2.840.10008.1.2.1", 1 << 20).is_ok());
    }

    #[test]
    fn refuses_deep_nesting() {
        // (0008,1140) SQ undefined length, nested 40 times.
        let mut b = Vec::new();
        for _ in 0..40 {
            b.extend([
                0x08, 0x00, 0x40, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
            ]);
            b.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        let e = check(&b, None, "1.2.840.10008.1.2.1", 1 << 20).unwrap_err();
        assert!(e.contains("nested"), "{e}");
    }
}
