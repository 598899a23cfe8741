//! Fuzz the DICOM upper layer reader of the SCP: arbitrary bytes as the
//! stream a peer sends, read PDU after PDU as dicom-ul reads them off the
//! wire (strict, 64 KiB maximum PDU length, as the SCP negotiates), every
//! command fragment decoded as a DIMSE command set by `dimse::decode` and
//! every data fragment put through core's length guard. Any panic is a bug;
//! errors are expected.
#![no_main]

use ct_triage_core::ingest::{self, Limits};
use ct_triage_native::dimse;
use dicom_ul::pdu::{PDataValueType, Pdu};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    let limits = Limits::default().max_file_bytes(1 << 20);
    for _ in 0..64 {
        let Ok(Some(pdu)) = dicom_ul::read_pdu(&mut buf, 65_536, true) else {
            break;
        };
        if let Pdu::PData { data } = pdu {
            for pv in data {
                match pv.value_type {
                    PDataValueType::Command => {
                        let _ = dimse::decode(&pv.data);
                    }
                    PDataValueType::Data => {
                        let _ = ingest::check_dataset("pdv", &pv.data, "1.2.840.10008.1.2.1", &limits);
                    }
                }
            }
        }
    }
});
