//! Deterministic sample contacts CSV for the migration benchmark.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

const FAMILY: &[&str] = &[
    "陳", "林", "黃", "張", "李", "王", "吳", "劉", "蔡", "楊", "歐陽", "司馬",
];
const GIVEN: &[&str] = &[
    "志明", "淑芬", "家豪", "美玲", "俊傑", "怡君", "大文", "嘉欣", "冠宇", "雅婷",
];
const FIRST_EN: &[&str] = &[
    "Alice", "Brian", "Cindy", "David", "Emily", "Frank", "Grace", "Henry",
];
const LAST_EN: &[&str] = &[
    "Smith", "O'Brien", "Chan", "Wong", "Lee", "Nguyen", "Tanaka", "Patel",
];
const COMPANIES: &[&str] = &[
    "鼎新科技",
    "宏達電子",
    "Acme Trading Ltd",
    "Globex, Inc.",
    "統一食品",
    "Initech",
];
const CITIES: &[(&str, &str)] = &[
    ("台北市", "TW"),
    ("Hong Kong", "HK"),
    ("上海市", "CN"),
    ("高雄市", "TW"),
];

/// What [`write_sample_contacts_csv`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSummary {
    /// Data rows written (header excluded).
    pub rows: u64,
    /// Rows that repeat an earlier person under a new id (another phone
    /// format, upper-case email): what dedup should merge.
    pub duplicates: u64,
}

/// Writes a contacts CSV of `rows` data rows for the `csv` kind's built-in
/// mapping (`id, first_name, last_name, email, phone, company, city,
/// country` plus the custom columns `vip_level` and `line_id`), in UTF-8.
///
/// Same `seed` and `rows` → the same bytes. About 5 % of the rows are
/// duplicates of an earlier row. Streams; memory use is constant.
pub fn write_sample_contacts_csv(path: &Path, rows: u64, seed: u64) -> io::Result<SampleSummary> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    writeln!(
        out,
        "id,first_name,last_name,email,phone,company,city,country,vip_level,line_id"
    )?;
    let mut rng = SplitMix(seed);
    let mut duplicates = 0;
    let mut people = 0u64;
    for i in 1..=rows {
        // A duplicate re-draws an earlier person from that person's seed.
        let dup_of = (people > 20 && rng.below(20) == 0).then(|| 1 + rng.below(people));
        let person_no = match dup_of {
            Some(p) => p,
            None => {
                people += 1;
                people
            }
        };
        let mut p = SplitMix(seed ^ person_no.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let cjk = p.below(10) < 6;
        let (first, last) = if cjk {
            (
                GIVEN[p.below_usize(GIVEN.len())],
                FAMILY[p.below_usize(FAMILY.len())],
            )
        } else {
            (
                FIRST_EN[p.below_usize(FIRST_EN.len())],
                LAST_EN[p.below_usize(LAST_EN.len())],
            )
        };
        let (city, cc) = CITIES[p.below_usize(CITIES.len())];
        let local = p.next() % 100_000_000;
        let email = format!("user{person_no}.{local}@example.com");
        // Valid mobile blocks only (TW 09[1-8], HK 9[467], CN 138), so every
        // format of a duplicate normalizes to the same E.164 number.
        let digits = p.below(10_000_000);
        let tw = format!("{}{digits:07}", 1 + p.below(8));
        let hk = format!("{}{:06}", [4, 6, 7][p.below_usize(3)], digits % 1_000_000);
        let phone_fmt = if dup_of.is_some() { rng.below(3) } else { 0 };
        let phone = match (cc, phone_fmt) {
            ("TW", 0) => format!("09{tw}"),
            ("TW", 1) => format!("+886 9{tw}"),
            ("TW", _) => format!("886-9{tw}"),
            ("HK", 0) => format!("+852 9{} {}", &hk[..3], &hk[3..]),
            ("HK", _) => format!("(852) 9{hk}"),
            (_, 0) => format!(
                "+86 138 {:04} {:04}",
                digits % 10_000,
                digits / 10_000 % 10_000
            ),
            _ => format!(
                "0086138{:04}{:04}",
                digits % 10_000,
                digits / 10_000 % 10_000
            ),
        };
        let email = if dup_of.is_some() && rng.below(2) == 0 {
            email.to_uppercase()
        } else {
            email
        };
        let company = COMPANIES[p.below_usize(COMPANIES.len())];
        let vip = ["", "gold", "silver"][p.below_usize(3)];
        duplicates += u64::from(dup_of.is_some());
        writeln!(
            out,
            "L{i:08},{first},{},{email},{phone},\"{company}\",{city},{cc},{vip},line_{person_no}",
            last.replace('"', "\"\"")
        )?;
    }
    out.flush()?;
    Ok(SampleSummary { rows, duplicates })
}

/// A small deterministic generator (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn below_usize(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }
}
