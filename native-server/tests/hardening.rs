//! Issue 14: the attacks on a running `ct-triage serve` (a child process on
//! loopback), each of which used to succeed, and what holds now. Memory is
//! the child's peak RSS (`VmHWM` of `/proc/<pid>/status`).
//!
//! `cargo test --release -p ct-triage --test hardening -- --nocapture` prints
//! the measured figures.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use ct_triage_native::dimse::status;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

/// Peak RSS a server may reach in these tests (the idle server with its
/// model is ≈ 60–120 MiB; the attacks used to take it to gigabytes).
const RSS_LIMIT_MIB: u64 = 400;

#[test]
fn dicom_and_stow_length_bombs_are_refused_in_bounded_memory() {
    let s = Server::start("");
    let baseline = s.peak_rss_mib();
    // Two associations at once, each a 120-byte data set declaring 3.75 GiB
    // (the attack took the server to 7.6 GB).
    let port = s.dicom;
    let bombs: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                let mut a = associate(port);
                let inst = format!("1.2.826.0.1.{i}");
                let st = c_store(&mut a, &inst, &length_bomb(&inst, 0xF000_0000));
                // The association survives the refusal: a good instance is stored after it.
                let good = format!("1.2.826.0.2.{i}");
                let ok = c_store(&mut a, &good, &tiny_ct(&good, "1.2.826.0.9"));
                let _ = a.release();
                (st, ok)
            })
        })
        .collect();
    for b in bombs {
        let (st, ok) = b.join().unwrap();
        assert_eq!(st, Some(status::CANNOT_UNDERSTAND));
        assert_eq!(ok, Some(status::SUCCESS));
    }
    // A command set whose one element declares 4 GiB (found by the dimse_pdu
    // fuzz target: dimse::decode zero-filled it): the association is aborted.
    let mut a = associate(port);
    let pc = ct_context(&a);
    a.send(&Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type: PDataValueType::Command,
            is_last: true,
            data: vec![0x99, 0x99, 0x00, 0x26, 0xFE, 0xFF, 0xFF, 0xFF],
        }],
    })
    .unwrap();
    assert!(matches!(a.receive(), Ok(Pdu::AbortRQ { .. }) | Err(_)));
    drop(a);
    // STOW-RS: a 425-byte Part 10 part declaring 2 GiB (the attack: 2.2 GB).
    let mut part = vec![0u8; 128];
    part.extend(b"DICM");
    let meta_body = [
        element(0x0002, 0x0001, b"OB", &[0, 1]),
        element(0x0002, 0x0002, b"UI", &uid("1.2.840.10008.5.1.4.1.1.2")),
        element(0x0002, 0x0003, b"UI", &uid("1.2.826.0.3")),
        element(0x0002, 0x0010, b"UI", &uid("1.2.840.10008.1.2.1")),
    ]
    .concat();
    part.extend(element(
        0x0002,
        0x0000,
        b"UL",
        &(meta_body.len() as u32).to_le_bytes(),
    ));
    part.extend(meta_body);
    part.extend(length_bomb("1.2.826.0.3", 0x8000_0000));
    let mut body = b"--B\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
    body.extend(&part);
    body.extend(b"\r\n--B--\r\n");
    let (code, resp) = http(
        s.http,
        "POST",
        "/dicomweb/studies",
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            (
                "Content-Type",
                "multipart/related; type=\"application/dicom\"; boundary=B",
            ),
        ],
        &body,
    );
    assert_eq!(code, 409, "{}", String::from_utf8_lossy(&resp));
    let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["00081198"]["Value"][0]["00081197"]["Value"][0], 0xC000);
    let peak = s.peak_rss_mib();
    eprintln!("length bombs: peak RSS {peak} MiB (idle server {baseline} MiB)");
    assert!(peak < RSS_LIMIT_MIB, "peak RSS {peak} MiB");
    // The refused instances left nothing behind; the good ones are filed.
    let kept = files_under(&s.data().join("incoming"));
    assert_eq!(
        kept,
        [
            "1.2.826.0.9/.series.json",
            "1.2.826.0.9/1.2.826.0.2.0.dcm",
            "1.2.826.0.9/1.2.826.0.2.1.dcm"
        ]
    );
}

/// A zip of `members` members of `mib` MiB of zeros each, made without
/// compressing gigabytes: one deflate segment of 1 MiB of zeros, sync-flushed
/// (so it ends on a byte boundary and copies of it form a valid stream),
/// repeated.
fn zero_bomb(members: usize, mib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let zeros = vec![0u8; 1 << 20];
    let mut c = Compress::new(Compression::best(), false);
    let mut seg = Vec::with_capacity(4096);
    while (c.total_in() as usize) < zeros.len() {
        seg.reserve(4096);
        let at = c.total_in() as usize;
        c.compress_vec(&zeros[at..], &mut seg, FlushCompress::Sync)
            .unwrap();
    }
    seg.reserve(64);
    c.compress_vec(&[], &mut seg, FlushCompress::Sync).unwrap();
    let mut data = seg.repeat(mib);
    data.extend([0x03, 0x00]); // an empty final block
    let mut crc = crc32fast::Hasher::new();
    for _ in 0..mib {
        crc.update(&zeros);
    }
    let crc = crc.finalize();
    let size = (mib as u32) << 20;
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for i in 0..members {
        let name = format!("slice-{i}.dcm");
        let offset = out.len() as u32;
        let fields = |sig: u32, out: &mut Vec<u8>, central: bool| {
            out.extend(sig.to_le_bytes());
            if central {
                out.extend(20u16.to_le_bytes());
            }
            out.extend(20u16.to_le_bytes()); // version needed
            out.extend(0u16.to_le_bytes()); // flags
            out.extend(8u16.to_le_bytes()); // deflate
            out.extend([0, 0, 0x21, 0]); // time, date (1980-01-01)
            out.extend(crc.to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend(size.to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes()); // extra
        };
        fields(0x0403_4b50, &mut out, false);
        out.extend(name.as_bytes());
        out.extend(&data);
        fields(0x0201_4b50, &mut central, true);
        central.extend([0u8; 8]); // comment, disk, internal and external attributes
        central.extend([0u8; 2]);
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_at = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((members as u16).to_le_bytes());
    out.extend((members as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_at.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

#[test]
fn a_zip_bomb_upload_is_refused_before_it_is_unpacked() {
    let s = Server::start("");
    // 3 × 1 GiB of zeros in ≈ 3 MB (the attack: 1 MB → 2.7 GB RSS in the worker).
    let bomb = zero_bomb(3, 1024);
    assert!(bomb.len() < 4 << 20, "{} bytes", bomb.len());
    let mut body =
        b"--XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"study.zip\"\r\n\r\n"
            .to_vec();
    body.extend(&bomb);
    body.extend(b"\r\n--XB--\r\n");
    let t0 = Instant::now();
    let (code, resp) = http(
        s.http,
        "POST",
        "/v1/studies",
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("Content-Type", "multipart/form-data; boundary=XB"),
        ],
        &body,
    );
    let msg = String::from_utf8_lossy(&resp).into_owned();
    assert_eq!(code, 413, "{msg}");
    assert!(msg.contains("times its packed size"), "{msg}");
    let peak = s.peak_rss_mib();
    eprintln!(
        "zip bomb of {} bytes (3 GiB unpacked): 413 after {:.2} s, peak RSS {peak} MiB",
        bomb.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(peak < RSS_LIMIT_MIB, "peak RSS {peak} MiB");
    assert!(
        files_under(&s.data().join("inputs")).is_empty(),
        "nothing kept"
    );
    let (_, jobs) = get(s.http, "/v1/worklist");
    assert_eq!(jobs, br#"{"worklist":[]}"#);
}

/// Raw bytes of an A-ASSOCIATE-RQ is what dicom-ul sends; this is the start
/// of a P-DATA-TF PDU of `len` bytes.
fn pdata_header(len: u32) -> Vec<u8> {
    let mut v = vec![0x04, 0x00];
    v.extend(len.to_be_bytes());
    v
}

#[test]
fn dicom_associations_have_deadlines_limits_and_a_proper_reject() {
    let s = Server::start(
        "max_associations = 2\ndicom_artim_timeout_s = 5\ndicom_idle_timeout_s = 2\n\
         dicom_association_timeout_s = 8\nmax_instance_mb = 1\ndicom_memory_mb = 2\n",
    );
    let addr = ("127.0.0.1", s.dicom);
    // Two silent connections take both slots …
    let mut idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // … so a third association is answered with A-ASSOCIATE-RJ, rejected
    // transient, local limit exceeded (it used to be dropped without one).
    let third = dicom_ul::ClientAssociationOptions::new()
        .calling_ae_title("THIRD")
        .called_ae_title("CTTRIAGE")
        .with_abstract_syntax(ct_triage_native::dimse::VERIFICATION)
        .read_timeout(Duration::from_secs(20))
        .establish_with(&format!("CTTRIAGE@127.0.0.1:{}", s.dicom));
    match third {
        Err(dicom_ul::association::Error::Rejected { association_rj, .. }) => {
            assert_eq!(
                association_rj.result,
                dicom_ul::pdu::AssociationRJResult::Transient
            );
            assert_eq!(
                association_rj.source,
                dicom_ul::pdu::AssociationRJSource::ServiceProviderPresentation(
                    dicom_ul::pdu::AssociationRJServiceProviderPresentationReason::LocalLimitExceeded
                )
            );
        }
        other => panic!("expected A-ASSOCIATE-RJ, got {other:?}"),
    }
    // The silent connections are closed after the ARTIM timeout (5 s), not held 60 s.
    let t0 = Instant::now();
    for c in &mut idle {
        assert!(
            closed_within(c, Duration::from_secs(15)),
            "an idle connection stayed open"
        );
    }
    eprintln!(
        "silent connections closed after {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // A drip of one byte every 500 ms never completes a PDU: closed after the
    // idle timeout (2 s) although every byte came sooner.
    let mut a = associate(s.dicom);
    let mut sent = 0;
    let t0 = Instant::now();
    let header = pdata_header(1000);
    let drip_closed = loop {
        let byte = header.get(sent).copied().unwrap_or(0);
        if a.inner_stream().write_all(&[byte]).is_err() {
            break true;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(500));
        if t0.elapsed() > Duration::from_secs(20) {
            break false;
        }
    };
    assert!(drip_closed, "the drip held the association for 20 s");
    eprintln!(
        "drip closed after {sent} bytes, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    drop(a);

    // An instance over max_instance_mb (1 MiB) is answered A700 and dropped;
    // the association goes on.
    let mut a = associate(s.dicom);
    let mut big = tiny_ct("1.2.826.0.5", "1.2.826.0.6");
    big.extend(element(0x7FE0, 0x0010, b"OB", &vec![0u8; 2 << 20]));
    assert_eq!(
        c_store(&mut a, "1.2.826.0.5", &big),
        Some(status::OUT_OF_RESOURCES)
    );
    let small = tiny_ct("1.2.826.0.7", "1.2.826.0.6");
    assert_eq!(
        c_store(&mut a, "1.2.826.0.7", &small),
        Some(status::SUCCESS)
    );
    // A second message before the first is complete (the 127-context attack)
    // ends the association with A-ABORT.
    let pc = ct_context(&a);
    let cmd =
        ct_triage_native::dimse::store_rq(9, "1.2.840.10008.5.1.4.1.1.2", "1.2.826.0.8").unwrap();
    for (value_type, data, last) in [
        (PDataValueType::Command, cmd.clone(), true),
        (PDataValueType::Data, vec![0u8; 1000], false),
        (PDataValueType::Command, cmd, true),
    ] {
        a.send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type,
                is_last: last,
                data,
            }],
        })
        .unwrap();
    }
    assert!(matches!(a.receive(), Ok(Pdu::AbortRQ { .. }) | Err(_)));
    drop(a);
    // Command fragments are capped too (64 KiB).
    let mut a = associate(s.dicom);
    let pc = ct_context(&a);
    let mut aborted = false;
    for _ in 0..10 {
        let r = a.send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: false,
                data: vec![0u8; 16_000],
            }],
        });
        if r.is_err() {
            aborted = true;
            break;
        }
    }
    assert!(aborted || matches!(a.receive(), Ok(Pdu::AbortRQ { .. }) | Err(_)));
    drop(a);

    // The whole association is limited too (8 s), however busy it keeps.
    let mut a = associate(s.dicom);
    let pc = a
        .presentation_contexts()
        .iter()
        .find(|p| p.abstract_syntax.trim_end_matches('\0') == ct_triage_native::dimse::VERIFICATION)
        .unwrap()
        .id;
    let t0 = Instant::now();
    let mut echoes = 0;
    loop {
        let cmd = echo_rq(echoes + 1);
        let sent = a.send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data: cmd,
            }],
        });
        if sent.is_err() || !matches!(a.receive(), Ok(Pdu::PData { .. })) {
            break;
        }
        echoes += 1;
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the association outlived its limit"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!(
        "a busy association ended after {:.1} s ({echoes} C-ECHOs)",
        t0.elapsed().as_secs_f64()
    );
    assert!(echoes >= 3, "ended early, after {echoes} C-ECHOs");
    let peak = s.peak_rss_mib();
    assert!(peak < RSS_LIMIT_MIB, "peak RSS {peak} MiB");
}

/// A C-ECHO-RQ command set.
fn echo_rq(id: u16) -> Vec<u8> {
    use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
    use dicom_dictionary_std::tags;
    let obj = dicom_object::InMemDicomObject::command_from_element_iter([
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(ct_triage_native::dimse::VERIFICATION),
        ),
        DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [0x0030])),
        DataElement::new(tags::MESSAGE_ID, VR::US, dicom_value!(U16, [id])),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            dicom_value!(U16, [0x0101]),
        ),
    ]);
    let mut out = Vec::new();
    obj.write_dataset_with_ts(
        &mut out,
        &dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
    )
    .unwrap();
    out
}

#[test]
fn dot_only_uids_are_refused_and_nothing_is_written() {
    let s = Server::start("quiet_seconds = 0.2\n");
    let mut a = associate(s.dicom);
    for bad in [".", ".."] {
        // As the SOP Instance UID (it became the file name `..dcm` and the
        // instance was written outside incoming/) …
        let st = c_store(&mut a, bad, &tiny_ct(bad, "1.2.826.0.20"));
        assert_eq!(st, Some(status::CANNOT_UNDERSTAND), "instance {bad:?}");
        // … and as the Series Instance UID (the folder name).
        let st = c_store(&mut a, "1.2.826.0.21", &tiny_ct("1.2.826.0.21", bad));
        assert_eq!(st, Some(status::CANNOT_UNDERSTAND), "series {bad:?}");
    }
    let st = c_store(&mut a, "1.2.826.0.22", &tiny_ct("1.2.826.0.22", "1.2..3"));
    assert_eq!(st, Some(status::CANNOT_UNDERSTAND));
    let _ = a.release();
    std::thread::sleep(Duration::from_millis(600));
    assert!(files_under(&s.data().join("incoming")).is_empty());
    let all = files_under(&s.data());
    assert!(
        all.iter()
            .all(|f| f == "jobs.sqlite" || f.starts_with("jobs.sqlite-") || f == "audit.jsonl"),
        "{all:?}"
    );
    let (_, w) = get(s.http, "/v1/worklist");
    assert_eq!(w, br#"{"worklist":[]}"#, "no job, no endless retries");
}

#[test]
fn http_connections_are_capped_and_time_out() {
    let s = Server::start(
        "http_max_connections = 4\nhttp_header_timeout_s = 1\nhttp_body_timeout_s = 1\n",
    );
    // 20 idle connections: at most 4 are kept, and those are closed after
    // the header timeout (200 idle connections used to stay open for good).
    let mut conns: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", s.http)).unwrap())
        .collect();
    let t0 = Instant::now();
    for c in &mut conns {
        assert!(
            closed_within(c, Duration::from_secs(10)),
            "an idle connection stayed open"
        );
    }
    eprintln!(
        "20 idle HTTP connections closed within {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // A stalled upload: headers and part of the body, then nothing.
    let mut up = TcpStream::connect(("127.0.0.1", s.http)).unwrap();
    write!(
        up,
        "POST /v1/studies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: multipart/form-data; boundary=XB\r\nContent-Length: 1000000\r\n\r\n\
         --XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.dcm\"\r\n\r\nDICM"
    )
    .unwrap();
    up.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let (code, body) = read_response(&mut up);
    assert_eq!(code, 408, "{}", String::from_utf8_lossy(&body));
    assert!(
        files_under(&s.data().join("inputs")).is_empty(),
        "the stalled upload left files"
    );
    // The server still serves.
    assert!(healthy(s.http));
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client
/// certificate, written as PEM files into `dir`: (ca, server cert, server
/// key, client cert, client key).
fn certificates(dir: &std::path::Path) -> [std::path::PathBuf; 5] {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ct-triage test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        (p.signed_by(&key, &issuer).unwrap(), key)
    };
    let (server, server_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()], "localhost");
    let (client, client_key) = leaf(vec!["modality.test".into()], "MODALITY");
    let files = [
        ("ca.pem", ca_cert.pem()),
        ("server.pem", server.pem()),
        ("server.key", server_key.serialize_pem()),
        ("client.pem", client.pem()),
        ("client.key", client_key.serialize_pem()),
    ];
    files.map(|(name, pem)| {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    })
}

#[test]
fn https_and_dicom_tls_with_real_peers() {
    let certs_dir = tempfile::tempdir().unwrap();
    let [ca, cert, key, client_cert, client_key] = certificates(certs_dir.path());
    let s = Server::start(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\ndicom_tls = true\ndicom_tls_client_ca = \"{}\"\n",
        cert.display(),
        key.display(),
        ca.display()
    ));
    // HTTPS with a client that trusts the test CA.
    let mut roots = rustls::RootCertStore::empty();
    for c in ct_triage_native::tls::load_certs(&ca).unwrap() {
        roots.add(c).unwrap();
    }
    let cfg = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(ct_triage_native::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let https = |path: &str| {
        let conn =
            rustls::ClientConnection::new(cfg.clone(), "localhost".try_into().unwrap()).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", s.http)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        write!(
            tls,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
             Connection: close\r\n\r\n"
        )
        .unwrap();
        read_response(&mut tls)
    };
    assert_eq!(https("/healthz").0, 200);
    let (code, body) = https("/v1/worklist");
    assert_eq!((code, body.as_slice()), (200, &br#"{"worklist":[]}"#[..]));
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    assert_eq!(get(s.http, "/healthz").0, 0);

    // DICOM TLS with dcmtk's storescu (BCP 195 profile, client certificate).
    let slice = lung1()[0].display().to_string();
    let port = s.dicom.to_string();
    let out = std::process::Command::new("storescu")
        .args(["+tls"])
        .arg(&client_key)
        .arg(&client_cert)
        .args(["-pw", "+cf"])
        .arg(&ca)
        .args([
            "-aet",
            "MODALITY",
            "-aec",
            "CTTRIAGE",
            "127.0.0.1",
            &port,
            &slice,
        ])
        .output()
        .expect("storescu (dcmtk) is installed");
    assert!(
        out.status.success(),
        "storescu +tls failed: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    let stored = files_under(&s.data().join("incoming"));
    assert_eq!(
        stored.iter().filter(|f| f.ends_with(".dcm")).count(),
        1,
        "{stored:?}"
    );
    // Without TLS, nothing gets in.
    let plain = std::process::Command::new("storescu")
        .args(["-aec", "CTTRIAGE", "127.0.0.1", &port, &slice])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    // TLS without a client certificate the CA issued: refused (mutual TLS).
    let anonymous = std::process::Command::new("storescu")
        .args(["+tla", "+cf"])
        .arg(&ca)
        .args(["-aec", "CTTRIAGE", "127.0.0.1", &port, &slice])
        .output()
        .unwrap();
    assert!(!anonymous.status.success());
    assert_eq!(files_under(&s.data().join("incoming")), stored);
}

/// Wait (at most 60 s) until the worklist has `n` rows; the rows.
fn wait_worklist(s: &Server, n: usize) -> Vec<serde_json::Value> {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = get(s.http, "/v1/worklist");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let rows = v["worklist"].as_array().cloned().unwrap_or_default();
        if rows.len() >= n {
            return rows;
        }
        assert!(
            Instant::now() < end,
            "{} of {n} jobs after 60 s: {}",
            rows.len(),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `submit` audit records of DICOM peers.
fn dicom_submits(s: &Server) -> Vec<serde_json::Value> {
    std::fs::read_to_string(s.data().join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["action"] == "submit" && r["actor"].as_str().unwrap().starts_with("ae:"))
        .collect()
}

fn storescu(port: u16, files: &[std::path::PathBuf]) {
    let out = std::process::Command::new("storescu")
        .args([
            "-aet",
            "STORESCU",
            "-aec",
            "CTTRIAGE",
            "127.0.0.1",
            &port.to_string(),
        ])
        .args(files)
        .output()
        .expect("storescu (dcmtk) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn acknowledged_instances_survive_kill_9_in_every_state() {
    let mut s = Server::start("");
    let slices = lung1();
    // 5 instances, the first one twice: acknowledged (synced first), counted once.
    let mut first = slices[..5].to_vec();
    first.push(slices[0].clone());
    storescu(s.dicom, &first);
    s.kill9();
    // State 1: the series is still in incoming/ (not quiet yet).
    let series: Vec<_> = std::fs::read_dir(s.data().join("incoming"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(series.len(), 1);
    s.reconfigure("quiet_seconds = 3600", "quiet_seconds = 0.5");
    s.spawn();
    wait_worklist(&s, 1);
    let submits = dicom_submits(&s);
    assert_eq!(submits.len(), 1);
    assert_eq!(
        submits[0]["actor"], "ae:STORESCU@127.0.0.1",
        "the peer is kept across the restart"
    );
    assert_eq!(
        submits[0]["detail"]["instances"], 5,
        "the duplicate counted once"
    );

    // State 2: killed after the quiet series was moved to inputs/ and before
    // its job was queued; and an upload killed before its answer.
    s.reconfigure("quiet_seconds = 0.5", "quiet_seconds = 3600");
    s.kill9();
    s.spawn();
    storescu(s.dicom, &slices[5..10]);
    s.kill9();
    let incoming = s.data().join("incoming").join(&series[0]);
    let moved = s.data().join("inputs").join("0a1b2c3d-crash-after-rename");
    std::fs::rename(&incoming, &moved).unwrap();
    let orphan = s.data().join("inputs").join("0a1b2c3d-crash-during-upload");
    std::fs::create_dir(&orphan).unwrap();
    std::fs::write(orphan.join("part-00001"), b"half an upload").unwrap();
    s.spawn();
    let submits = dicom_submits(&s);
    assert_eq!(submits.len(), 2, "{submits:?}");
    assert_eq!(submits[1]["outcome"], "recovered");
    assert_eq!(submits[1]["detail"]["instances"], 5);
    assert!(!orphan.exists(), "the unanswered upload was removed");
    wait_worklist(&s, 2);
    // Every job ran once; inputs of finished jobs are gone. The server removes
    // a job's input only after its outcome is recorded (a worklist row can be
    // seen first), so wait for the removal rather than expect it at once.
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let left = files_under(&s.data().join("inputs"));
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < end,
            "inputs of finished jobs still there after 60 s: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `n` copies of lung1 under `root`, in folders named `names`, each with its
/// own Patient ID (`PAT-<i>`).
fn patients(root: &std::path::Path, names: &[&str]) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    for (i, name) in names.iter().enumerate() {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for f in lung1() {
            let mut obj = dicom_object::open_file(&f).unwrap();
            obj.put(DataElement::new(
                tags::PATIENT_ID,
                VR::LO,
                PrimitiveValue::from(format!("PAT-{i}")),
            ));
            obj.write_to_file(dir.join(f.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn batch_sources_that_sanitise_alike_keep_their_own_results() {
    let root = tempfile::tempdir().unwrap();
    // `p 1` and `p_1` both sanitise to `p_1`: they shared one result folder,
    // and patient 0's worklist row showed patient 1's report.
    patients(root.path(), &["p 1", "p_1"]);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_ct-triage"))
        .args(["batch"])
        .arg(root.path())
        .arg("--out")
        .arg(&out)
        .args(["--jobs", "2", "--quiet"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("worklist.json")).unwrap()).unwrap();
    assert_eq!(rows.len(), 2);
    let mut dirs = std::collections::BTreeSet::new();
    for r in &rows {
        let dir = out.join(r["report_dir"].as_str().unwrap());
        assert!(dirs.insert(dir.clone()), "two rows share {}", dir.display());
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap())
                .unwrap();
        let want = if r["input"].as_str().unwrap().starts_with("p 1") {
            "PAT-0"
        } else {
            "PAT-1"
        };
        assert_eq!(r["patient_id"], want, "{r}");
        assert_eq!(
            report["input"]["patient_id"], want,
            "row {} shows another patient's report",
            r["input"]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("report.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "report.json is owner-only");
    }
}

#[test]
fn over_loopback_failed_logins_do_not_grow_the_audit_log_and_callers_are_scoped() {
    let s = Server::start("");
    let audit = s.data().join("audit.jsonl");
    let before = std::fs::metadata(&audit).map(|m| m.len()).unwrap_or(0);
    // 300 requests with a 60 KB path and no token (each wrote 60 KB before).
    let path = format!("/v1/jobs/{}", "x".repeat(60_000));
    for _ in 0..300 {
        assert_eq!(get_plain(s.http, &path).0, 401);
    }
    let grown = std::fs::metadata(&audit).unwrap().len() - before;
    eprintln!("300 failed logins with 60 KB paths: audit log +{grown} bytes");
    assert!(grown < 20_000, "the audit log grew by {grown} bytes");
    // A job of the admin is invisible to another caller; its role does not read metrics.
    let slice = std::fs::read(&lung1()[0]).unwrap();
    let mut body =
        b"--XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.dcm\"\r\n\r\n"
            .to_vec();
    body.extend(&slice);
    body.extend(b"\r\n--XB--\r\n");
    let auth = format!("Bearer {TOKEN}");
    let (code, resp) = http(
        s.http,
        "POST",
        "/v1/studies",
        &[
            ("Authorization", &auth),
            ("Content-Type", "multipart/form-data; boundary=XB"),
        ],
        &body,
    );
    assert_eq!(code, 202, "{}", String::from_utf8_lossy(&resp));
    let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    let job = format!("/v1/jobs/{}", v["job_id"].as_str().unwrap());
    let reader = format!("Bearer {READER}");
    let as_reader = |p: &str| http(s.http, "GET", p, &[("Authorization", &reader)], b"").0;
    assert_eq!(get(s.http, &job).0, 200);
    assert_eq!(as_reader(&job), 404);
    assert_eq!(as_reader(&format!("{job}/report")), 404);
    assert_eq!(as_reader("/metrics"), 403);
    assert_eq!(as_reader("/v1/worklist"), 200);
}
