//! Companies through the same kind of evidence as people: the name with its
//! legal form removed (`Ltd`, `Limited`, `Inc.`, `有限公司`, `股份有限公司`),
//! web domain (from the domain field or a non-webmail email), tax id, phone
//! and address parts. A different tax id, or two different own domains, keep
//! two records apart whatever else agrees; a shared name alone only reaches
//! review (two firms of one name in two cities are common).

use rustc_hash::FxHashMap;
use synchub_core::model::Company;

use crate::matcher::cluster::Clusters;
use crate::normalize::address_parts::address_parts;
use crate::normalize::company::normalize_company;
use crate::normalize::phone::normalize_phone;
use crate::normalize::{clean_text, fold};

/// Webmail domains: an address there says nothing about the company.
const WEBMAIL: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "icloud.com",
    "aol.com",
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "msn.com",
    "live.com",
    "yahoo.com.tw",
    "yahoo.com.hk",
    "hinet.net",
    "netvigator.com",
    "btinternet.com",
    "bigpond.com",
];

/// What a company pair is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompanyDecision {
    /// The same company.
    Same,
    /// Perhaps: a person decides.
    Review,
    /// Different companies.
    Different,
}

#[derive(Debug, Default)]
struct PreparedCompany {
    name: String,
    domain: Option<String>,
    tax_id: Option<String>,
    phones: Vec<String>,
    street: Option<(Option<String>, Option<String>)>,
    city: Option<String>,
}

fn prepare(c: &Company, region: Option<&str>) -> PreparedCompany {
    let own_domain = |d: &str| {
        let d = fold(d);
        let d = d
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let d = d
            .trim_start_matches("www.")
            .trim_end_matches('/')
            .to_string();
        (!d.is_empty() && !WEBMAIL.contains(&d.as_str())).then_some(d)
    };
    let domain = c.domain.as_deref().and_then(own_domain).or_else(|| {
        c.emails
            .iter()
            .find_map(|e| e.rsplit_once('@').and_then(|(_, d)| own_domain(d)))
    });
    let addr = c.addresses.first();
    let region = addr
        .and_then(|a| a.country.as_deref())
        .and_then(crate::normalize::country::country_code)
        .or_else(|| region.map(str::to_string));
    let mut phones: Vec<String> = c
        .phones
        .iter()
        .filter_map(|p| normalize_phone(p, region.as_deref()))
        .collect();
    phones.sort();
    phones.dedup();
    PreparedCompany {
        name: normalize_company(&c.name),
        domain,
        tax_id: c
            .tax_id
            .as_deref()
            .map(|t| {
                clean_text(t)
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .map(|ch| ch.to_ascii_uppercase())
                    .collect::<String>()
            })
            .filter(|t| !t.is_empty()),
        phones,
        street: addr.and_then(|a| a.line1.as_deref()).map(|l| {
            let p = address_parts(l);
            (p.number, p.street)
        }),
        city: addr.and_then(|a| a.city.as_deref()).map(fold),
    }
}

fn decide(a: &PreparedCompany, b: &PreparedCompany) -> CompanyDecision {
    let both = |x: &Option<String>, y: &Option<String>| match (x, y) {
        (Some(x), Some(y)) => Some(x == y),
        _ => None,
    };
    let tax = both(&a.tax_id, &b.tax_id);
    let domain = both(&a.domain, &b.domain);
    if tax == Some(false) || domain == Some(false) {
        return CompanyDecision::Different;
    }
    if tax == Some(true) {
        return CompanyDecision::Same;
    }
    let name_same = !a.name.is_empty() && a.name == b.name;
    let name_close = name_same
        || (a.name.chars().count() >= 4 && strsim::jaro_winkler(&a.name, &b.name) >= 0.95);
    let phone = (!a.phones.is_empty() && !b.phones.is_empty())
        .then(|| a.phones.iter().any(|p| b.phones.contains(p)));
    let street = match (&a.street, &b.street) {
        (Some((na, sa)), Some((nb, sb))) if sa.is_some() && sa == sb => Some(na == nb),
        (Some(_), Some(_)) => Some(false),
        _ => None,
    };
    let city = both(&a.city, &b.city);
    let support = [domain, phone, street]
        .iter()
        .filter(|x| **x == Some(true))
        .count();
    let against = [phone, street, city]
        .iter()
        .filter(|x| **x == Some(false))
        .count();
    if name_close && support >= 1 && against <= 1 {
        CompanyDecision::Same
    } else if name_same && against == 0 || support >= 2 {
        CompanyDecision::Review
    } else {
        CompanyDecision::Different
    }
}

/// Clusters of the same company, and the pairs left for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyResolution {
    /// Cluster label per company (the smallest index of its cluster).
    pub labels: Vec<u32>,
    /// Pairs in review, `(a, b)` with `a < b`.
    pub review: Vec<(u32, u32)>,
}

/// Deduplicate companies; `default_region` reads phones without a country code.
pub fn resolve_companies(companies: &[Company], default_region: Option<&str>) -> CompanyResolution {
    let prepared: Vec<PreparedCompany> = companies
        .iter()
        .map(|c| prepare(c, default_region))
        .collect();
    // Blocking on the name, the domain, the tax id and each phone.
    let mut blocks: FxHashMap<String, Vec<u32>> = FxHashMap::default();
    for (i, p) in prepared.iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        let mut keys = vec![format!("n:{}", p.name)];
        keys.extend(p.domain.iter().map(|d| format!("d:{d}")));
        keys.extend(p.tax_id.iter().map(|t| format!("t:{t}")));
        keys.extend(p.phones.iter().map(|t| format!("p:{t}")));
        for k in keys {
            blocks.entry(k).or_default().push(i);
        }
    }
    let mut pairs: Vec<(u32, u32)> = blocks
        .values()
        .filter(|m| m.len() > 1 && m.len() <= 200)
        .flat_map(|m| {
            m.iter()
                .enumerate()
                .flat_map(move |(i, a)| m[i + 1..].iter().map(move |b| (*a, *b)))
        })
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut same = Vec::new();
    let mut review = Vec::new();
    for (a, b) in pairs {
        match decide(&prepared[a as usize], &prepared[b as usize]) {
            CompanyDecision::Same => same.push((a, b)),
            CompanyDecision::Review => review.push((a, b)),
            CompanyDecision::Different => {}
        }
    }
    let mut clusters = Clusters::new(companies.len(), &[], 64);
    for (a, b) in same {
        clusters.link_unless(a, b, |x, y| {
            decide(&prepared[x as usize], &prepared[y as usize]) == CompanyDecision::Different
                && conflicting(&prepared[x as usize], &prepared[y as usize])
        });
    }
    CompanyResolution {
        labels: clusters.labels(),
        review,
    }
}

/// Hard evidence of two companies: tax ids or own domains differ.
fn conflicting(a: &PreparedCompany, b: &PreparedCompany) -> bool {
    matches!((&a.tax_id, &b.tax_id), (Some(x), Some(y)) if x != y)
        || matches!((&a.domain, &b.domain), (Some(x), Some(y)) if x != y)
}

/// Decide one pair (for review screens and for a pull meeting one company).
pub fn decide_companies(a: &Company, b: &Company, default_region: Option<&str>) -> CompanyDecision {
    decide(&prepare(a, default_region), &prepare(b, default_region))
}

#[cfg(test)]
#[path = "company_tests.rs"]
mod tests;
