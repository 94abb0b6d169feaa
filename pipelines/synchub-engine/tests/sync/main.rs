//! Sync rules, convergence under random edits and crashes, and contact
//! merges, on SQLite and PostgreSQL: one integration binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod convergence;
mod harness;
mod input;
mod leases;
mod merges;
mod rules;
