//! The sandbox company's data and its rules: ids and SyncTokens, sparse
//! and full updates (omitted writable fields nulled), stale-object and
//! duplicate-name faults, references that must exist, amounts that must
//! add up, currencies the company has, payments lowering balances, and the
//! `requestid` memory that answers a repeated write with its first answer.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use crate::map::{decimal, money};

/// Entities the sandbox keeps.
pub const ENTITIES: &[&str] = &["Customer", "Item", "Invoice", "SalesReceipt", "Payment"];

/// A fault the API answers with.
#[derive(Debug, Clone)]
pub struct ApiFault {
    /// HTTP status.
    pub status: u16,
    /// `Fault.type`.
    pub kind: &'static str,
    /// `Error[0].code`.
    pub code: &'static str,
    /// `Error[0].Message`.
    pub message: String,
    /// `Error[0].Detail`.
    pub detail: String,
}

impl ApiFault {
    /// A 400 ValidationFault.
    pub fn validation(code: &'static str, message: &str, detail: impl Into<String>) -> Self {
        ApiFault {
            status: 400,
            kind: "ValidationFault",
            code,
            message: message.into(),
            detail: detail.into(),
        }
    }

    /// The answer body.
    pub fn body(&self, time: &str) -> Value {
        json!({
            "Fault": {
                "Error": [{"Message": self.message, "Detail": self.detail, "code": self.code, "element": ""}],
                "type": self.kind,
            },
            "time": time,
        })
    }
}

/// A deleted transaction, for CDC stubs.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// Entity.
    pub entity: String,
    /// Id.
    pub id: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// One company's data.
#[derive(Debug)]
pub struct Company {
    /// Objects by entity, then numeric id.
    pub objects: BTreeMap<String, BTreeMap<u64, Value>>,
    /// Deleted transactions.
    pub deleted: Vec<Deleted>,
    /// Answers by `requestid`.
    pub requests: HashMap<String, (u16, Value)>,
    /// Currencies the company has (home first).
    pub currencies: Vec<String>,
    next_id: u64,
    last_time: DateTime<Utc>,
    /// Offset added to the wall clock (tests move time).
    pub skew: Duration,
}

fn pacific() -> FixedOffset {
    FixedOffset::west_opt(8 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("utc"))
}

/// Renders a time as QuickBooks does (seconds, Pacific offset).
pub fn render_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&pacific())
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

impl Company {
    /// An empty company with `currencies` (home first).
    pub fn new(currencies: Vec<String>) -> Self {
        Company {
            objects: ENTITIES
                .iter()
                .map(|e| (e.to_string(), BTreeMap::new()))
                .collect(),
            deleted: Vec::new(),
            requests: HashMap::new(),
            currencies,
            next_id: 1,
            last_time: DateTime::<Utc>::MIN_UTC,
            skew: Duration::zero(),
        }
    }

    /// The server clock, strictly increasing across writes.
    pub fn tick(&mut self) -> DateTime<Utc> {
        #[allow(clippy::disallowed_methods)]
        let now = Utc::now() + self.skew;
        let t = if now > self.last_time {
            now
        } else {
            self.last_time + Duration::milliseconds(1)
        };
        self.last_time = t;
        t
    }

    /// The server clock without advancing it.
    pub fn now(&self) -> DateTime<Utc> {
        #[allow(clippy::disallowed_methods)]
        let now = Utc::now() + self.skew;
        now.max(self.last_time)
    }

    /// Inserts a seed object with a given update time.
    pub fn seed(&mut self, entity: &str, mut obj: Value, at: DateTime<Utc>) -> String {
        let id = match s(&obj, "Id").and_then(|i| i.parse::<u64>().ok()) {
            Some(i) => i,
            None => self.next_id,
        };
        self.next_id = self.next_id.max(id + 1);
        obj["Id"] = json!(id.to_string());
        if obj.get("SyncToken").is_none() {
            obj["SyncToken"] = json!("0");
        }
        obj["domain"] = json!("QBO");
        obj["sparse"] = json!(false);
        obj["MetaData"] =
            json!({"CreateTime": render_time(at), "LastUpdatedTime": render_time(at)});
        if matches!(entity, "Customer" | "Item") && obj.get("Active").is_none() {
            obj["Active"] = json!(true);
        }
        self.objects
            .entry(entity.to_string())
            .or_default()
            .insert(id, obj);
        id.to_string()
    }

    fn table(&self, entity: &str) -> &BTreeMap<u64, Value> {
        static EMPTY: BTreeMap<u64, Value> = BTreeMap::new();
        self.objects.get(entity).unwrap_or(&EMPTY)
    }

    /// One object.
    pub fn get(&self, entity: &str, id: &str) -> Option<&Value> {
        self.table(entity).get(&id.parse::<u64>().ok()?)
    }

    /// All objects of an entity.
    pub fn all(&self, entity: &str) -> impl Iterator<Item = &Value> {
        self.table(entity).values()
    }

    fn not_found(entity: &str, id: &str) -> ApiFault {
        ApiFault::validation(
            "610",
            "Object Not Found",
            format!("Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees. ({entity} {id})"),
        )
    }

    fn active_ref(&self, entity: &str, r: Option<&Value>, what: &str) -> Result<Value, ApiFault> {
        let id = r
            .and_then(|r| r.get("value"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiFault::validation(
                    "2020",
                    "Required param missing, need to supply the required value for the API",
                    format!("Required parameter {what} is missing in the request"),
                )
            })?;
        let obj = self
            .get(entity, id)
            .ok_or_else(|| Self::not_found(entity, id))?;
        if obj.get("Active").and_then(Value::as_bool) == Some(false) {
            return Err(Self::not_found(entity, id));
        }
        Ok(obj.clone())
    }

    fn name_taken(&self, name: &str, except: Option<&str>) -> bool {
        self.all("Customer").chain(self.all("Item")).any(|c| {
            s(c, "DisplayName").or_else(|| s(c, "Name")).as_deref() == Some(name)
                && s(c, "Id").as_deref() != except
        })
    }

    /// Creates or updates an object as `POST /{entity}` does.
    pub fn write(&mut self, entity: &str, body: Value) -> Result<Value, ApiFault> {
        let Value::Object(mut body) = body else {
            return Err(ApiFault::validation(
                "2500",
                "Invalid Reference Id",
                "the request body is not an object",
            ));
        };
        match body.get("Id").and_then(Value::as_str).map(str::to_string) {
            Some(id) => self.update(entity, &id, body),
            None => {
                for k in ["Id", "SyncToken", "MetaData", "domain"] {
                    body.remove(k);
                }
                // Totals and balances of documents are computed, not taken.
                if matches!(entity, "Invoice" | "SalesReceipt") {
                    body.remove("Balance");
                    body.remove("TotalAmt");
                }
                let obj = self.validate(entity, Value::Object(body), None)?;
                let at = self.tick();
                let id = self.seed(entity, obj, at);
                if entity == "Payment" {
                    self.apply_payment(&id, at)?;
                }
                Ok(self.get(entity, &id).cloned().unwrap_or(Value::Null))
            }
        }
    }

    fn update(
        &mut self,
        entity: &str,
        id: &str,
        body: Map<String, Value>,
    ) -> Result<Value, ApiFault> {
        let current = self
            .get(entity, id)
            .cloned()
            .ok_or_else(|| Self::not_found(entity, id))?;
        let token = s(&current, "SyncToken").unwrap_or_default();
        if body.get("SyncToken").and_then(Value::as_str) != Some(token.as_str()) {
            return Err(ApiFault::validation(
                "5010",
                "Stale Object Error",
                "Stale Object Error : You and root were working on this at the same time. root finished before you did, so your work was not saved.",
            ));
        }
        let sparse = body.get("sparse").and_then(Value::as_bool) == Some(true);
        let mut next = if sparse {
            current.clone()
        } else {
            // A full update nulls every writable field it omits.
            let mut keep = Map::new();
            for k in ["Id", "MetaData", "domain", "Balance", "Active"] {
                if let Some(v) = current.get(k) {
                    keep.insert(k.into(), v.clone());
                }
            }
            Value::Object(keep)
        };
        for (k, v) in body {
            if !matches!(
                k.as_str(),
                "Id" | "SyncToken" | "sparse" | "MetaData" | "domain"
            ) {
                next[k.as_str()] = v;
            }
        }
        let mut next = self.validate(entity, next, Some(id))?;
        let n: u64 = token.parse().unwrap_or(0) + 1;
        next["SyncToken"] = json!(n.to_string());
        let at = self.tick();
        next["MetaData"]["LastUpdatedTime"] = json!(render_time(at));
        next["sparse"] = json!(false);
        if let Ok(k) = id.parse::<u64>() {
            self.objects
                .entry(entity.to_string())
                .or_default()
                .insert(k, next.clone());
        }
        Ok(next)
    }

    /// Deletes a transaction (`?operation=delete`).
    pub fn delete(&mut self, entity: &str, body: &Value) -> Result<Value, ApiFault> {
        if matches!(entity, "Customer" | "Item") {
            return Err(ApiFault::validation(
                "6000",
                "A business validation error has occurred while processing your request",
                "Name-list objects cannot be deleted: make them inactive",
            ));
        }
        let id = s(body, "Id").ok_or_else(|| {
            ApiFault::validation(
                "2020",
                "Required param missing, need to supply the required value for the API",
                "Id",
            )
        })?;
        let current = self
            .get(entity, &id)
            .cloned()
            .ok_or_else(|| Self::not_found(entity, &id))?;
        if s(body, "SyncToken") != s(&current, "SyncToken") {
            return Err(ApiFault::validation(
                "5010",
                "Stale Object Error",
                "Stale Object Error : You and root were working on this at the same time.",
            ));
        }
        let at = self.tick();
        if let Ok(k) = id.parse::<u64>() {
            self.objects
                .entry(entity.to_string())
                .or_default()
                .remove(&k);
        }
        self.deleted.push(Deleted {
            entity: entity.into(),
            id: id.clone(),
            at,
        });
        Ok(json!({"domain": "QBO", "status": "Deleted", "Id": id}))
    }

    fn validate(&self, entity: &str, mut obj: Value, id: Option<&str>) -> Result<Value, ApiFault> {
        match entity {
            "Customer" => {
                let name = s(&obj, "DisplayName")
                    .or_else(|| {
                        let n = [s(&obj, "GivenName"), s(&obj, "FamilyName")].into_iter().flatten().collect::<Vec<_>>().join(" ");
                        (!n.is_empty()).then_some(n)
                    })
                    .ok_or_else(|| ApiFault::validation("6000", "A business validation error has occurred while processing your request", "Business Validation Error: You must fill out at least one split line. DisplayName or a name part is required."))?;
                if self.name_taken(&name, id) {
                    return Err(ApiFault::validation(
                        "6240",
                        "Duplicate Name Exists Error",
                        format!("The name supplied already exists. : {name}"),
                    ));
                }
                obj["DisplayName"] = json!(name);
                obj["FullyQualifiedName"] = json!(name);
                if obj.get("Balance").is_none() {
                    obj["Balance"] = json!(0);
                    obj["BalanceWithJobs"] = json!(0);
                }
            }
            "Item" => {
                let name = s(&obj, "Name").ok_or_else(|| {
                    ApiFault::validation(
                        "2020",
                        "Required param missing, need to supply the required value for the API",
                        "Required parameter Name is missing in the request",
                    )
                })?;
                if self.name_taken(&name, id) {
                    return Err(ApiFault::validation(
                        "6240",
                        "Duplicate Name Exists Error",
                        format!("The name supplied already exists. : {name}"),
                    ));
                }
                let ty = s(&obj, "Type").unwrap_or_else(|| "NonInventory".into());
                if matches!(ty.as_str(), "Service" | "NonInventory")
                    && obj.get("IncomeAccountRef").is_none()
                {
                    return Err(ApiFault::validation(
                        "2020",
                        "Required param missing, need to supply the required value for the API",
                        "Required parameter IncomeAccountRef is missing in the request",
                    ));
                }
                obj["FullyQualifiedName"] = json!(name);
            }
            "Invoice" | "SalesReceipt" => self.validate_txn(entity, &mut obj, id)?,
            "Payment" => {
                self.active_ref("Customer", obj.get("CustomerRef"), "CustomerRef")?;
                decimal(obj.get("TotalAmt")).ok_or_else(|| {
                    ApiFault::validation(
                        "2020",
                        "Required param missing, need to supply the required value for the API",
                        "Required parameter TotalAmt is missing in the request",
                    )
                })?;
            }
            other => {
                return Err(ApiFault::validation(
                    "4000",
                    "Error parsing query",
                    format!("unsupported entity {other}"),
                ));
            }
        }
        Ok(obj)
    }

    fn validate_txn(
        &self,
        entity: &str,
        obj: &mut Value,
        id: Option<&str>,
    ) -> Result<(), ApiFault> {
        let customer = self.active_ref("Customer", obj.get("CustomerRef"), "CustomerRef")?;
        obj["CustomerRef"]["name"] = customer.get("DisplayName").cloned().unwrap_or(Value::Null);
        let home = self
            .currencies
            .first()
            .cloned()
            .unwrap_or_else(|| "USD".into());
        let currency = obj
            .get("CurrencyRef")
            .and_then(|c| s(c, "value"))
            .unwrap_or(home.clone());
        if !self.currencies.contains(&currency) {
            return Err(ApiFault::validation("6000", "A business validation error has occurred while processing your request", format!("Business Validation Error: The currency {currency} is not enabled in this company (multicurrency list: {})", self.currencies.join(", "))));
        }
        obj["CurrencyRef"] = json!({"value": currency});
        if let Some(doc) = s(obj, "DocNumber") {
            if doc.chars().count() > 21 {
                return Err(ApiFault::validation(
                    "6000",
                    "A business validation error has occurred while processing your request",
                    "DocNumber is longer than 21 characters",
                ));
            }
            let dup = self.all(entity).any(|o| {
                s(o, "DocNumber").as_deref() == Some(doc.as_str()) && s(o, "Id").as_deref() != id
            });
            if dup {
                return Err(ApiFault::validation("6140", "Duplicate Document Number Error", format!("Duplicate Document Number Error : You must specify a different number. This number has already been used. DocNumber={doc}")));
            }
        }
        let mut subtotal = Decimal::ZERO;
        let mut lines = Vec::new();
        for (i, l) in obj
            .get("Line")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            if l.get("DetailType").and_then(Value::as_str) == Some("SubTotalLineDetail") {
                continue;
            }
            let d = l.get("SalesItemLineDetail").cloned().unwrap_or(Value::Null);
            let item = self.active_ref("Item", d.get("ItemRef"), &format!("Line[{i}].ItemRef"))?;
            let amount = decimal(l.get("Amount")).ok_or_else(|| {
                ApiFault::validation(
                    "2020",
                    "Required param missing, need to supply the required value for the API",
                    format!("Line[{i}].Amount"),
                )
            })?;
            if let (Some(q), Some(p)) = (decimal(d.get("Qty")), decimal(d.get("UnitPrice"))) {
                if (q * p).round_dp(2) != amount.round_dp(2) {
                    return Err(ApiFault::validation(
                        "6070",
                        "Amount is not equal to UnitPrice * Qty",
                        format!(
                            "Line {}: Amount {amount} is not equal to UnitPrice {p} * Qty {q}",
                            i + 1
                        ),
                    ));
                }
            }
            subtotal += amount;
            let mut l = l.clone();
            l["Id"] = json!((lines.len() + 1).to_string());
            l["SalesItemLineDetail"]["ItemRef"]["name"] =
                item.get("Name").cloned().unwrap_or(Value::Null);
            lines.push(l);
        }
        if lines.is_empty() {
            return Err(ApiFault::validation(
                "6000",
                "A business validation error has occurred while processing your request",
                "Business Validation Error: You must fill out at least one split line.",
            ));
        }
        lines.push(json!({"Amount": money(subtotal), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}));
        obj["Line"] = Value::Array(lines);
        let tax = decimal(obj.get("TxnTaxDetail").and_then(|t| t.get("TotalTax")))
            .unwrap_or(Decimal::ZERO);
        obj["TxnTaxDetail"] = json!({"TotalTax": money(tax)});
        let total = subtotal + tax;
        let paid = decimal(obj.get("TotalAmt"))
            .zip(decimal(obj.get("Balance")))
            .map(|(t, b)| t - b);
        obj["TotalAmt"] = money(total);
        if entity == "Invoice" {
            let paid = paid.unwrap_or(Decimal::ZERO);
            obj["Balance"] = money((total - paid).max(Decimal::ZERO));
            if obj.get("LinkedTxn").is_none() {
                obj["LinkedTxn"] = json!([]);
            }
        }
        if obj.get("TxnDate").is_none() {
            obj["TxnDate"] = json!(self
                .now()
                .with_timezone(&pacific())
                .format("%Y-%m-%d")
                .to_string());
        }
        Ok(())
    }

    fn apply_payment(&mut self, payment_id: &str, at: DateTime<Utc>) -> Result<(), ApiFault> {
        let payment = self
            .get("Payment", payment_id)
            .cloned()
            .unwrap_or(Value::Null);
        for l in payment
            .get("Line")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let amount = decimal(l.get("Amount")).unwrap_or(Decimal::ZERO);
            for t in l
                .get("LinkedTxn")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                if s(&t, "TxnType").as_deref() != Some("Invoice") {
                    continue;
                }
                let Some(inv_id) = s(&t, "TxnId") else {
                    continue;
                };
                let Some(inv) = self.get("Invoice", &inv_id).cloned() else {
                    return Err(Self::not_found("Invoice", &inv_id));
                };
                let balance = decimal(inv.get("Balance")).unwrap_or(Decimal::ZERO);
                let mut inv = inv;
                inv["Balance"] = money((balance - amount).max(Decimal::ZERO));
                let n: u64 = s(&inv, "SyncToken")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0)
                    + 1;
                inv["SyncToken"] = json!(n.to_string());
                inv["MetaData"]["LastUpdatedTime"] = json!(render_time(at));
                if let Some(arr) = inv.get_mut("LinkedTxn").and_then(Value::as_array_mut) {
                    arr.push(json!({"TxnId": payment_id, "TxnType": "Payment"}));
                }
                if let Ok(k) = inv_id.parse::<u64>() {
                    self.objects
                        .entry("Invoice".into())
                        .or_default()
                        .insert(k, inv);
                }
            }
        }
        Ok(())
    }
}
