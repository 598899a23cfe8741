//! Series load + HU: named DICOM buffers in, HU volume out (parse, group,
//! select, order, decode, modality LUT). Throughput is input bytes per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ct_triage_benches::{inputs, lung1, synthetic_series};
use ct_triage_core::ingest::{self, IngestOptions};
use ct_triage_core::progress::NoProgress;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingest");
    g.sample_size(20);
    for (name, files) in [
        ("lung1_512x512x48", lung1()),
        ("synthetic_512x512x300", synthetic_series(300)),
    ] {
        let bytes: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
        g.throughput(Throughput::Bytes(bytes));
        let inp = inputs(&files);
        g.bench_function(name, |b| {
            b.iter(|| ingest::load(&inp, &IngestOptions::default(), &NoProgress).expect("loads"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
