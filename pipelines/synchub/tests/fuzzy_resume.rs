//! GIVEN a legacy contacts export with duplicate people that only the
//!       probabilistic matcher finds
//! WHEN `synchub migrate csv` is SIGKILLed inside its matching pass (while
//!      it decides, right after its decisions are stored, and between merge
//!      batches) and continued with `--resume` each time
//! THEN the store equals an uninterrupted migration's: the same CRM records,
//!      the same merges (survivor, loser, evidence), the same review queue;
//! AND a `--resume` of a finished migration merges nothing more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use synchub_core::ObjectKind;
use synchub_store::Store;
use synchub_testkit::data::Lcg;
use synchub_testkit::process::{cursor_seq, kill_when};
use synchub_testkit::TestDb;

const PEOPLE: u64 = 3_000;
const PAGE: u64 = 500;
const PASS: &str = "migrate_csv";
const BATCH: i64 = 50;

fn migrate_cmd(db: &str, csv: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synchub"));
    cmd.args(["migrate", "csv"])
        .arg(csv)
        .args(["--page-size", &PAGE.to_string()])
        .args(extra)
        .env("SYNCHUB_DATABASE_URL", db);
    cmd
}

fn spawn(db: &str, csv: &Path, extra: &[&str]) -> Child {
    migrate_cmd(db, csv, extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn synchub")
}

fn run(db: &str, csv: &Path, extra: &[&str]) -> String {
    let out = migrate_cmd(db, csv, extra).output().expect("run synchub");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "synchub migrate failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Records, merges and the review queue as sorted lines.
async fn state(store: &Store) -> Vec<String> {
    let mut out: Vec<String> = store
        .canonical_dump()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| !l.starts_with("sync_cursor|"))
        .collect();
    for m in store.merges(true).await.unwrap() {
        out.push(format!(
            "merge|{}|{}|{}|{:?}",
            m.detail.survivor, m.detail.loser, m.detail.evidence, m.undone_at
        ));
    }
    for r in store.reviews(true).await.unwrap() {
        out.push(format!(
            "review|{}|{}|{}|{}|{}|{}",
            r.left_id, r.right_id, r.score, r.probability, r.evidence, r.status
        ));
    }
    out.sort();
    out
}

fn diff(expected: &[String], actual: &[String]) -> (Vec<String>, Vec<String>) {
    let e: std::collections::HashSet<&String> = expected.iter().collect();
    let a: std::collections::HashSet<&String> = actual.iter().collect();
    let missing = expected
        .iter()
        .filter(|l| !a.contains(l))
        .take(3)
        .cloned()
        .collect();
    let extra = actual
        .iter()
        .filter(|l| !e.contains(l))
        .take(3)
        .cloned()
        .collect();
    (missing, extra)
}

/// People, about 12 % of them twice: the second row with two letters of
/// the email swapped and no phone, so no exact key joins them and only the
/// probabilistic matcher can (name, company, city, a close email). Returns
/// the number of rows.
fn write_fuzzy_sample(path: &Path) -> u64 {
    const FIRST: &[&str] = &[
        "Tai Man",
        "Siu Ming",
        "Mei Ling",
        "Wing Kei",
        "Ka Yan",
        "Chi Wai",
        "Hoi Yan",
        "Wai Lun",
        "Yuk Ling",
        "Kwok Keung",
        "Amy",
        "Bob",
        "Carol",
        "David",
        "Eve",
        "Frank",
        "Grace",
        "Henry",
        "Irene",
        "Jack",
    ];
    const LAST: &[&str] = &[
        "Chan", "Wong", "Lee", "Cheung", "Lau", "Ho", "Ng", "Leung", "Tsang", "Yip", "Smith",
        "Brown", "Lin", "Huang", "Wu",
    ];
    const COMPANY: &[&str] = &[
        "Acme Ltd",
        "Golden Dragon Trading",
        "Harbour Logistics",
        "Jade Textiles",
        "Pearl Foods",
        "Summit Electronics",
        "Lotus Design",
        "Orient Shipping",
    ];
    const CITY: &[&str] = &[
        "Taipei",
        "Hong Kong",
        "Kowloon",
        "Taichung",
        "Kaohsiung",
        "Shenzhen",
    ];
    fn pick(rng: &mut Lcg, list: &[&'static str]) -> &'static str {
        list[rng.below(list.len() as u64) as usize]
    }
    let mut rng = Lcg::new(5);
    let mut people = Vec::new();
    for _ in 0..PEOPLE {
        let person = (
            pick(&mut rng, FIRST),
            pick(&mut rng, LAST),
            pick(&mut rng, COMPANY),
            pick(&mut rng, CITY),
        );
        people.push(person);
    }
    let mut rows = Vec::new();
    for (first, last, company, city) in people {
        let given = first.split(' ').next().unwrap_or(first).to_lowercase();
        let local = format!("{given}.{}{}", last.to_lowercase(), 1 + rng.below(99_999));
        let phone = format!("09{}", 10_000_000 + rng.below(80_000_000));
        rows.push(format!(
            "{first},{last},{local}@example.com,{phone},{company},{city}"
        ));
        if rng.below(100) < 12 {
            let mut typo: Vec<char> = local.chars().collect();
            let k = rng.below(typo.len() as u64 - 1) as usize;
            typo.swap(k, k + 1);
            let typo: String = typo.into_iter().collect();
            rows.push(format!(
                "{first},{last},{typo}@example.com,,{company},{city}"
            ));
        }
    }
    // Shuffle so that a duplicate is not always next to its original.
    for i in (1..rows.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        rows.swap(i, j);
    }
    let mut text = String::from("id,first_name,last_name,email,phone,company,city\n");
    for (i, row) in rows.iter().enumerate() {
        text.push_str(&format!("L{:06},{row}\n", i + 1));
    }
    std::fs::write(path, text).unwrap();
    rows.len() as u64
}

async fn applied(store: &Store) -> Option<i64> {
    store
        .match_pass(PASS)
        .await
        .ok()
        .flatten()
        .map(|s| s.applied)
}

async fn kill_inside_the_pass(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("legacy-contacts.csv");
    let rows = write_fuzzy_sample(&csv);
    let pages = rows.div_ceil(PAGE) as i64;

    // The reference: one uninterrupted migration.
    let reference = TestDb::of(backend).await;
    run(&reference.url, &csv, &[]);
    let ref_store = reference.store().await;
    let expected = state(&ref_store).await;
    let steps = ref_store.match_pass(PASS).await.unwrap().unwrap().steps;
    assert!(
        steps >= 2 * BATCH,
        "the sample must give the pass several merge batches, got {steps} merges"
    );

    let crashed = TestDb::of(backend).await;
    let observer = crashed.store().await;
    let patience = Duration::from_secs(300);
    // 1. While the pass decides: the import is committed, no plan stored yet.
    let mut child = spawn(&crashed.url, &csv, &[]);
    let killed = kill_when(&mut child, patience, || async {
        cursor_seq(&observer, PASS, ObjectKind::Contact).await >= pages
    })
    .await;
    assert!(killed, "the first run ended before the kill");
    let mut kills = 1;
    // 2. Right after the decisions are stored, then after merge batches.
    let targets = [0, BATCH, steps / 2, steps - 1];
    for target in targets {
        let mut child = spawn(&crashed.url, &csv, &["--resume"]);
        if kill_when(&mut child, patience, || async {
            applied(&observer).await.is_some_and(|a| a >= target)
        })
        .await
        {
            kills += 1;
        }
    }
    assert!(kills >= 4, "only {kills} runs were killed inside the pass");
    run(&crashed.url, &csv, &["--resume"]);
    let pass = observer.match_pass(PASS).await.unwrap().unwrap();
    assert!(pass.finished && pass.applied == steps, "{pass:?}");

    let actual = state(&observer).await;
    let (missing, extra) = diff(&expected, &actual);
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    assert_eq!(actual.len(), expected.len());

    // A resume of the finished migration decides nothing again.
    let text = run(&crashed.url, &csv, &["--resume"]);
    assert!(
        text.contains(&format!("{steps} merged as the same person")),
        "{text}"
    );
    let (missing, extra) = diff(&actual, &state(&observer).await);
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the resume changed the store: missing {missing:?}\nextra {extra:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fuzzy_pass_sigkill_then_resume_equals_uninterrupted_sqlite() {
    kill_inside_the_pass("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fuzzy_pass_sigkill_then_resume_equals_uninterrupted_postgres() {
    kill_inside_the_pass("postgres").await;
}
