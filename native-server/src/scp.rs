//! DICOM C-STORE SCP (dicom-ul): a PACS or modality sends CT instances here.
//!
//! Each association runs on its own thread (at most
//! [`ScpOptions::max_associations`] at once). Every received instance goes to
//! an [`InstanceSink`] — the server's sink files it by series and starts an
//! analysis once the series has been quiet for a while — and the sink's status
//! goes back in the C-STORE-RSP. C-ECHO is answered.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dicom_dictionary_std::uids;
use dicom_object::FileMetaTableBuilder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::association::Association;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
use dicom_ul::{ServerAssociation, ServerAssociationOptions};

use crate::dimse::{self, command, status};
use crate::error::{NativeError, Result};

/// Storage SOP classes accepted (CT only: this is a lung CT triage node).
pub const ACCEPTED_SOP_CLASSES: [&str; 3] = [
    uids::CT_IMAGE_STORAGE,
    uids::ENHANCED_CT_IMAGE_STORAGE,
    uids::LEGACY_CONVERTED_ENHANCED_CT_IMAGE_STORAGE,
];

/// Who is sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Calling AE title.
    pub ae_title: String,
    /// Network address.
    pub addr: SocketAddr,
}

/// One received instance: its data set as encoded on the wire.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// SOP Class UID.
    pub sop_class: &'a str,
    /// SOP Instance UID.
    pub sop_instance: &'a str,
    /// Negotiated transfer syntax of `dataset`.
    pub transfer_syntax: &'a str,
    /// The data set bytes.
    pub dataset: &'a [u8],
}

impl Received<'_> {
    /// The instance as a DICOM Part 10 file (preamble, file meta group, and
    /// the data set bytes unchanged).
    pub fn to_part10(&self) -> Result<Vec<u8>> {
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(self.sop_class)
            .media_storage_sop_instance_uid(self.sop_instance)
            .transfer_syntax(self.transfer_syntax)
            .implementation_class_uid(dicom_ul::IMPLEMENTATION_CLASS_UID)
            .build()
            .map_err(|e| NativeError::Network(format!("file meta group: {e}")))?;
        let mut out = Vec::with_capacity(self.dataset.len() + 400);
        out.extend_from_slice(&[0u8; 128]);
        out.extend_from_slice(b"DICM");
        meta.write(&mut out)
            .map_err(|e| NativeError::Network(format!("file meta group: {e}")))?;
        out.extend_from_slice(self.dataset);
        Ok(out)
    }
}

/// Receives what the SCP stores.
pub trait InstanceSink: Send + Sync {
    /// Keep one instance; returns the DIMSE status for the C-STORE-RSP
    /// ([`status::SUCCESS`], or a refusal such as [`status::OUT_OF_RESOURCES`]).
    fn store(&self, peer: &Peer, instance: &Received) -> u16;
    /// An association ended after storing `stored` instances.
    fn association_closed(&self, peer: &Peer, stored: usize) {
        let _ = (peer, stored);
    }
}

/// SCP settings.
#[derive(Debug, Clone)]
pub struct ScpOptions {
    /// Our AE title; associations calling another title are rejected.
    pub ae_title: String,
    /// Most associations served at once; more are closed at once.
    pub max_associations: usize,
    /// Largest instance accepted, in bytes.
    pub max_instance_bytes: usize,
    /// Maximum PDU length we receive.
    pub max_pdu_length: u32,
    /// Idle time after which an association is dropped.
    pub timeout: Duration,
}

impl Default for ScpOptions {
    fn default() -> Self {
        ScpOptions {
            ae_title: "CTTRIAGE".into(),
            max_associations: 16,
            max_instance_bytes: 1 << 30,
            max_pdu_length: 65_536,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Accept associations on `listener` until `stop` is set (checked every 100 ms).
pub fn serve(
    listener: TcpListener,
    opts: ScpOptions,
    sink: Arc<dyn InstanceSink>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    listener
        .set_nonblocking(true)
        .map_err(|e| NativeError::Network(format!("listener: {e}")))?;
    let active = Arc::new(AtomicUsize::new(0));
    let opts = Arc::new(opts);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, addr)) => {
                if active.load(Ordering::SeqCst) >= opts.max_associations {
                    tracing::warn!(%addr, "too many DICOM associations; connection closed");
                    drop(stream);
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let (active, opts, sink) = (active.clone(), opts.clone(), sink.clone());
                std::thread::Builder::new()
                    .name("ctt-scp".into())
                    .spawn(move || {
                        if let Err(e) = association(stream, addr, &opts, sink.as_ref()) {
                            tracing::warn!(%addr, "DICOM association: {e}");
                        }
                        active.fetch_sub(1, Ordering::SeqCst);
                    })
                    .map_err(|e| NativeError::Network(format!("thread: {e}")))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => tracing::warn!("DICOM accept: {e}"),
        }
    }
    Ok(())
}

fn send_command(assoc: &mut ServerAssociation<TcpStream>, pc: u8, data: Vec<u8>) -> Result<()> {
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data,
            }],
        })
        .map_err(|e| NativeError::Network(format!("sending a response: {e}")))
}

/// Serve one association.
fn association(
    stream: TcpStream,
    addr: SocketAddr,
    opts: &ScpOptions,
    sink: &dyn InstanceSink,
) -> Result<()> {
    stream
        .set_nonblocking(false)
        .map_err(|e| NativeError::Network(e.to_string()))?;
    let mut options = ServerAssociationOptions::new()
        .accept_called_ae_title()
        .ae_title(opts.ae_title.as_str())
        .max_pdu_length(opts.max_pdu_length)
        .read_timeout(opts.timeout)
        .write_timeout(opts.timeout)
        .with_abstract_syntax(dimse::VERIFICATION);
    for sop in ACCEPTED_SOP_CLASSES {
        options = options.with_abstract_syntax(sop);
    }
    for ts in TransferSyntaxRegistry.iter() {
        if !ts.is_unsupported() {
            options = options.with_transfer_syntax(ts.uid());
        }
    }
    let mut assoc = options
        .establish(stream)
        .map_err(|e| NativeError::Network(format!("association from {addr} refused: {e}")))?;
    let peer = Peer {
        ae_title: assoc.peer_ae_title().trim().to_string(),
        addr,
    };
    tracing::info!(peer = %peer.ae_title, %addr, "DICOM association");
    let pcs: HashMap<u8, String> = assoc
        .presentation_contexts()
        .iter()
        .map(|pc| (pc.id, pc.transfer_syntax.clone()))
        .collect();
    // Per presentation context: the pending command and the data received so far.
    let mut pending: HashMap<u8, (dimse::Command, Vec<u8>)> = HashMap::new();
    let mut stored = 0usize;
    let result = loop {
        let pdu = match assoc.receive() {
            Ok(p) => p,
            Err(e) => break Err(NativeError::Network(format!("receive: {e}"))),
        };
        match pdu {
            Pdu::PData { data } => {
                for pv in data {
                    let pc = pv.presentation_context_id;
                    match pv.value_type {
                        PDataValueType::Command => {
                            // Commands fit one PDV in practice; accumulate anyway.
                            let entry = pending.entry(pc).or_insert_with(|| {
                                (
                                    dimse::Command {
                                        field: 0,
                                        message_id: 0,
                                        sop_class: String::new(),
                                        sop_instance: String::new(),
                                        status: None,
                                    },
                                    Vec::new(),
                                )
                            });
                            entry.1.extend_from_slice(&pv.data);
                            if !pv.is_last {
                                continue;
                            }
                            let cmd = dimse::decode(&entry.1)?;
                            entry.1.clear();
                            if cmd.field == command::C_ECHO_RQ {
                                pending.remove(&pc);
                                send_command(&mut assoc, pc, dimse::echo_rsp(cmd.message_id)?)?;
                            } else {
                                entry.0 = cmd;
                            }
                        }
                        PDataValueType::Data => {
                            let Some((cmd, buf)) = pending.get_mut(&pc) else {
                                break;
                            };
                            if buf.len() + pv.data.len() > opts.max_instance_bytes {
                                let _ = assoc.abort();
                                return Err(NativeError::Limit(format!(
                                    "instance from {} larger than {} bytes",
                                    peer.ae_title, opts.max_instance_bytes
                                )));
                            }
                            buf.extend_from_slice(&pv.data);
                            if !pv.is_last {
                                continue;
                            }
                            let (cmd, buf) = (cmd.clone(), std::mem::take(buf));
                            pending.remove(&pc);
                            let st = if cmd.field != command::C_STORE_RQ {
                                status::CANNOT_UNDERSTAND
                            } else {
                                let ts = pcs.get(&pc).map_or("", |s| dimse::trim_uid(s));
                                sink.store(
                                    &peer,
                                    &Received {
                                        sop_class: &cmd.sop_class,
                                        sop_instance: &cmd.sop_instance,
                                        transfer_syntax: ts,
                                        dataset: &buf,
                                    },
                                )
                            };
                            if st == status::SUCCESS {
                                stored += 1;
                            }
                            send_command(
                                &mut assoc,
                                pc,
                                dimse::store_rsp(
                                    cmd.message_id,
                                    &cmd.sop_class,
                                    &cmd.sop_instance,
                                    st,
                                )?,
                            )?;
                        }
                    }
                }
            }
            Pdu::ReleaseRQ => {
                let _ = assoc.send(&Pdu::ReleaseRP);
                break Ok(());
            }
            Pdu::AbortRQ { .. } => break Ok(()),
            _ => {}
        }
    };
    sink.association_closed(&peer, stored);
    let _ = assoc.inner_stream().flush();
    result
}
