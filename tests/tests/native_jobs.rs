//! The native job store and runner: idempotent enqueue, claims never handed
//! out twice (also under concurrent workers), outcomes recorded once, and
//! crash recovery that adopts published results and requeues the rest.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use ct_triage_native::jobs::{JobState, JobStore, NewJob, Outcome, SqliteJobStore, Summary};
use ct_triage_native::output;
use ct_triage_native::runner::{Placement, recover};

fn new_job(key: &str) -> NewJob {
    NewJob {
        dedup_key: Some(key.into()),
        source: "batch".into(),
        submitted_by: "test".into(),
        input: format!("/nowhere/{key}"),
        series: Some("1.2.3".into()),
        label: key.into(),
    }
}

fn done(output: &str) -> Outcome {
    Outcome::Done {
        output: output.into(),
        summary: Summary {
            priority: "routine".into(),
            score: 0.1,
            ..Summary::default()
        },
    }
}

#[test]
fn enqueue_is_idempotent_and_claims_are_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteJobStore::open(&dir.path().join("jobs.sqlite")).unwrap();
    let (a, created) = store.enqueue(&new_job("a")).unwrap();
    assert!(created);
    let (a2, created2) = store.enqueue(&new_job("a")).unwrap();
    assert!(!created2);
    assert_eq!(a.id, a2.id);
    store.enqueue(&new_job("b")).unwrap();
    assert_eq!(store.counts().unwrap().queued, 2);

    let first = store.claim("w").unwrap().unwrap();
    assert_eq!(first.id, a.id);
    assert_eq!(first.state, JobState::Running);
    assert_eq!(first.attempts, 1);
    store.finish(&first.id, &done("/out/a")).unwrap();
    // A finished job cannot be finished again.
    assert!(store.finish(&first.id, &done("/out/a")).is_err());
    let second = store.claim("w").unwrap().unwrap();
    store
        .finish(
            &second.id,
            &Outcome::Failed {
                code: "no_series".into(),
                message: "no CT".into(),
            },
        )
        .unwrap();
    assert!(store.claim("w").unwrap().is_none());
    let c = store.counts().unwrap();
    assert_eq!((c.done, c.failed, c.queued, c.running), (1, 1, 0, 0));
    let got = store.get(&first.id).unwrap().unwrap();
    assert_eq!(got.summary.unwrap().priority, "routine");
    let events: Vec<String> = store
        .events(Some(&first.id))
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["created", "started", "done"]);
}

#[test]
fn concurrent_workers_never_share_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteJobStore::open(&dir.path().join("jobs.sqlite")).unwrap());
    for i in 0..200 {
        store.enqueue(&new_job(&format!("j{i}"))).unwrap();
    }
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                while let Some(j) = store.claim(&format!("w{w}")).unwrap() {
                    store.finish(&j.id, &done("/x")).unwrap();
                    mine.push(j.id);
                }
                mine
            })
        })
        .collect();
    let all: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 200);
    assert_eq!(unique.len(), 200);
    assert_eq!(store.counts().unwrap().done, 200);
}

#[test]
fn state_survives_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite");
    let id = {
        let store = SqliteJobStore::open(&path).unwrap();
        store
            .record_source("study1", &[new_job("s1"), new_job("s2")])
            .unwrap();
        store.claim("w").unwrap().unwrap().id
    };
    let store = SqliteJobStore::open(&path).unwrap();
    assert!(store.scanned_sources().unwrap().contains("study1"));
    assert_eq!(store.get(&id).unwrap().unwrap().state, JobState::Running);
    assert_eq!(store.counts().unwrap().total(), 2);
}

fn place(root: &Path, id: &str) -> Placement {
    Placement {
        dest: root.join("series").join(id),
        tmp: root.join(".tmp").join(id),
    }
}

#[test]
fn recovery_adopts_published_results_and_requeues_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let store = SqliteJobStore::open(&root.join("jobs.sqlite")).unwrap();
    store.enqueue(&new_job("published")).unwrap();
    store.enqueue(&new_job("half-written")).unwrap();
    store.enqueue(&new_job("not-started")).unwrap();
    let published = store.claim("dead").unwrap().unwrap();
    let half = store.claim("dead").unwrap().unwrap();

    // "published": the worker renamed a complete folder, then died before recording it.
    let report = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../native-server/tests/data/report.json"),
    )
    .unwrap();
    let p = place(&root, &published.id);
    std::fs::create_dir_all(&p.tmp).unwrap();
    std::fs::write(p.tmp.join(output::REPORT_FILE), &report).unwrap();
    output::publish(&p.tmp, &p.dest).unwrap();
    assert!(output::is_complete(&p.dest));
    // "half-written": died while writing into its temporary folder.
    let h = place(&root, &half.id);
    std::fs::create_dir_all(&h.tmp).unwrap();
    std::fs::write(h.tmp.join("partial"), b"x").unwrap();

    let (adopted, requeued) = recover(&store, &|j| place(&root, &j.id)).unwrap();
    assert_eq!((adopted, requeued), (1, 1));
    let p_job = store.get(&published.id).unwrap().unwrap();
    assert_eq!(p_job.state, JobState::Done);
    assert!(p_job.summary.is_some());
    assert_eq!(
        store.get(&half.id).unwrap().unwrap().state,
        JobState::Queued
    );
    assert!(
        !h.tmp.exists(),
        "temporary folder of the dead attempt removed"
    );
    // The adopted job is never started again; the requeued one is, once.
    let next = store.claim("new").unwrap().unwrap();
    assert_eq!(next.id, half.id);
    assert_eq!(next.attempts, 2);
    let finishing: Vec<_> = store
        .events(None)
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "done" || e.event == "adopted")
        .collect();
    assert_eq!(finishing.len(), 1);
}
