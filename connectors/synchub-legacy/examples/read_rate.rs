//! Reads a generated contacts CSV through the `csv` source and prints the rate:
//! `cargo run --release -p synchub-legacy --example read_rate -- [ROWS]`.

use std::time::Instant;

use synchub_core::ObjectKind;
use synchub_legacy::{build, write_sample_contacts_csv, LegacyOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("contacts.csv");
    let t = Instant::now();
    write_sample_contacts_csv(&path, rows, 42)?;
    println!("wrote {rows} rows in {:.2}s", t.elapsed().as_secs_f64());
    let opts = LegacyOptions {
        default_region: Some("TW".into()),
        ..LegacyOptions::default()
    };
    let source = build("csv", path.to_str().ok_or("path")?, opts)?;
    let t = Instant::now();
    let (mut records, mut rejected, mut cursor) = (0usize, 0usize, None);
    loop {
        let page = source.pull(ObjectKind::Contact, cursor.as_ref()).await?;
        records += page.records.len();
        rejected += page.rejected.len();
        cursor = page.next;
        if page.done {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "read {records} records, {rejected} rejected in {secs:.2}s: {:.0} rows/s",
        records as f64 / secs
    );
    Ok(())
}
