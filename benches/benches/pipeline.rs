//! The analysis pipeline per stage (resample, lungs, candidates, measure) and
//! end to end, on lung1 and on a synthetic 512×512×300 series.

use criterion::{Criterion, criterion_group, criterion_main};
use ct_triage_benches::{inputs, lung1, model, synthetic_series};
use ct_triage_core::candidates::{self, CandidateOptions};
use ct_triage_core::ingest::{self, IngestOptions};
use ct_triage_core::lungs::{self, LungOptions};
use ct_triage_core::pipeline::{AnalysisOptions, analyze};
use ct_triage_core::progress::NoProgress;
use ct_triage_core::resample;

fn bench(c: &mut Criterion) {
    let classifier = model();
    for (name, files) in [("lung1", lung1()), ("synthetic300", synthetic_series(300))] {
        let inp = inputs(&files);
        let (_, series) =
            ingest::load(&inp, &IngestOptions::default(), &NoProgress).expect("loads");
        let iso = resample::to_isotropic(&series.volume, 1.0, &NoProgress).expect("resample");
        let masks = lungs::segment(&iso, &LungOptions::default(), &NoProgress).expect("lungs");
        let mut g = c.benchmark_group(format!("stages_{name}"));
        g.sample_size(10);
        g.bench_function("resample_1mm", |b| {
            b.iter(|| resample::to_isotropic(&series.volume, 1.0, &NoProgress).expect("resample"))
        });
        g.bench_function("lungs", |b| {
            b.iter(|| lungs::segment(&iso, &LungOptions::default(), &NoProgress).expect("lungs"))
        });
        g.bench_function("candidates", |b| {
            b.iter(|| {
                candidates::detect(&iso, &masks, &CandidateOptions::default(), &NoProgress)
                    .expect("candidates")
            })
        });
        g.bench_function("analyze_end_to_end", |b| {
            b.iter(|| {
                analyze(&inp, &AnalysisOptions::default(), &classifier, &NoProgress)
                    .expect("analysis")
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
