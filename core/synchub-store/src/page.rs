//! Writing a planned page: every row a page changes, in bulk, inside the
//! page's transaction (records, match keys, identity links, dead letters,
//! review pairs, conflicts). On PostgreSQL each table takes one statement
//! whose columns travel as packed array parameters; SQLite takes multi-row
//! statements. Keys of records the page creates are inserted without first
//! deleting old ones (a record created in this transaction has none).

use sqlx::AnyConnection;
use synchub_core::ObjectKind;

use crate::conflicts::{self, NewConflict};
use crate::dead_letters::{self, DeadLetter};
use crate::links::{self, Link};
use crate::records::{self, RecordWrite};
use crate::reviews::{self, NewReview};
use crate::StoreError;

/// The rows one page writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageWrites {
    /// Object kind of the page (the kind its match keys are filed under).
    pub object: Option<ObjectKind>,
    /// Records to insert or replace.
    pub records: Vec<RecordWrite>,
    /// Match keys of records created by this page.
    pub new_keys: Vec<(String, Vec<String>)>,
    /// Match keys replacing those of records that existed before the page.
    pub replaced_keys: Vec<(String, Vec<String>)>,
    /// Identity links that are new or changed.
    pub links: Vec<Link>,
    /// Items that could not be applied.
    pub dead: Vec<DeadLetter>,
    /// Pairs queued for a person's review.
    pub reviews: Vec<NewReview>,
    /// Same-field conflicts.
    pub conflicts: Vec<NewConflict>,
}

/// Writes a planned page through `conn` (the page's transaction).
pub async fn write_page(conn: &mut AnyConnection, w: &PageWrites) -> Result<(), StoreError> {
    records::upsert_many(conn, &w.records).await?;
    if let Some(kind) = w.object {
        if !w.replaced_keys.is_empty() {
            records::set_keys(conn, kind, &w.replaced_keys).await?;
        }
        if !w.new_keys.is_empty() {
            records::add_keys(conn, kind, &w.new_keys).await?;
        }
    }
    links::upsert_many(conn, &w.links).await?;
    dead_letters::insert_many(conn, &w.dead).await?;
    reviews::queue(conn, &w.reviews).await?;
    for c in &w.conflicts {
        conflicts::record(conn, c).await?;
    }
    Ok(())
}
