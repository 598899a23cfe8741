//! Bytes → parsed DICOM instance with the header attributes the pipeline needs.
//!
//! Files with a preamble and file meta group are read as Part 10. Files
//! without them are accepted when the first bytes make the encoding
//! unambiguous (a group 0008 tag in little endian, with or without an explicit VR).

use std::io::Cursor;

use dicom_core::Tag;
use dicom_core::header::HasLength;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::mem::InMemElement;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::Limits;
use crate::error::{Error, Result};
use ct_triage_analysis::volume::Vec3;

/// Implicit VR Little Endian.
pub(crate) const TS_IMPLICIT_LE: &str = "1.2.840.10008.1.2";
/// Explicit VR Little Endian.
pub(crate) const TS_EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// The error for a buffer the guard or the parser refused.
fn not_dicom(name: &str, message: String) -> Error {
    if message.contains("(7FE0,0010)") {
        // The data set parsed up to the pixel data, which is cut short.
        Error::pixels(
            name,
            format!("truncated or unreadable Pixel Data: {message}"),
        )
    } else {
        Error::NotDicom {
            file: name.to_string(),
            message,
        }
    }
}

fn check_size(name: &str, bytes: &[u8], limits: &Limits) -> Result<()> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(Error::LimitExceeded {
            file: name.to_string(),
            what: "file size (bytes)".into(),
            value: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    Ok(())
}

/// Where the file meta group of a Part 10 buffer starts: after the preamble
/// and `DICM` (132), after a bare `DICM` (4), or `None` without the marker.
fn meta_offset(bytes: &[u8]) -> Option<usize> {
    if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        Some(132)
    } else if bytes.len() >= 4 && &bytes[0..4] == b"DICM" {
        Some(4)
    } else {
        None
    }
}

/// The length guard of a Part 10 buffer (see [`super::check_part10`]).
pub(crate) fn check_part10(name: &str, bytes: &[u8], limits: &Limits) -> Result<()> {
    check_size(name, bytes, limits)?;
    let meta_at = meta_offset(bytes).ok_or_else(|| {
        not_dicom(
            name,
            "no DICM marker: not a DICOM Part 10 file (PS3.10 §7.1)".into(),
        )
    })?;
    super::guard::check(bytes, Some(meta_at), "", limits.max_file_bytes)
        .map_err(|m| not_dicom(name, m))
}

/// The length guard of a bare data set (see [`super::check_dataset`]).
pub(crate) fn check_dataset(
    name: &str,
    bytes: &[u8],
    transfer_syntax: &str,
    limits: &Limits,
) -> Result<()> {
    check_size(name, bytes, limits)?;
    let ts = transfer_syntax.trim_end_matches(['\0', ' ']);
    if TransferSyntaxRegistry.get(ts).is_none() {
        return Err(not_dicom(name, format!("transfer syntax {ts:?} unknown")));
    }
    super::guard::check(bytes, None, ts, limits.max_file_bytes).map_err(|m| not_dicom(name, m))
}

/// Parse a buffer into a DICOM object, refusing oversized input first.
pub(crate) fn open(name: &str, bytes: &[u8], limits: &Limits) -> Result<DefaultDicomObject> {
    check_size(name, bytes, limits)?;
    let not_dicom = |message: String| not_dicom(name, message);
    if let Some(meta_at) = meta_offset(bytes) {
        super::guard::check(bytes, Some(meta_at), "", limits.max_file_bytes).map_err(&not_dicom)?;
        let preamble = if meta_at == 132 {
            ReadPreamble::Always
        } else {
            ReadPreamble::Never
        };
        return OpenFileOptions::new()
            .read_preamble(preamble)
            .from_reader(Cursor::new(bytes))
            .map_err(|e| not_dicom(chain(&e)));
    }
    // No preamble, no magic: a raw data set. Accept it only when unambiguous.
    let ts = sniff_raw_dataset(bytes).ok_or_else(|| {
        not_dicom(
            "no DICM marker and the first bytes are not a little-endian DICOM data set".into(),
        )
    })?;
    super::guard::check(bytes, None, ts, limits.max_file_bytes).map_err(&not_dicom)?;
    let ts_entry = TransferSyntaxRegistry
        .get(ts)
        .ok_or_else(|| not_dicom(format!("transfer syntax {ts} unknown")))?;
    let obj = InMemDicomObject::read_dataset_with_ts(Cursor::new(bytes), ts_entry)
        .map_err(|e| not_dicom(chain(&e)))?;
    let sop_class = string_of(&obj, tags::SOP_CLASS_UID).unwrap_or_default();
    let sop_instance = string_of(&obj, tags::SOP_INSTANCE_UID).unwrap_or_default();
    if sop_instance.is_empty() {
        return Err(not_dicom(
            "raw data set without file meta has no SOP Instance UID".into(),
        ));
    }
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop_instance)
        .transfer_syntax(ts)
        .build()
        .map_err(|e| not_dicom(chain(&e)))?;
    Ok(obj.with_exact_meta(meta))
}

/// Recognise a data set without preamble or meta: it must start with a tag in
/// group 0x0008 (little endian) whose element number is small.
fn sniff_raw_dataset(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() < 8 {
        return None;
    }
    let group = u16::from_le_bytes([bytes[0], bytes[1]]);
    let element = u16::from_le_bytes([bytes[2], bytes[3]]);
    if group != 0x0008 || element > 0x0100 {
        return None;
    }
    let vr = &bytes[4..6];
    let looks_explicit = vr.iter().all(|b| b.is_ascii_uppercase())
        && dicom_core::VR::from_binary([vr[0], vr[1]]).is_some();
    Some(if looks_explicit {
        TS_EXPLICIT_LE
    } else {
        TS_IMPLICIT_LE
    })
}

/// Render an error and its sources on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// Trimmed string value of an attribute, `None` when absent or empty.
pub(crate) fn string_of(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.get(tag)?;
    let s = e.value().to_str().ok()?;
    let t = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!t.is_empty()).then(|| t.to_string())
}

/// All values of a multi-valued string attribute (e.g. ImageType), upper-cased.
pub(crate) fn strings_of(obj: &InMemDicomObject, tag: Tag) -> Vec<String> {
    string_of(obj, tag)
        .map(|s| {
            s.split('\\')
                .map(|p| p.trim().to_ascii_uppercase())
                .collect()
        })
        .unwrap_or_default()
}

/// Numeric values of a decimal/integer attribute; `Ok(None)` when absent.
pub(crate) fn floats_of(
    obj: &InMemDicomObject,
    tag: Tag,
    file: &str,
    keyword: &str,
) -> Result<Option<Vec<f64>>> {
    let Some(e) = obj.get(tag) else {
        return Ok(None);
    };
    if e.is_empty() {
        return Ok(None);
    }
    let v = e
        .value()
        .to_multi_float64()
        .map_err(|err| Error::attr(file, keyword, format!("is not numeric: {err}")))?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::attr(file, keyword, "holds a non-finite number"));
    }
    Ok(Some(v))
}

/// First numeric value of an attribute, `Ok(None)` when absent.
pub(crate) fn float_of(
    obj: &InMemDicomObject,
    tag: Tag,
    file: &str,
    keyword: &str,
) -> Result<Option<f64>> {
    Ok(floats_of(obj, tag, file, keyword)?.and_then(|v| v.first().copied()))
}

/// Integer value of an attribute, `Ok(None)` when absent.
pub(crate) fn int_of(
    obj: &InMemDicomObject,
    tag: Tag,
    file: &str,
    keyword: &str,
) -> Result<Option<i64>> {
    let Some(e) = obj.get(tag) else {
        return Ok(None);
    };
    if e.is_empty() {
        return Ok(None);
    }
    e.value()
        .to_int::<i64>()
        .map(Some)
        .map_err(|err| Error::attr(file, keyword, format!("is not an integer: {err}")))
}

/// Items of a sequence attribute (empty when absent or not a sequence).
pub(crate) fn items_of(obj: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    obj.get(tag)
        .and_then(|e: &InMemElement| e.items())
        .unwrap_or(&[])
}

/// Exactly `N` numbers, or a typed error naming the attribute.
pub(crate) fn fixed<const N: usize>(
    v: Option<Vec<f64>>,
    file: &str,
    keyword: &str,
) -> Result<Option<[f64; N]>> {
    match v {
        None => Ok(None),
        Some(v) if v.len() >= N => {
            let mut out = [0.0; N];
            out.copy_from_slice(&v[..N]);
            Ok(Some(out))
        }
        Some(v) => Err(Error::attr(
            file,
            keyword,
            format!("has {} values, expected {N}", v.len()),
        )),
    }
}

/// Normalise an orientation pair; refuses degenerate or non-orthogonal cosines.
pub(crate) fn orientation(v: [f64; 6], file: &str) -> Result<[Vec3; 2]> {
    use ct_triage_analysis::volume::{dot, norm};
    let r = [v[0], v[1], v[2]];
    let c = [v[3], v[4], v[5]];
    let (nr, nc) = (norm(r), norm(c));
    if !(0.5..1.5).contains(&nr) || !(0.5..1.5).contains(&nc) {
        return Err(Error::attr(
            file,
            "ImageOrientationPatient",
            "direction cosines are not unit vectors",
        ));
    }
    let r = r.map(|x| x / nr);
    let c = c.map(|x| x / nc);
    if dot(r, c).abs() > 0.05 {
        return Err(Error::attr(
            file,
            "ImageOrientationPatient",
            "row and column cosines are not orthogonal",
        ));
    }
    Ok([r, c])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Limits;

    /// A Part 10 buffer: preamble, `DICM`, a meta group (explicit VR LE) and `dataset`.
    fn part10(dataset: &[u8]) -> Vec<u8> {
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
            .media_storage_sop_instance_uid("1.2.3.4")
            .transfer_syntax(TS_EXPLICIT_LE)
            .implementation_class_uid("1.2.3")
            .build()
            .unwrap();
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        meta.write(&mut out).unwrap();
        out.extend_from_slice(dataset);
        out
    }

    /// (0008,0060) CS "CT" in explicit VR little endian.
    const MODALITY_CT: [u8; 10] = [0x08, 0x00, 0x60, 0x00, b'C', b'S', 2, 0, b'C', b'T'];

    #[test]
    fn check_part10_accepts_a_consistent_file_and_names_an_absurd_length() {
        let limits = Limits::default();
        let ok = part10(&MODALITY_CT);
        check_part10("ok.dcm", &ok, &limits).unwrap();
        // The attack on the server's SCP: a tiny data set whose OB element
        // declares 3.75 GiB (dicom-object would zero-fill all of it).
        let mut bad = MODALITY_CT.to_vec();
        bad.extend([0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0]);
        bad.extend(0xF000_0000u32.to_le_bytes());
        bad.extend([0u8; 16]);
        let e = check_part10("bomb.dcm", &part10(&bad), &limits).unwrap_err();
        assert_eq!(e.code(), "not_dicom");
        let msg = e.to_string();
        assert!(
            msg.contains("bomb.dcm") && msg.contains("(0009,1010)"),
            "{msg}"
        );
        assert!(msg.contains("4026531840"), "{msg}");
    }

    #[test]
    fn check_dataset_guards_a_bare_data_set_in_its_transfer_syntax() {
        let limits = Limits::default();
        check_dataset("ok", &MODALITY_CT, TS_EXPLICIT_LE, &limits).unwrap();
        // Implicit VR: the same element is read with another layout and overruns.
        let e = check_dataset("ok", &MODALITY_CT, TS_IMPLICIT_LE, &limits).unwrap_err();
        assert_eq!(e.code(), "not_dicom");
        // (7FE0,0010) OW declaring 2 GiB after a 10-byte element.
        let mut bad = MODALITY_CT.to_vec();
        bad.extend([0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0]);
        bad.extend(0x8000_0000u32.to_le_bytes());
        let e = check_dataset("px", &bad, "1.2.840.10008.1.2.1\0", &limits).unwrap_err();
        assert_eq!(e.code(), "pixel_data", "{e}");
        let e = check_dataset("x", &MODALITY_CT, "1.2.3.4", &limits).unwrap_err();
        assert!(e.to_string().contains("unknown"), "{e}");
    }

    #[test]
    fn check_part10_refuses_non_part10_and_oversized_buffers() {
        let e = check_part10("x", b"plain text", &Limits::default()).unwrap_err();
        assert_eq!(e.code(), "not_dicom");
        assert!(e.to_string().contains("DICM"), "{e}");
        let ok = part10(&MODALITY_CT);
        let small = Limits::default().max_file_bytes(ok.len() as u64 - 1);
        let e = check_part10("x", &ok, &small).unwrap_err();
        assert_eq!(e.code(), "limit_exceeded");
        // The same bytes pass with a limit that fits them exactly.
        let exact = Limits::default().max_file_bytes(ok.len() as u64);
        check_part10("x", &ok, &exact).unwrap();
    }
}
