//! Deterministic sample data: contacts CSV files of any size with
//! duplicates, CJK names, phone formats of three regions and bad rows.

use std::io::Write;
use std::path::Path;

const FAMILY: &[&str] = &[
    "陳", "林", "黃", "張", "李", "王", "吳", "劉", "蔡", "楊", "Chan", "Wong", "Lee", "Smith",
    "García",
];
const GIVEN: &[&str] = &[
    "大文", "美玲", "志明", "淑芬", "偉", "秀英", "Tai Man", "Mei-Ling", "John", "Ana", "Wei",
    "Siu Ming",
];
const CITY: &[&str] = &[
    "台北市",
    "Hong Kong",
    "深圳",
    "Kowloon",
    "Taipei",
    "上海",
    "London",
];

/// A tiny deterministic generator (no dependency, stable across versions).
pub struct Lcg(u64);

impl Lcg {
    /// Seeded generator.
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }
    /// Next value below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Header of the generated files.
pub const HEADER: &str = "id,first_name,last_name,email,phone,company,city,birth_date,notes";

/// One generated row (without newline).
pub fn contact_row(i: u64, rng: &mut Lcg) -> String {
    let fam = FAMILY[rng.below(FAMILY.len() as u64) as usize];
    let giv = GIVEN[rng.below(GIVEN.len() as u64) as usize];
    let city = CITY[rng.below(CITY.len() as u64) as usize];
    // Every 50th row repeats the email of an earlier person: a duplicate.
    let person = if i.is_multiple_of(50) && i > 0 {
        i - 37
    } else {
        i
    };
    let email = if i.is_multiple_of(13) {
        String::new()
    } else {
        format!("person{person}@example.com")
    };
    let phone = match i % 4 {
        0 => format!(
            "+886 9{:02}-{:03}-{:03}",
            i % 100,
            (i / 100) % 1000,
            i % 1000
        ),
        1 => format!("+852 9{:03} {:04}", i % 1000, (i * 7) % 10000),
        2 => format!("+86 13{} {:04} {:04}", i % 10, (i * 3) % 10000, i % 10000),
        _ => format!("09{:02}{:06}", i % 100, i % 1_000_000),
    };
    let birth = match i % 500 {
        7 => "19xx-13-01".to_string(),
        n if n % 3 == 0 => format!("19{:02}-{:02}-{:02}", 50 + i % 50, 1 + i % 12, 1 + i % 28),
        _ => String::new(),
    };
    if i % 700 == 11 {
        return format!("C{i},,,,,,{city},,no name no email no phone");
    }
    format!(
        "C{i},{giv},{fam},{email},{phone},Company {} Ltd,{city},{birth},row {i}",
        i % 97
    )
}

/// Writes a contacts CSV of `rows` data rows.
pub fn write_contacts_csv(path: &Path, rows: u64, seed: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "{HEADER}")?;
    let mut rng = Lcg::new(seed);
    for i in 0..rows {
        writeln!(f, "{}", contact_row(i, &mut rng))?;
    }
    f.flush()
}

/// A pipeline `shop-tw` pulling the contacts of a Shopify shop (a sandbox)
/// through the connection `shop_tw`, archiving contacts the shop deletes.
pub fn shopify_pull_pipeline(
    shop: &str,
    base_url: &str,
    token: &str,
    webhook_secret: &str,
) -> String {
    format!(
        r#"version = 1
name = "shop-tw"
region = "TW"

[[connections]]
name = "shop_tw"
kind = "shopify"
direction = "pull"
objects = ["contact"]

[connections.config]
shop = "{shop}"
base_url = "{base_url}"
access_token = "{token}"
webhook_secrets = ["{webhook_secret}"]

[deletes]
contact = "archive"
"#
    )
}

/// A pipeline file that pulls the generated CSV at `csv` into the CRM.
pub fn csv_pipeline(csv: &Path, page_size: usize) -> String {
    format!(
        r#"version = 1
name = "test-csv"
region = "TW"

[[connections]]
name = "csv_source"
kind = "csv"
direction = "pull"
objects = ["contact"]

[connections.config]
path = "{}"
id_column = "id"
page_size = {page_size}

[connections.config.map]
first_name = "first_name"
last_name = "last_name"
email = "email"
phone = "phone"
company = "company"
city = "city"
birth_date = "birth_date"
"#,
        csv.display()
    )
}
