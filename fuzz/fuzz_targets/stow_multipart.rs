//! Fuzz the STOW-RS request body reader (`related::RelatedParts` over multer):
//! the first input line is the request's Content-Type, the rest its body,
//! delivered in chunks whose sizes the input's last byte chooses. Every
//! part is read to its end. Any panic is a bug; errors are expected.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use ct_triage_native::related::RelatedParts;
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"multipart/related; type=\"application/dicom\"; boundary=B"[..], data),
    };
    let Ok(content_type) = std::str::from_utf8(head) else {
        return;
    };
    let step = 1 + data.last().copied().unwrap_or(0) as usize * 7;
    let chunks: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(step)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures_util::stream::iter(chunks);
    runtime().block_on(async {
        let Ok(mut parts) = RelatedParts::new(content_type, stream, 64) else {
            return;
        };
        while let Ok(Some(mut part)) = parts.next().await {
            let _ = &part.refusal;
            while let Ok(Some(_)) = part.chunk().await {}
        }
    });
});
