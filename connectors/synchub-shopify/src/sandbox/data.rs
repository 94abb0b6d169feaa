//! Deterministic sample data of the sandbox shop.
//!
//! The first rows are hand-written people who also shop in the WooCommerce
//! sandbox under other spellings and phone formats (`陳大文` here, `Tai Man
//! Chan` there), plus messy records: no email, an invalid phone, no name, a
//! 0-line order and a guest order. Every further row is generated from its
//! index alone, so a 100,000-row shop costs nothing until a row is read.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;

/// A customer as the sandbox stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRow {
    /// Numeric id (the GID is `gid://shopify/Customer/{id}`).
    pub id: u64,
    /// `firstName`.
    pub first_name: Option<String>,
    /// `lastName`.
    pub last_name: Option<String>,
    /// `email`.
    pub email: Option<String>,
    /// `phone` (E.164, as Shopify validates it).
    pub phone: Option<String>,
    /// `tags`.
    pub tags: Vec<String>,
    /// `note`.
    pub note: Option<String>,
    /// `ENABLED`, `DISABLED`, `INVITED`, `DECLINED`.
    pub state: String,
    /// `createdAt`.
    pub created_at: DateTime<Utc>,
    /// `updatedAt`.
    pub updated_at: DateTime<Utc>,
    /// `defaultAddress`.
    pub address: Option<AddressRow>,
    /// Shop currency of `amountSpent`.
    pub currency: String,
}

/// A mailing address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AddressRow {
    /// Street line.
    pub address1: String,
    /// City.
    pub city: String,
    /// Province name.
    pub province: Option<String>,
    /// Province code.
    pub province_code: Option<String>,
    /// Postal code.
    pub zip: Option<String>,
    /// Country name.
    pub country: String,
    /// ISO code.
    pub country_code: String,
    /// Free-form phone (not validated by Shopify).
    pub phone: Option<String>,
    /// Company.
    pub company: Option<String>,
}

/// An order as the sandbox stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    /// Numeric id.
    pub id: u64,
    /// Order number (`#{number}`).
    pub number: u64,
    /// Buyer email.
    pub email: Option<String>,
    /// Buyer id (`None`: guest checkout).
    pub customer_id: Option<u64>,
    /// `createdAt`.
    pub created_at: DateTime<Utc>,
    /// `updatedAt`.
    pub updated_at: DateTime<Utc>,
    /// `cancelledAt`.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// `displayFinancialStatus`.
    pub financial: String,
    /// `displayFulfillmentStatus`.
    pub fulfillment: String,
    /// Currency.
    pub currency: String,
    /// Lines.
    pub lines: Vec<LineRow>,
    /// Tax on the order.
    pub tax: Decimal,
}

/// An order line.
#[derive(Debug, Clone, PartialEq)]
pub struct LineRow {
    /// Numeric id.
    pub id: u64,
    /// SKU.
    pub sku: String,
    /// Title.
    pub title: String,
    /// Quantity.
    pub quantity: i64,
    /// Unit price.
    pub price: Decimal,
}

/// First customer id; customer `i` of the seed has id `FIRST_CUSTOMER_ID + i`.
pub const FIRST_CUSTOMER_ID: u64 = 7_001_000_000;
/// First order id.
pub const FIRST_ORDER_ID: u64 = 5_001_000_000;
/// Hand-written customers at the start of the seed.
pub const STORY_CUSTOMERS: u64 = 8;

/// When the seed begins; seed row `i` is updated at `SEED_START + (i / 2) * 30 s`
/// (pairs share a timestamp, to exercise de-duplication at the watermark).
pub fn seed_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The `updatedAt` of seed row `i`.
pub fn seed_time(i: u64) -> DateTime<Utc> {
    seed_start() + Duration::seconds(i64::try_from(i / 2).unwrap_or(i64::MAX / 60) * 30)
}

fn addr(line: &str, city: &str, code: &str, country: &str, phone: Option<&str>) -> AddressRow {
    AddressRow {
        address1: line.into(),
        city: city.into(),
        country: country.into(),
        country_code: code.into(),
        phone: phone.map(String::from),
        ..AddressRow::default()
    }
}

/// (first, last, email, phone, address, currency) of a story customer.
type Story = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<AddressRow>,
    &'static str,
);

fn story(i: u64) -> Story {
    // (first, last, email, phone, address, currency)
    match i {
        0 => (
            Some("大文"),
            Some("陳"),
            Some("tai.man.chan@example.com.tw"),
            Some("+886932111222"),
            Some(addr(
                "忠孝東路四段100號",
                "台北市",
                "TW",
                "Taiwan",
                Some("+886 932-111-222"),
            )),
            "TWD",
        ),
        1 => (
            Some("美玲"),
            Some("林"),
            Some("meiling.lin@example.com.tw"),
            Some("+886912000111"),
            Some(addr(
                "信義路五段7號",
                "台北市",
                "TW",
                "Taiwan",
                Some("+886227208889"),
            )),
            "TWD",
        ),
        2 => (
            Some("Siu Ming"),
            Some("Wong"),
            Some("siuming.wong@example.hk"),
            Some("+85291234567"),
            Some(addr(
                "彌敦道 300 號",
                "九龍",
                "HK",
                "Hong Kong",
                Some("+852 9123 4567"),
            )),
            "HKD",
        ),
        3 => (
            Some("伟"),
            Some("张"),
            Some("zhang.wei@example.cn"),
            Some("+8613800138000"),
            Some(addr("南京西路 1266 号", "上海市", "CN", "China", None)),
            "CNY",
        ),
        4 => (
            Some("志明"),
            Some("黃"),
            None,
            Some("+886922333444"),
            None,
            "TWD",
        ),
        5 => (
            Some("Mary"),
            Some("Lee"),
            Some("mary.lee@example.com"),
            None,
            Some(addr(
                "1 Main St",
                "Kowloon",
                "HK",
                "Hong Kong",
                Some("12345"),
            )),
            "HKD",
        ),
        6 => (
            Some("Ｋａｉ"),
            Some("ＬＩＮ"),
            Some("KAI.LIN@EXAMPLE.COM.TW"),
            Some("+886933111222"),
            None,
            "TWD",
        ),
        _ => (
            None,
            None,
            Some("anon.buyer@example.com"),
            None,
            None,
            "TWD",
        ),
    }
}

const FAMILY: [&str; 10] = ["陳", "林", "黃", "張", "李", "王", "吳", "劉", "蔡", "楊"];
const GIVEN: [&str; 8] = [
    "大文", "美玲", "志明", "淑芬", "家豪", "雅婷", "俊傑", "怡君",
];
const LATIN_FAMILY: [&str; 6] = ["Chan", "Wong", "Lee", "Smith", "Garcia", "Tan"];
const LATIN_GIVEN: [&str; 6] = ["Tai Man", "Mei Ling", "John", "Maria", "Wei", "Aiko"];

/// Seed customer `i`.
pub fn seed_customer(i: u64) -> CustomerRow {
    let t = seed_time(i);
    let mut row = CustomerRow {
        id: FIRST_CUSTOMER_ID + i,
        first_name: None,
        last_name: None,
        email: None,
        phone: None,
        tags: Vec::new(),
        note: None,
        state: "ENABLED".into(),
        created_at: t - Duration::days(30),
        updated_at: t,
        address: None,
        currency: "TWD".into(),
    };
    if i < STORY_CUSTOMERS {
        let (first, last, email, phone, address, currency) = story(i);
        row.first_name = first.map(String::from);
        row.last_name = last.map(String::from);
        row.email = email.map(String::from);
        row.phone = phone.map(String::from);
        row.address = address;
        row.currency = currency.into();
        if i == 0 {
            row.tags = vec!["VIP".into()];
        }
        return row;
    }
    let k = usize::try_from(i).unwrap_or(0);
    if i.is_multiple_of(3) {
        row.first_name = Some(LATIN_GIVEN[k % 6].into());
        row.last_name = Some(LATIN_FAMILY[(k / 6) % 6].into());
    } else {
        row.first_name = Some(GIVEN[k % 8].into());
        row.last_name = Some(FAMILY[(k / 8) % 10].into());
    }
    row.email = Some(format!("customer{i}@example.com"));
    row.phone = Some(format!("+8869{:08}", (i * 7_919) % 100_000_000));
    if i.is_multiple_of(5) {
        row.tags = vec!["wholesale".into()];
    }
    row
}

/// Seed order `i` for a shop of `customers` customers.
pub fn seed_order(i: u64, customers: u64) -> OrderRow {
    let t = seed_time(i) + Duration::seconds(10);
    let line = |n: u64, sku: &str, title: &str, qty: i64, cents: i64| LineRow {
        id: 9_001_000_000 + i * 10 + n,
        sku: sku.into(),
        title: title.into(),
        quantity: qty,
        price: Decimal::new(cents, 2),
    };
    let mut row = OrderRow {
        id: FIRST_ORDER_ID + i,
        number: 1001 + i,
        email: None,
        customer_id: None,
        created_at: t - Duration::hours(1),
        updated_at: t,
        cancelled_at: None,
        financial: "PAID".into(),
        fulfillment: "FULFILLED".into(),
        currency: "TWD".into(),
        lines: Vec::new(),
        tax: Decimal::ZERO,
    };
    let story_orders: u64 = 5;
    let buyer = if i < story_orders {
        match i {
            0 => {
                row.lines = vec![
                    line(0, "TEA-OOLONG-150", "凍頂烏龍茶 150g", 3, 19_900),
                    line(1, "CUP-CELADON", "青瓷茶杯", 1, 45_050),
                ];
                Some(0)
            }
            1 => {
                row.lines = vec![line(0, "TEA-PUER-357", "普洱茶餅 357g", 1, 128_000)];
                row.fulfillment = "UNFULFILLED".into();
                Some(1)
            }
            2 => {
                row.currency = "HKD".into();
                row.lines = vec![line(0, "TEA-JASMINE", "茉莉花茶", 2, 8_800)];
                Some(2)
            }
            3 => {
                // a 0-line order (e.g. a custom order that was emptied)
                row.currency = "CNY".into();
                row.financial = "VOIDED".into();
                row.fulfillment = "UNFULFILLED".into();
                row.cancelled_at = Some(t);
                Some(3)
            }
            _ => {
                // a guest checkout: no customer, only an email
                row.email = Some("guest@example.hk".into());
                row.currency = "HKD".into();
                row.lines = vec![line(0, "GIFT-BOX", "禮盒", 1, 60_000)];
                None
            }
        }
    } else {
        let n = 1 + (i % 3);
        row.lines = (0..n)
            .map(|k| {
                let cents = i64::try_from(1_000 + (i * 37 + k * 101) % 90_000).unwrap_or(1_000);
                line(
                    k,
                    &format!("SKU-{:04}", (i + k) % 5_000),
                    "商品",
                    1 + i64::try_from(k).unwrap_or(0),
                    cents,
                )
            })
            .collect();
        row.tax = Decimal::new(i64::try_from(i % 500).unwrap_or(0), 2);
        (customers > 0).then(|| (i * 7_919) % customers)
    };
    if let Some(c) = buyer.filter(|c| *c < customers) {
        row.customer_id = Some(FIRST_CUSTOMER_ID + c);
        if row.email.is_none() {
            row.email = seed_customer(c).email;
        }
    }
    row
}

impl OrderRow {
    /// Sum of the lines.
    pub fn subtotal(&self) -> Decimal {
        self.lines
            .iter()
            .map(|l| l.price * Decimal::from(l.quantity))
            .sum()
    }
}
