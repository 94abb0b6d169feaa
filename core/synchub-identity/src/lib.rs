//! Identity resolution for synchub: one person, one contact.
//!
//! - [`normalize`]: emails, phones (E.164), names (CJK and romanizations,
//!   nicknames, honorifics), addresses and companies;
//! - [`keys`]: the deterministic tier the sync engine uses on every pull
//!   ([`match_keys`], [`names_compatible`], [`normalize_contact`]).
//!
//! Everything here is pure: no database, no network.

pub mod company;
pub mod dedupe;
pub mod eval;
pub mod keys;
pub mod matcher;
pub mod normalize;
pub mod synth;
pub mod synth_indep;

pub use keys::{
    contact_region, match_keys, names_compatible, normalize_contact, person_name, INVALID_EMAILS,
};
pub use normalize::address::{address_key, normalize_address_line, normalize_postal_code};
pub use normalize::company::normalize_company;
pub use normalize::country::country_code;
pub use normalize::date::parse_birth_date;
pub use normalize::email::{normalize_email, normalize_email_with, EmailRules};
pub use normalize::name::{normalize_name, NameLevel, PersonName};
pub use normalize::phone::normalize_phone;
