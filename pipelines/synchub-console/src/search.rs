//! Finding a customer the way `synchub contacts` does: by CRM id, by any
//! email, by a phone written any way (normalized to E.164 with
//! synchub-identity, the normalizer the sync engine keys contacts by), or
//! by a name in any script, whole or in part.

use synchub_store::relations::{ContactSearch, ContactSummary};
use synchub_store::{Store, StoreError};

/// Regions the customers behind synchub mostly write national numbers in.
const USUAL_REGIONS: &[&str] = &["TW", "HK", "CN"];

/// The exact lookups `text` can stand for: a CRM id, an email key, the
/// phone keys of every region it parses in (`region` first).
fn exact_search(text: &str, region: Option<&str>) -> ContactSearch {
    let mut search = ContactSearch {
        ids: vec![text.to_string()],
        ..ContactSearch::default()
    };
    if text.contains('@') {
        if let Some(e) = synchub_identity::normalize_email(text) {
            search.keys.push(format!("email:{e}"));
        }
    }
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let phone_like = text
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().#/".contains(c) || c.is_whitespace());
    if digits >= 6 && phone_like {
        let regions = std::iter::once(None)
            .chain(region.map(Some))
            .chain(USUAL_REGIONS.iter().map(|r| Some(*r)));
        for r in regions {
            if let Some(p) = synchub_identity::normalize_phone(text, r) {
                let key = format!("phone:{p}");
                if !search.keys.contains(&key) {
                    search.keys.push(key);
                }
            }
        }
    }
    search
}

/// Substring patterns for a name or part of an email, also folded the
/// way names are matched (full-width forms, spacing).
fn pattern_search(text: &str) -> ContactSearch {
    let mut patterns = vec![text.to_string()];
    let folded = synchub_identity::normalize_name(text);
    if !folded.is_empty() && folded != text.to_lowercase() {
        patterns.push(folded);
    }
    ContactSearch {
        patterns,
        ..ContactSearch::default()
    }
}

/// Live contacts `text` names: exact matches (id, email, phone) when there
/// are any; else the survivor of a merged-away id; else name and email
/// substrings. At most `limit`.
pub async fn find_contacts(
    store: &Store,
    text: &str,
    region: Option<&str>,
    limit: i64,
) -> Result<Vec<ContactSummary>, StoreError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let region = region.map(str::trim).filter(|r| !r.is_empty());
    let exact = store
        .find_contacts(&exact_search(text, region), limit)
        .await?;
    if !exact.is_empty() {
        return Ok(exact);
    }
    if let Some(live) = store.live_contact_id(text).await? {
        let search = ContactSearch {
            ids: vec![live],
            ..ContactSearch::default()
        };
        return store.find_contacts(&search, limit).await;
    }
    store.find_contacts(&pattern_search(text), limit).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_national_mobile_written_with_spaces_finds_its_e164_key() {
        let s = exact_search("0912 345 678", Some("TW"));
        assert!(s.keys.contains(&"phone:+886912345678".to_string()), "{s:?}");
        let s = exact_search("陳", None);
        assert!(s.keys.is_empty(), "{s:?}");
        let s = exact_search("Tai.Man@Example.HK", None);
        assert_eq!(s.keys, vec!["email:tai.man@example.hk".to_string()]);
    }
}
