//! The credentials part of the pipelines page: the rate-limit allowance
//! left to each credential (the shared token buckets of `rate_budget`,
//! refilled to the database's clock as the instances themselves refill
//! them) and each OAuth connection's token validity (when the access token
//! expires, whether a refresh token is held), read through the token vault.
//! The tokens themselves are never shown, logged or kept here: only their
//! expiry and whether a refresh token exists leave the vault.

use chrono::{DateTime, Utc};
use maud::{html, Markup};
use sqlx::Row;
use synchub_http::TokenVault;
use synchub_store::{Backend, Store, StoreError};

use crate::layout::{duration, when};

/// One credential's bucket (`CREDENTIAL#requests`, `CREDENTIAL#cost`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Allowance {
    pub(crate) key: String,
    /// Points the bucket holds when full; `None` until learned from the server.
    pub(crate) capacity: Option<f64>,
    /// Points it regains per second; `None` until learned.
    pub(crate) refill_per_sec: Option<f64>,
    /// Points left now.
    pub(crate) left: f64,
}

/// One OAuth connection's token state, without the token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenState {
    /// Opened: when the access token expires, whether it can be refreshed.
    Held {
        expires_at: Option<DateTime<Utc>>,
        refreshable: bool,
    },
    /// Stored but not readable here (no key, or another key): why.
    Sealed(String),
}

fn query_error(e: sqlx::Error) -> StoreError {
    StoreError::Query {
        context: "reading the credentials' state",
        source: e,
    }
}

/// Every bucket of the shared rate budget, refilled up to the database's
/// clock. SQLite keeps no shared budget (each process keeps its own quota).
pub(crate) async fn allowances(store: &Store) -> Result<Vec<Allowance>, StoreError> {
    if store.backend() != Backend::Postgres {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT key, capacity, refill_per_sec, level, at_epoch, \
         CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION) AS now \
         FROM rate_budget ORDER BY key",
    )
    .fetch_all(store.pool())
    .await
    .map_err(query_error)?;
    rows.iter()
        .map(|r| {
            let capacity: Option<f64> = r.try_get("capacity").map_err(query_error)?;
            let refill_per_sec: Option<f64> = r.try_get("refill_per_sec").map_err(query_error)?;
            let level: f64 = r.try_get("level").map_err(query_error)?;
            let at: f64 = r.try_get("at_epoch").map_err(query_error)?;
            let now: f64 = r.try_get("now").map_err(query_error)?;
            let left = match (capacity, refill_per_sec) {
                (Some(c), Some(rate)) => (level + (now - at).max(0.0) * rate).min(c),
                _ => level,
            };
            Ok(Allowance {
                key: r.try_get("key").map_err(query_error)?,
                capacity,
                refill_per_sec,
                left,
            })
        })
        .collect()
}

/// Every connection with stored OAuth tokens, and what the vault says of it.
pub(crate) async fn tokens(
    store: &Store,
    vault: &TokenVault,
) -> Result<Vec<(String, String, TokenState)>, StoreError> {
    let rows = sqlx::query("SELECT instance, updated_at FROM oauth_token ORDER BY instance")
        .fetch_all(store.pool())
        .await
        .map_err(query_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let instance: String = r.try_get("instance").map_err(query_error)?;
        let updated: String = r.try_get("updated_at").map_err(query_error)?;
        let state = match vault.load(&instance).await {
            Ok(Some(set)) => TokenState::Held {
                expires_at: set.expires_at,
                refreshable: set.refresh_token.is_some(),
            },
            Ok(None) => continue,
            Err(e) => TokenState::Sealed(synchub_http::secret::redact(&e.to_string()).into_owned()),
        };
        out.push((instance, updated, state));
    }
    Ok(out)
}

fn points(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The section of the pipelines page.
pub(crate) fn section(
    allowances: &[Allowance],
    tokens: &[(String, String, TokenState)],
    backend: Backend,
    now: DateTime<Utc>,
) -> Markup {
    html! {
        h2 { "Credentials" }
        h3 { "Rate-limit allowance left" }
        @if backend != Backend::Postgres {
            p.muted { "This store is SQLite: each process keeps its own quota, there is no shared allowance to show." }
        } @else if allowances.is_empty() {
            p { "No credential has drawn on the shared rate budget yet." }
        } @else { div.scroll { table.allowances {
            thead { tr { th { "Credential bucket" } th.num { "Left" } th.num { "Of" } th { "Refill" } } }
            tbody { @for a in allowances { tr {
                td { (a.key) }
                td.num.left { (points(a.left)) }
                td.num { @if let Some(c) = a.capacity { (points(c)) } @else { span.muted { "not learned yet" } } }
                td { @if let Some(r) = a.refill_per_sec { (points(r)) " per second" } @else { span.muted { "—" } } }
            } } }
        } } }
        h3 { "OAuth tokens" }
        @if tokens.is_empty() {
            p { "No connection signs in with OAuth on this store." }
        } @else { div.scroll { table.tokens {
            thead { tr { th { "Connection" } th { "Access token" } th { "Expires" } th { "Refresh token" } th { "Saved" } } }
            tbody { @for (instance, updated, state) in tokens { tr {
                td { (instance) }
                @match state {
                    TokenState::Held { expires_at, refreshable } => {
                        td { @match expires_at {
                            Some(t) if *t > now => { span.ok { "valid" } }
                            Some(_) => { span.error { "expired" } }
                            None => { span.ok { "valid" } " " span.muted { "(no expiry given)" } }
                        } }
                        td { @if let Some(t) = expires_at {
                            (t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                            br; span.muted { @if *t > now { "in " (duration((*t - now).num_seconds())) } @else { (duration((now - *t).num_seconds())) " ago" } }
                        } @else { span.muted { "—" } } }
                        td { @if *refreshable { "held" } @else { span.error { "none: sign in again when it expires" } } }
                    }
                    TokenState::Sealed(why) => {
                        td colspan="3" { span.error { "cannot be opened here: " } (why) }
                    }
                }
                td { (when(updated)) }
            } } }
        } } }
    }
}
