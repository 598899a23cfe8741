//! DICOM C-STORE SCP (dicom-ul): a PACS or modality sends CT instances here.
//!
//! Each association runs on its own thread (at most
//! [`ScpOptions::max_associations`] at once; further ones are answered with
//! an A-ASSOCIATE-RJ, *rejected-transient, local limit exceeded*). Every
//! received instance goes to an [`InstanceSink`] — the server's sink files
//! it by series and starts an analysis once the series has been quiet for a
//! while — and the sink's status goes back in the C-STORE-RSP. C-ECHO is
//! answered.
//!
//! What a peer can cost:
//!
//! - **memory**: one message at a time per association (no asynchronous
//!   operations window is negotiated, PS3.7 §D.3.3.3), its command set at
//!   most [`MAX_COMMAND_BYTES`] and its data set at most
//!   [`ScpOptions::max_instance_bytes`]; all associations together buffer at
//!   most [`ScpOptions::memory_budget_bytes`]. A data set over either limit
//!   is read to its end and thrown away, and answered with `A700` (out of
//!   resources); PDUs are at most [`ScpOptions::max_pdu_length`] (strict).
//! - **time**: the TLS handshake and the A-ASSOCIATE-RQ must be complete
//!   within [`ScpOptions::artim_timeout`], every later PDU within
//!   [`ScpOptions::idle_timeout`] (a byte-by-byte drip does not reset it),
//!   and the whole association ends after [`ScpOptions::association_timeout`].
//!
//! With [`ScpOptions::tls`] the SCP speaks DICOM over TLS only (PS3.15
//! Annex B secure transport connection profiles; rustls, TLS 1.2 and 1.3).
//!
//! Associations are tasks of one tokio runtime (dicom-ul's async API: its
//! blocking API spins forever on a connection that closes before its first
//! PDU when built with TLS support); the sink runs on blocking threads.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dicom_dictionary_std::uids;
use dicom_object::FileMetaTableBuilder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::ServerAssociationOptions;
use dicom_ul::association::{Association, AsyncServerAssociation};
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJSource, PDataValue, PDataValueType, Pdu,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};

use crate::dimse::{self, command, status};
use crate::error::{NativeError, Result};

/// Storage SOP classes accepted (CT only: this is a lung CT triage node).
pub const ACCEPTED_SOP_CLASSES: [&str; 3] = [
    uids::CT_IMAGE_STORAGE,
    uids::ENHANCED_CT_IMAGE_STORAGE,
    uids::LEGACY_CONVERTED_ENHANCED_CT_IMAGE_STORAGE,
];

/// Largest DIMSE command set accepted (real ones are a few hundred bytes).
pub const MAX_COMMAND_BYTES: usize = dimse::MAX_COMMAND_BYTES;

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
    /// Write the instance as a DICOM Part 10 file (preamble, file meta group,
    /// and the data set bytes unchanged) to `out`.
    pub fn write_part10(&self, out: &mut dyn Write) -> Result<()> {
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(self.sop_class)
            .media_storage_sop_instance_uid(self.sop_instance)
            .transfer_syntax(self.transfer_syntax)
            .implementation_class_uid(dicom_ul::IMPLEMENTATION_CLASS_UID)
            .build()
            .map_err(|e| NativeError::Network(format!("file meta group: {e}")))?;
        let io = |e: std::io::Error| NativeError::Network(format!("writing an instance: {e}"));
        out.write_all(&[0u8; 128]).map_err(io)?;
        out.write_all(b"DICM").map_err(io)?;
        let mut head = Vec::with_capacity(256);
        meta.write(&mut head)
            .map_err(|e| NativeError::Network(format!("file meta group: {e}")))?;
        out.write_all(&head).map_err(io)?;
        out.write_all(self.dataset).map_err(io)
    }

    /// The instance as a DICOM Part 10 file in memory (see [`Received::write_part10`]).
    pub fn to_part10(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.dataset.len() + 400);
        self.write_part10(&mut out)?;
        Ok(out)
    }
}

/// Receives what the SCP stores.
pub trait InstanceSink: Send + Sync {
    /// Keep one instance; returns the DIMSE status for the C-STORE-RSP
    /// ([`status::SUCCESS`] only once it is durable, or a refusal such as
    /// [`status::OUT_OF_RESOURCES`]).
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
    /// Most associations served at once; more are rejected (A-ASSOCIATE-RJ).
    pub max_associations: usize,
    /// Largest data set one association buffers, in bytes (one message at a time).
    pub max_instance_bytes: usize,
    /// Most bytes all associations together buffer.
    pub memory_budget_bytes: usize,
    /// Maximum PDU length we receive (larger PDUs end the association).
    pub max_pdu_length: u32,
    /// Time for the TLS handshake and the A-ASSOCIATE-RQ (ARTIM, PS3.8 §9.1.5).
    pub artim_timeout: Duration,
    /// Time within which each further PDU must have arrived completely.
    pub idle_timeout: Duration,
    /// Longest association, from connection to release.
    pub association_timeout: Duration,
    /// DICOM over TLS (PS3.15 Annex B): every connection must do a TLS handshake.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ScpOptions {
    fn default() -> Self {
        ScpOptions {
            ae_title: "CTTRIAGE".into(),
            max_associations: 16,
            max_instance_bytes: 1 << 30,
            memory_budget_bytes: 2 << 30,
            max_pdu_length: 65_536,
            artim_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            association_timeout: Duration::from_secs(3600),
            tls: None,
        }
    }
}

/// Bytes buffered by all associations, against [`ScpOptions::memory_budget_bytes`].
#[derive(Debug)]
struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    /// Take `n` bytes from the budget; false (nothing taken) when it would overflow.
    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.limit)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Everything the association tasks share.
struct Shared {
    opts: ScpOptions,
    sink: Arc<dyn InstanceSink>,
    budget: Budget,
    active: AtomicUsize,
    rejecting: AtomicUsize,
}

/// Decrements a counter when dropped.
struct Slot(Arc<Shared>, fn(&Shared) -> &AtomicUsize);

impl Drop for Slot {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accept associations on `listener` until `stop` is set (checked every 100 ms).
pub fn serve(
    listener: TcpListener,
    opts: ScpOptions,
    sink: Arc<dyn InstanceSink>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ctt-scp")
        .enable_all()
        .build()
        .map_err(|e| NativeError::Network(format!("runtime: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| NativeError::Network(format!("listener: {e}")))?;
    let shared = Arc::new(Shared {
        budget: Budget {
            used: AtomicUsize::new(0),
            limit: opts.memory_budget_bytes,
        },
        opts,
        sink,
        active: AtomicUsize::new(0),
        rejecting: AtomicUsize::new(0),
    });
    let result = rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| NativeError::Network(format!("listener: {e}")))?;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !stop.load(Ordering::Relaxed) {
            let (stream, addr) = tokio::select! {
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("DICOM accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tick.tick() => continue,
            };
            let _ = stream.set_nodelay(true);
            let max = shared.opts.max_associations;
            if shared.active.fetch_add(1, Ordering::SeqCst) >= max {
                shared.active.fetch_sub(1, Ordering::SeqCst);
                // Answer with A-ASSOCIATE-RJ, a few at a time; beyond that
                // the connection is just closed.
                if shared.rejecting.fetch_add(1, Ordering::SeqCst) >= max {
                    shared.rejecting.fetch_sub(1, Ordering::SeqCst);
                    tracing::warn!(%addr, "too many DICOM connections; closed");
                    continue;
                }
                tracing::warn!(%addr, "too many DICOM associations; rejecting");
                let slot = Slot(shared.clone(), |s| &s.rejecting);
                tokio::spawn(async move {
                    if let Err(e) = reject(stream, &slot.0).await {
                        tracing::debug!(%addr, "rejecting an association: {e}");
                    }
                    drop(slot);
                });
                continue;
            }
            let slot = Slot(shared.clone(), |s| &s.active);
            tokio::spawn(async move {
                if let Err(e) = association(stream, addr, &slot.0).await {
                    tracing::warn!(%addr, "DICOM association: {e}");
                }
                drop(slot);
            });
        }
        Ok(())
    });
    // Associations still open are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Read the A-ASSOCIATE-RQ of a connection over the limit and answer
/// A-ASSOCIATE-RJ (rejected-transient, service provider presentation: local
/// limit exceeded, PS3.8 §9.3.4), over TLS when the SCP uses TLS.
async fn reject(stream: tokio::net::TcpStream, s: &Shared) -> Result<()> {
    let net = |e: std::io::Error| NativeError::Network(e.to_string());
    let deadline = Instant::now() + s.opts.artim_timeout;
    let work = async {
        match &s.opts.tls {
            None => {
                let mut stream = stream;
                reject_on(&mut stream, s.opts.max_pdu_length).await
            }
            Some(cfg) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(cfg.clone());
                let mut tls = acceptor.accept(stream).await?;
                let r = reject_on(&mut tls, s.opts.max_pdu_length).await;
                let _ = tls.shutdown().await;
                r
            }
        }
    };
    match timeout_at(deadline, work).await {
        Ok(r) => r.map_err(net),
        Err(_) => Err(NativeError::Network("no A-ASSOCIATE-RQ in time".into())),
    }
}

async fn reject_on(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    max_pdu: u32,
) -> std::io::Result<()> {
    let mut head = [0u8; 6];
    stream.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([head[2], head[3], head[4], head[5]]);
    if head[0] != 0x01 || len > max_pdu {
        return Err(std::io::Error::other("not an A-ASSOCIATE-RQ"));
    }
    tokio::io::copy(&mut stream.take(len as u64), &mut tokio::io::sink()).await?;
    let mut out = Vec::with_capacity(16);
    dicom_ul::write_pdu(
        &mut out,
        &Pdu::AssociationRJ(AssociationRJ {
            result: AssociationRJResult::Transient,
            source: AssociationRJSource::ServiceProviderPresentation(
                AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
            ),
        }),
    )
    .map_err(std::io::Error::other)?;
    stream.write_all(&out).await?;
    stream.flush().await
}

/// Serve one connection: TLS handshake (if configured), association
/// negotiation, then messages until release, abort or a deadline.
async fn association(
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    s: &Arc<Shared>,
) -> Result<()> {
    let started = Instant::now();
    let o = &s.opts;
    let mut options = ServerAssociationOptions::new()
        .accept_called_ae_title()
        .ae_title(o.ae_title.as_str())
        .max_pdu_length(o.max_pdu_length)
        .strict(true)
        // dicom-ul applies its read timeout to the negotiation too: the
        // ARTIM timeout governs that, the idle timeout (below) each receive.
        .read_timeout(o.artim_timeout.max(o.idle_timeout))
        .write_timeout(o.idle_timeout)
        .with_abstract_syntax(dimse::VERIFICATION);
    for sop in ACCEPTED_SOP_CLASSES {
        options = options.with_abstract_syntax(sop);
    }
    for ts in TransferSyntaxRegistry.iter() {
        if !ts.is_unsupported() {
            options = options.with_transfer_syntax(ts.uid());
        }
    }
    let artim = started + o.artim_timeout;
    let refused =
        |why: String| NativeError::Network(format!("association from {addr} refused: {why}"));
    let late = || refused("no A-ASSOCIATE-RQ in time".into());
    match &o.tls {
        None => {
            let assoc = timeout_at(artim, options.establish_async(stream))
                .await
                .map_err(|_| late())?
                .map_err(|e| refused(e.to_string()))?;
            messages(assoc, addr, s, started).await
        }
        Some(cfg) => {
            let options = options.tls_config(cfg.clone());
            let assoc = timeout_at(artim, options.establish_tls_async(stream))
                .await
                .map_err(|_| late())?
                .map_err(|e| refused(e.to_string()))?;
            messages(assoc, addr, s, started).await
        }
    }
}

async fn send_command<S>(assoc: &mut AsyncServerAssociation<S>, pc: u8, data: Vec<u8>) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data,
            }],
        })
        .await
        .map_err(|e| NativeError::Network(format!("sending a response: {e}")))
}

/// The one message being received on an association.
struct Message {
    pc: u8,
    command_bytes: Vec<u8>,
    command: Option<dimse::Command>,
    data: Vec<u8>,
    /// Bytes of `data` taken from the budget.
    reserved: usize,
    /// Set when the data set went over a limit: the rest is read and dropped.
    refused: bool,
}

impl Message {
    fn new(pc: u8) -> Self {
        Message {
            pc,
            command_bytes: Vec::new(),
            command: None,
            data: Vec::new(),
            reserved: 0,
            refused: false,
        }
    }
}

/// What ends an association early.
enum Violation {
    /// A protocol violation: answered with A-ABORT.
    Protocol(String),
    /// The connection failed or a deadline passed.
    Network(NativeError),
}

async fn messages<S>(
    mut assoc: AsyncServerAssociation<S>,
    addr: SocketAddr,
    s: &Arc<Shared>,
    started: Instant,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
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
    let mut msg: Option<Message> = None;
    let mut stored = 0usize;
    let outcome = receive_loop(&mut assoc, &peer, &pcs, s, started, &mut msg, &mut stored).await;
    if let Some(m) = msg.take() {
        s.budget.give(m.reserved);
    }
    let sink = s.sink.clone();
    let closed = peer.clone();
    let _ = tokio::task::spawn_blocking(move || sink.association_closed(&closed, stored)).await;
    match outcome {
        Ok(()) => Ok(()),
        Err(Violation::Protocol(what)) => {
            let _ = timeout(Duration::from_secs(2), assoc.abort()).await;
            Err(NativeError::Network(format!(
                "{} violated the protocol: {what}",
                peer.ae_title
            )))
        }
        Err(Violation::Network(e)) => Err(e),
    }
}

async fn receive_loop<S>(
    assoc: &mut AsyncServerAssociation<S>,
    peer: &Peer,
    pcs: &HashMap<u8, String>,
    s: &Arc<Shared>,
    started: Instant,
    msg: &mut Option<Message>,
    stored: &mut usize,
) -> std::result::Result<(), Violation>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let o = &s.opts;
    let end = started + o.association_timeout;
    let protocol = |what: &str| Err(Violation::Protocol(what.to_string()));
    let release = |msg: &mut Option<Message>| {
        if let Some(m) = msg.take() {
            s.budget.give(m.reserved);
        }
    };
    loop {
        let deadline = end.min(Instant::now() + o.idle_timeout);
        let pdu = match timeout_at(deadline, assoc.receive()).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                return Err(Violation::Network(NativeError::Network(format!(
                    "receive: {e}"
                ))));
            }
            Err(_) => {
                let why = if Instant::now() >= end {
                    "association time limit reached".to_string()
                } else {
                    format!("no complete PDU within {:?}", o.idle_timeout)
                };
                return Err(Violation::Network(NativeError::Network(why)));
            }
        };
        let data = match pdu {
            Pdu::PData { data } => data,
            Pdu::ReleaseRQ => {
                let _ = timeout(o.idle_timeout, assoc.send(&Pdu::ReleaseRP)).await;
                return Ok(());
            }
            Pdu::AbortRQ { .. } => return Ok(()),
            other => return protocol(&format!("unexpected {}", other.short_description())),
        };
        for pv in data {
            let pc = pv.presentation_context_id;
            match pv.value_type {
                PDataValueType::Command => {
                    let m = msg.get_or_insert_with(|| Message::new(pc));
                    if m.pc != pc || m.command.is_some() {
                        release(msg);
                        return protocol("a new message before the last one was complete");
                    }
                    if m.command_bytes.len() + pv.data.len() > MAX_COMMAND_BYTES {
                        release(msg);
                        return protocol("a command set larger than 64 KiB");
                    }
                    m.command_bytes.extend_from_slice(&pv.data);
                    if !pv.is_last {
                        continue;
                    }
                    let cmd = match dimse::decode(&m.command_bytes) {
                        Ok(c) => c,
                        Err(e) => {
                            release(msg);
                            return protocol(&e.to_string());
                        }
                    };
                    if cmd.field == command::C_ECHO_RQ {
                        release(msg);
                        let rsp = dimse::echo_rsp(cmd.message_id).map_err(Violation::Network)?;
                        send_command(assoc, pc, rsp)
                            .await
                            .map_err(Violation::Network)?;
                    } else {
                        m.command_bytes = Vec::new();
                        m.command = Some(cmd);
                    }
                }
                PDataValueType::Data => {
                    let Some(m) = msg.as_mut().filter(|m| m.pc == pc && m.command.is_some()) else {
                        release(msg);
                        return protocol("a data set without its command");
                    };
                    let n = pv.data.len();
                    if !m.refused {
                        let over = m.data.len() + n > o.max_instance_bytes;
                        if over || !s.budget.take(n) {
                            tracing::warn!(
                                peer = %peer.ae_title,
                                "data set refused: {}",
                                if over {
                                    format!("larger than {} bytes", o.max_instance_bytes)
                                } else {
                                    "the SCP's memory budget is spent".to_string()
                                }
                            );
                            s.budget.give(m.reserved);
                            m.reserved = 0;
                            m.data = Vec::new();
                            m.refused = true;
                        } else {
                            m.reserved += n;
                            m.data.extend_from_slice(&pv.data);
                        }
                    }
                    if !pv.is_last {
                        continue;
                    }
                    let Some(m) = msg.take() else { continue };
                    let Some(cmd) = m.command else { continue };
                    let reserved = m.reserved;
                    let st = if m.refused {
                        status::OUT_OF_RESOURCES
                    } else if cmd.field != command::C_STORE_RQ {
                        status::CANNOT_UNDERSTAND
                    } else {
                        let ts = pcs.get(&pc).map_or("", |t| dimse::trim_uid(t)).to_string();
                        let (sink, who, data) = (s.sink.clone(), peer.clone(), m.data);
                        let (class, inst) = (cmd.sop_class.clone(), cmd.sop_instance.clone());
                        tokio::task::spawn_blocking(move || {
                            sink.store(
                                &who,
                                &Received {
                                    sop_class: &class,
                                    sop_instance: &inst,
                                    transfer_syntax: &ts,
                                    dataset: &data,
                                },
                            )
                        })
                        .await
                        .unwrap_or(status::OUT_OF_RESOURCES)
                    };
                    s.budget.give(reserved);
                    if st == status::SUCCESS {
                        *stored += 1;
                    }
                    let rsp =
                        dimse::store_rsp(cmd.message_id, &cmd.sop_class, &cmd.sop_instance, st)
                            .map_err(Violation::Network)?;
                    send_command(assoc, pc, rsp)
                        .await
                        .map_err(Violation::Network)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_budget_is_shared_and_given_back() {
        let b = Budget {
            used: AtomicUsize::new(0),
            limit: 100,
        };
        assert!(b.take(60));
        assert!(!b.take(41), "over the budget: nothing taken");
        assert!(b.take(40));
        b.give(60);
        assert!(b.take(60));
        assert_eq!(b.used.load(Ordering::SeqCst), 100);
    }
}
