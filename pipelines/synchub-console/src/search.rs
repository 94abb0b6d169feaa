//! Finding a customer the way `synchub contacts` does: by CRM id, by any
//! email, by a phone written any way (normalized to E.164 with
//! synchub-identity, the normalizer the sync engine keys contacts by), or
//! by a name in any script, whole or in part.
//!
//! On PostgreSQL a name search goes through the indexes of migration 0010
//! (pg_trgm over the contacts' name forms, and the unigrams and bigrams of
//! their characters outside ASCII for Chinese, Japanese or Korean names), so
//! it answers in milliseconds on a million contacts; on SQLite it reads the
//! live contacts (`Store::find_contacts`).

use sqlx::Row;
use synchub_store::relations::{ContactSearch, ContactSummary};
use synchub_store::{Backend, Store, StoreError};

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
    // The keys are turned into ids first: a search by ids alone is an
    // index lookup, where ids OR keys in one statement reads every contact.
    let exact = exact_search(text, region);
    let mut ids = exact.ids;
    ids.extend(keyed_ids(store, &exact.keys).await?);
    let by_ids = ContactSearch {
        ids,
        ..ContactSearch::default()
    };
    let exact = store.find_contacts(&by_ids, limit).await?;
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
    let patterns = pattern_search(text);
    if store.backend() != Backend::Postgres {
        return store.find_contacts(&patterns, limit).await;
    }
    let ids = indexed_name_search(store, &patterns.patterns, limit).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let search = ContactSearch {
        ids,
        ..ContactSearch::default()
    };
    store.find_contacts(&search, limit).await
}

/// Ids of the contacts holding any of the exact-match `keys` (only the
/// live ones among them are then read by id).
async fn keyed_ids(store: &Store, keys: &[String]) -> Result<Vec<String>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let params: Vec<String> = (1..=keys.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT DISTINCT crm_id FROM match_key WHERE kind = 'contact' AND key IN ({})",
        params.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for k in keys {
        query = query.bind(k.as_str());
    }
    let rows = query.fetch_all(store.pool()).await.map_err(query_error)?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("crm_id").map_err(query_error))
        .collect()
}

fn query_error(e: sqlx::Error) -> StoreError {
    StoreError::Query {
        context: "searching contacts",
        source: e,
    }
}

/// The forms of a pattern looked for in the searched text: lower case as
/// typed, and without its spaces (`陳 大文` finds `陳大文`).
fn pattern_forms(patterns: &[String]) -> Vec<String> {
    let mut forms: Vec<String> = Vec::new();
    for p in patterns {
        let lower = p.trim().to_lowercase();
        let squeezed: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
        for f in [lower, squeezed] {
            if !f.is_empty() && !forms.contains(&f) {
                forms.push(f);
            }
        }
    }
    forms
}

/// The grams of `form` the index of migration 0010 holds for every text
/// containing it: each pair of non-ASCII characters side by side, and each
/// non-ASCII character with no such neighbour.
fn grams(form: &str) -> Vec<String> {
    let chars: Vec<char> = form.chars().collect();
    let mut out: Vec<String> = Vec::new();
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii() {
            continue;
        }
        let next = chars.get(i + 1).filter(|n| !n.is_ascii());
        let prev = i
            .checked_sub(1)
            .and_then(|p| chars.get(p))
            .filter(|p| !p.is_ascii());
        let gram = match (next, prev) {
            (Some(n), _) => format!("{c}{n}"),
            (None, Some(_)) => continue,
            (None, None) => c.to_string(),
        };
        if !out.contains(&gram) {
            out.push(gram);
        }
    }
    out
}

/// `%text%` for LIKE, its wildcards escaped with `\`.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Ids of up to `limit` live contacts whose name forms or primary email
/// contain one of `patterns`, through the indexes of migration 0010: the
/// CJK grams narrow to candidates (`@>`), pg_trgm serves the rest, LIKE
/// checks every candidate. PostgreSQL only.
async fn indexed_name_search(
    store: &Store,
    patterns: &[String],
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let forms = pattern_forms(patterns);
    if forms.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = String::from(
        "SELECT id FROM crm_record WHERE kind = 'contact' AND deleted = 0 \
         AND merged_into IS NULL AND (",
    );
    let mut binds: Vec<String> = Vec::new();
    for (n, form) in forms.iter().enumerate() {
        if n > 0 {
            sql.push_str(" OR ");
        }
        sql.push('(');
        let grams = grams(form);
        if !grams.is_empty() {
            sql.push_str("synchub_search_grams(synchub_contact_search_text(data)) @> ARRAY[");
            for (i, g) in grams.into_iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                binds.push(g);
                sql.push_str(&format!("${}", binds.len()));
            }
            sql.push_str("]::text[] AND ");
        }
        binds.push(like_pattern(form));
        sql.push_str(&format!(
            "synchub_contact_search_text(data) LIKE ${} ESCAPE '\\')",
            binds.len()
        ));
    }
    sql.push_str(&format!(") LIMIT {}", limit.max(0)));
    let mut query = sqlx::query(&sql);
    for b in binds {
        query = query.bind(b);
    }
    let rows = query.fetch_all(store.pool()).await.map_err(query_error)?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("id").map_err(query_error))
        .collect()
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

    #[test]
    fn a_cjk_name_is_looked_up_by_its_bigrams_a_lone_character_by_itself() {
        assert_eq!(
            grams("陳大文"),
            vec!["陳大".to_string(), "大文".to_string()]
        );
        assert_eq!(grams("陳"), vec!["陳".to_string()]);
        assert_eq!(grams("陳 文"), vec!["陳".to_string(), "文".to_string()]);
        assert!(grams("tai man").is_empty());
        assert_eq!(
            pattern_forms(&["陳 大文".to_string()]),
            vec!["陳 大文".to_string(), "陳大文".to_string()]
        );
        assert_eq!(like_pattern("50%_a"), "%50\\%\\_a%");
    }
}
