//! The synchub test kit: an in-memory connector that behaves like a remote
//! system (ids, versions, change order, deletes), fresh databases for tests
//! on SQLite and PostgreSQL, and helpers that wait on state.

#![allow(clippy::unwrap_used)]

pub mod conformance;
pub mod data;
pub mod db;
pub mod harness;
pub mod memory;
pub mod process;
pub mod proxy;

pub use db::{TestDb, POSTGRES_ADMIN_URL};
pub use memory::{MemoryConnector, MemorySystem};
