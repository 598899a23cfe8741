//! DIMSE command sets for C-STORE and C-ECHO (PS3.7 §9.3), encoded with
//! dicom-object in Implicit VR Little Endian as the standard requires.

use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

use crate::error::{NativeError, Result};

/// Verification SOP Class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";

/// Command Field values.
pub mod command {
    /// C-STORE-RQ.
    pub const C_STORE_RQ: u16 = 0x0001;
    /// C-STORE-RSP.
    pub const C_STORE_RSP: u16 = 0x8001;
    /// C-ECHO-RQ.
    pub const C_ECHO_RQ: u16 = 0x0030;
    /// C-ECHO-RSP.
    pub const C_ECHO_RSP: u16 = 0x8030;
}

/// DIMSE status values used here.
pub mod status {
    /// Success.
    pub const SUCCESS: u16 = 0x0000;
    /// Refused: out of resources (a limit was reached).
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: data set does not match SOP class / cannot be stored.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Error: data set does not match the SOP class (or its command).
    pub const DATA_SET_DOES_NOT_MATCH: u16 = 0xA900;
    /// Refused: SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    /// Warning/failure: duplicate SOP instance (STOW-RS: the same instance twice in one request).
    pub const DUPLICATE_SOP_INSTANCE: u16 = 0x0111;
}

/// True when `uid` is a UID as PS3.5 §9.1 defines it: 1–64 characters,
/// components of digits separated by single dots, no empty component (so
/// neither `.` nor `..` nor `1..2`), no leading zero in a component of more
/// than one digit. Received UIDs become file and folder names only when
/// this holds.
pub fn is_valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && (c.len() == 1 || !c.starts_with('0'))
        })
}

/// UIDs in DIMSE/DICOM may carry a trailing NUL or space for even length.
pub fn trim_uid(s: &str) -> &str {
    s.trim_end_matches(['\0', ' '])
}

/// The fields of a received command that the SCP needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Command Field.
    pub field: u16,
    /// Message ID.
    pub message_id: u16,
    /// Affected SOP Class UID (empty if absent).
    pub sop_class: String,
    /// Affected SOP Instance UID (empty if absent).
    pub sop_instance: String,
    /// Status (responses only).
    pub status: Option<u16>,
}

/// Largest command set decoded (real ones are a few hundred bytes).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Decode a command set. Core's length guard runs first: dicom-object
/// zero-fills what an element declares, and a 10-byte command element
/// declaring 4 GiB came through the SCP unauthenticated (found by the
/// `dimse_pdu` fuzz target).
pub fn decode(bytes: &[u8]) -> Result<Command> {
    if bytes.len() > MAX_COMMAND_BYTES {
        return Err(NativeError::Network(format!(
            "a DIMSE command set of {} bytes (limit {MAX_COMMAND_BYTES})",
            bytes.len()
        )));
    }
    let limits = ct_triage_core::ingest::Limits::default().max_file_bytes(MAX_COMMAND_BYTES as u64);
    ct_triage_core::ingest::check_dataset(
        "DIMSE command",
        bytes,
        IMPLICIT_VR_LITTLE_ENDIAN.uid(),
        &limits,
    )
    .map_err(|e| NativeError::Network(format!("unreadable DIMSE command: {e}")))?;
    let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
    let obj = InMemDicomObject::read_dataset_with_ts(bytes, &ts)
        .map_err(|e| NativeError::Network(format!("unreadable DIMSE command: {e}")))?;
    let int = |tag| -> Option<u16> { obj.element(tag).ok().and_then(|e| e.to_int::<u16>().ok()) };
    let string = |tag| -> String {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_str().ok())
            .map(|s| trim_uid(&s).to_string())
            .unwrap_or_default()
    };
    Ok(Command {
        field: int(tags::COMMAND_FIELD)
            .ok_or_else(|| NativeError::Network("DIMSE command without Command Field".into()))?,
        message_id: int(tags::MESSAGE_ID)
            .or_else(|| int(tags::MESSAGE_ID_BEING_RESPONDED_TO))
            .unwrap_or(0),
        sop_class: string(tags::AFFECTED_SOP_CLASS_UID),
        sop_instance: string(tags::AFFECTED_SOP_INSTANCE_UID),
        status: int(tags::STATUS),
    })
}

fn encode(obj: InMemDicomObject) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(160);
    obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| NativeError::Network(format!("encoding a DIMSE command: {e}")))?;
    Ok(out)
}

/// A US command element.
fn us(tag: dicom_core::Tag, v: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, dicom_value!(U16, [v]))
}

/// A UI command element.
fn ui(tag: dicom_core::Tag, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::UI, PrimitiveValue::from(v))
}

/// Command Data Set Type: a data set follows / none follows (PS3.7 E.1).
const DATA_SET: u16 = 0x0000;
const NO_DATA_SET: u16 = 0x0101;

/// C-STORE-RQ for one instance (a data set follows).
pub fn store_rq(message_id: u16, sop_class: &str, sop_instance: &str) -> Result<Vec<u8>> {
    encode(InMemDicomObject::command_from_element_iter([
        ui(tags::AFFECTED_SOP_CLASS_UID, sop_class),
        us(tags::COMMAND_FIELD, command::C_STORE_RQ),
        us(tags::MESSAGE_ID, message_id),
        us(tags::PRIORITY, 0x0000),
        us(tags::COMMAND_DATA_SET_TYPE, DATA_SET),
        ui(tags::AFFECTED_SOP_INSTANCE_UID, sop_instance),
    ]))
}

/// C-STORE-RSP.
pub fn store_rsp(message_id: u16, sop_class: &str, sop_instance: &str, st: u16) -> Result<Vec<u8>> {
    encode(InMemDicomObject::command_from_element_iter([
        ui(tags::AFFECTED_SOP_CLASS_UID, sop_class),
        us(tags::COMMAND_FIELD, command::C_STORE_RSP),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, message_id),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        us(tags::STATUS, st),
        ui(tags::AFFECTED_SOP_INSTANCE_UID, sop_instance),
    ]))
}

/// C-ECHO-RSP (success).
pub fn echo_rsp(message_id: u16) -> Result<Vec<u8>> {
    encode(InMemDicomObject::command_from_element_iter([
        ui(tags::AFFECTED_SOP_CLASS_UID, VERIFICATION),
        us(tags::COMMAND_FIELD, command::C_ECHO_RSP),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, message_id),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        us(tags::STATUS, status::SUCCESS),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_element_declaring_gigabytes_is_refused_before_it_is_read() {
        // The command PDV of fuzz artifact oom-a228447428d9190df5dbb643bfa2ea2a831f5a2f:
        // (9999,2600) declaring 0xFFFFFFFE bytes; dicom-object zero-filled 4 GiB.
        let e = decode(&[0x99, 0x99, 0x00, 0x26, 0xFE, 0xFF, 0xFF, 0xFF]).unwrap_err();
        assert!(e.to_string().contains("4294967294"), "{e}");
        // A real command still decodes.
        let c = decode(&store_rq(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3").unwrap()).unwrap();
        assert_eq!(
            (c.field, c.message_id, c.sop_instance.as_str()),
            (command::C_STORE_RQ, 7, "1.2.3")
        );
        assert!(decode(&vec![0u8; MAX_COMMAND_BYTES + 1]).is_err());
    }

    #[test]
    fn uids_follow_ps3_5_section_9() {
        for ok in [
            "1.2.840.10008.1.2",
            "0",
            "1.0.2",
            "2.25.123456789012345678901234567890",
        ] {
            assert!(is_valid_uid(ok), "{ok}");
        }
        let long = format!("1.{}", "2".repeat(63));
        for bad in [
            "", ".", "..", "1..2", ".1", "1.", "1.02", "1.2a", "1.2 ", "../1", "1/2", &long,
        ] {
            assert!(!is_valid_uid(bad), "{bad:?}");
        }
    }
}
