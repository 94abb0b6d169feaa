//! The synchub domain, with no IO: the CRM model, the connector contract,
//! cursors, and the pure rules the engine applies (validation, merge).

pub mod connector;
pub mod error;
pub mod merge;
pub mod model;
pub mod signature;
pub mod watermark;

pub use connector::{
    push_each, push_each_refusing, Change, ChangeOp, Connector, Cursor, ObjectKind, ObjectSpec,
    Page, PushOutcome, Refusal, Rejected, RemoteRecord, WebhookAction, Written,
};
pub use error::{ConnectorError, ErrorClass};
pub use model::{Activity, Company, Contact, Invoice, Order, Record};
pub use watermark::Watermark;

/// Hex sha-256 of some bytes.
pub fn hash_bytes(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A deterministic CRM id for the first sighting of an external record, so
/// that replaying a page after a crash produces the same ids.
pub fn derive_crm_id(connection: &str, object: ObjectKind, external_id: &str) -> String {
    let name = format!("{connection}/{object}/{external_id}");
    uuid::Uuid::new_v5(&CRM_ID_NAMESPACE, name.as_bytes()).to_string()
}

const CRM_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5f1c_7a2e_9d3b_4c8a_b6e0_2f4d_8a1c_3e77);
