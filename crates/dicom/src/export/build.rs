//! Small builders for in-memory DICOM data sets and the modules every object shares.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};

use super::ContentDateTime;
use super::codes::{self, Code};
use super::uid;
use crate::error::{Error, Result};
use crate::ingest::StudyMeta;

/// The in-memory object type we build.
pub(crate) type Obj = InMemDicomObject;

/// Explicit VR Little Endian, the transfer syntax of everything we write.
pub(crate) const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// Put a single string value.
pub(crate) fn put_str(obj: &mut Obj, tag: Tag, vr: VR, v: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
}

/// Put a multi-valued string.
pub(crate) fn put_strs(obj: &mut Obj, tag: Tag, vr: VR, vs: &[String]) {
    obj.put(DataElement::new(
        tag,
        vr,
        PrimitiveValue::Strs(vs.iter().cloned().collect()),
    ));
}

/// Put an optional string: the value, or empty (type 2).
pub(crate) fn put_opt(obj: &mut Obj, tag: Tag, vr: VR, v: Option<&str>) {
    match v {
        Some(s) => put_str(obj, tag, vr, s),
        None => put_empty(obj, tag, vr),
    }
}

/// Put an empty element (type 2 attribute without value).
pub(crate) fn put_empty(obj: &mut Obj, tag: Tag, vr: VR) {
    if vr == VR::SQ {
        put_seq(obj, tag, Vec::new());
    } else {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
    }
}

/// Put a sequence (undefined length).
pub(crate) fn put_seq(obj: &mut Obj, tag: Tag, items: Vec<Obj>) {
    obj.put(DataElement::new(
        tag,
        VR::SQ,
        DataSetSequence::new(items, Length::UNDEFINED),
    ));
}

/// Put US values.
pub(crate) fn put_us(obj: &mut Obj, tag: Tag, vs: &[u16]) {
    obj.put(DataElement::new(
        tag,
        VR::US,
        PrimitiveValue::U16(vs.iter().copied().collect()),
    ));
}

/// Put UL values.
pub(crate) fn put_ul(obj: &mut Obj, tag: Tag, vs: &[u32]) {
    obj.put(DataElement::new(
        tag,
        VR::UL,
        PrimitiveValue::U32(vs.iter().copied().collect()),
    ));
}

/// Put FL values.
pub(crate) fn put_fl(obj: &mut Obj, tag: Tag, vs: &[f32]) {
    obj.put(DataElement::new(
        tag,
        VR::FL,
        PrimitiveValue::F32(vs.iter().copied().collect()),
    ));
}

/// Put FD values.
pub(crate) fn put_fd(obj: &mut Obj, tag: Tag, vs: &[f64]) {
    obj.put(DataElement::new(
        tag,
        VR::FD,
        PrimitiveValue::F64(vs.iter().copied().collect()),
    ));
}

/// Put DS values (formatted to at most 16 characters each).
pub(crate) fn put_ds(obj: &mut Obj, tag: Tag, vs: &[f64]) {
    let s: Vec<String> = vs.iter().map(|&v| format_ds(v)).collect();
    put_strs(obj, tag, VR::DS, &s);
}

/// Put an IS value.
pub(crate) fn put_is(obj: &mut Obj, tag: Tag, v: i64) {
    put_str(obj, tag, VR::IS, &v.to_string());
}

/// Put AT values.
pub(crate) fn put_at(obj: &mut Obj, tag: Tag, vs: &[Tag]) {
    obj.put(DataElement::new(
        tag,
        VR::AT,
        PrimitiveValue::Tags(vs.iter().copied().collect()),
    ));
}

/// Put OB bytes (padded to even length).
pub(crate) fn put_ob(obj: &mut Obj, tag: Tag, mut bytes: Vec<u8>) {
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    obj.put(DataElement::new(
        tag,
        VR::OB,
        PrimitiveValue::U8(bytes.into()),
    ));
}

/// A decimal string of at most 16 characters for `v` (PS3.5 DS), as exact as fits.
pub(crate) fn format_ds(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    let s = format!("{v}");
    if s.len() <= 16 {
        return s;
    }
    for p in (0..=15).rev() {
        let t = trim_zeros(format!("{v:.p$}"));
        if t.len() <= 16
            && t.parse::<f64>()
                .map(|x| x != 0.0 || v.abs() < 1e-15)
                .unwrap_or(false)
        {
            return t;
        }
    }
    for p in (0..=14).rev() {
        let t = format!("{v:.p$e}");
        if t.len() <= 16 {
            return t;
        }
    }
    "0".into()
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.');
        if t.is_empty() || t == "-" {
            "0".into()
        } else {
            t.to_string()
        }
    } else {
        s
    }
}

/// A code sequence item.
pub(crate) fn code_item(c: &Code) -> Obj {
    let mut o = Obj::new_empty();
    if c.value.len() > 16 {
        put_str(&mut o, tags::LONG_CODE_VALUE, VR::UC, c.value);
    } else {
        put_str(&mut o, tags::CODE_VALUE, VR::SH, c.value);
    }
    put_str(&mut o, tags::CODING_SCHEME_DESIGNATOR, VR::SH, c.scheme);
    put_str(&mut o, tags::CODE_MEANING, VR::LO, c.meaning);
    o
}

/// Put a one-item code sequence.
pub(crate) fn put_code(obj: &mut Obj, tag: Tag, c: &Code) {
    put_seq(obj, tag, vec![code_item(c)]);
}

/// The CodingSchemeIdentificationSequence declaring the private scheme.
pub(crate) fn put_private_scheme(obj: &mut Obj) {
    let mut o = Obj::new_empty();
    put_str(
        &mut o,
        tags::CODING_SCHEME_DESIGNATOR,
        VR::SH,
        codes::PRIVATE_SCHEME,
    );
    put_str(
        &mut o,
        tags::CODING_SCHEME_NAME,
        VR::ST,
        codes::PRIVATE_SCHEME_NAME,
    );
    put_str(
        &mut o,
        tags::CODING_SCHEME_VERSION,
        VR::SH,
        codes::PRIVATE_SCHEME_VERSION,
    );
    put_str(
        &mut o,
        tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION,
        VR::ST,
        "ct-triage project",
    );
    put_seq(obj, tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE, vec![o]);
}

/// Patient and General Study modules from the source series.
pub(crate) fn put_patient_study(obj: &mut Obj, m: &StudyMeta) {
    put_opt(obj, tags::PATIENT_NAME, VR::PN, m.patient_name.as_deref());
    put_opt(obj, tags::PATIENT_ID, VR::LO, m.patient_id.as_deref());
    put_opt(
        obj,
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        m.patient_birth_date.as_deref(),
    );
    put_opt(obj, tags::PATIENT_SEX, VR::CS, m.patient_sex.as_deref());
    put_str(obj, tags::STUDY_INSTANCE_UID, VR::UI, &m.study_instance_uid);
    put_opt(obj, tags::STUDY_DATE, VR::DA, m.study_date.as_deref());
    put_opt(obj, tags::STUDY_TIME, VR::TM, m.study_time.as_deref());
    put_opt(
        obj,
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        m.referring_physician_name.as_deref(),
    );
    put_opt(obj, tags::STUDY_ID, VR::SH, m.study_id.as_deref());
    put_opt(
        obj,
        tags::ACCESSION_NUMBER,
        VR::SH,
        m.accession_number.as_deref(),
    );
    if let Some(d) = &m.study_description {
        put_str(obj, tags::STUDY_DESCRIPTION, VR::LO, d);
    }
}

/// SOP Common module and the instance creation date/time. The character set
/// is set by [`to_file`] from the text actually written.
pub(crate) fn put_sop_common(obj: &mut Obj, class: &str, instance: &str, when: &ContentDateTime) {
    put_str(obj, tags::SOP_CLASS_UID, VR::UI, class);
    put_str(obj, tags::SOP_INSTANCE_UID, VR::UI, instance);
    put_str(obj, tags::INSTANCE_CREATION_DATE, VR::DA, when.date());
    put_str(obj, tags::INSTANCE_CREATION_TIME, VR::TM, when.time());
}

/// General Equipment (and the Enhanced General Equipment attributes).
pub(crate) fn put_equipment(obj: &mut Obj, manufacturer: &str, model: &str, serial: &str) {
    put_str(obj, tags::MANUFACTURER, VR::LO, manufacturer);
    put_str(obj, tags::MANUFACTURER_MODEL_NAME, VR::LO, model);
    put_str(obj, tags::DEVICE_SERIAL_NUMBER, VR::LO, serial);
    put_str(
        obj,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        env!("CARGO_PKG_VERSION"),
    );
}

/// The widest character of the text values of a data set (recursively).
fn max_char(obj: &Obj) -> u32 {
    let mut m = 0;
    for e in obj.iter() {
        if let Some(items) = e.items() {
            for it in items {
                m = m.max(max_char(it));
            }
        } else if matches!(
            e.vr(),
            VR::PN | VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC
        ) && let Ok(s) = e.to_str()
        {
            m = m.max(s.chars().map(|c| c as u32).max().unwrap_or(0));
        }
    }
    m
}

/// Specific Character Set for the text written: none (default repertoire)
/// when it is all ASCII, Latin-1 when it fits, otherwise UTF-8.
pub(crate) fn put_charset(obj: &mut Obj) {
    match max_char(obj) {
        0..=0x7F => {
            obj.remove_element(tags::SPECIFIC_CHARACTER_SET);
        }
        0x80..=0xFF => put_str(obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100"),
        _ => put_str(obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
    }
}

/// Wrap a data set with its file meta group (Explicit VR Little Endian).
pub(crate) fn to_file(mut obj: Obj, what: &str) -> Result<FileDicomObject<Obj>> {
    put_charset(&mut obj);
    let class = string(&obj, tags::SOP_CLASS_UID).unwrap_or_default();
    let instance = string(&obj, tags::SOP_INSTANCE_UID).unwrap_or_default();
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(instance)
        .transfer_syntax(EXPLICIT_VR_LE)
        .implementation_class_uid(uid::implementation_class_uid())
        .implementation_version_name(uid::implementation_version_name())
        .build()
        .map_err(|e| output_err(what, e))?;
    Ok(obj.with_exact_meta(meta))
}

/// Part 10 bytes of a file object.
pub(crate) fn to_bytes(file: &FileDicomObject<Obj>, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    file.write_all(&mut out).map_err(|e| output_err(what, e))?;
    Ok(out)
}

/// An [`Error::Output`].
pub(crate) fn output_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Output {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// The trimmed string value of an element, if present.
pub(crate) fn string(obj: &Obj, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
}

/// Patient orientation letters of a direction cosine (PS3.3 C.7.6.1.1.1).
pub(crate) fn orientation_letters(d: [f64; 3]) -> String {
    let mut axes: Vec<(f64, char)> = vec![
        (d[0], if d[0] >= 0.0 { 'L' } else { 'R' }),
        (d[1], if d[1] >= 0.0 { 'P' } else { 'A' }),
        (d[2], if d[2] >= 0.0 { 'H' } else { 'F' }),
    ];
    axes.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
    axes.iter()
        .filter(|(v, _)| v.abs() > 0.25)
        .map(|(_, c)| *c)
        .take(3)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_fits_and_round_trips_when_it_can() {
        for v in [
            0.0,
            1.5,
            -12.25,
            1361.1978149414062,
            1e-9,
            123456789012345678.0,
            0.1 + 0.2,
        ] {
            let s = format_ds(v);
            assert!(s.len() <= 16, "{v} -> {s}");
            let back: f64 = s.parse().unwrap();
            assert!((back - v).abs() <= v.abs() * 1e-11 + 1e-15, "{v} -> {s}");
        }
        assert_eq!(format_ds(12.3), "12.3");
        assert_eq!(format_ds(-0.0), "0");
    }

    #[test]
    fn orientation() {
        assert_eq!(orientation_letters([1.0, 0.0, 0.0]), "L");
        assert_eq!(orientation_letters([0.0, 1.0, 0.0]), "P");
        assert_eq!(orientation_letters([-0.7, 0.7, 0.0]), "RP");
    }
}
