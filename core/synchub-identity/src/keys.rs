//! The deterministic tier for the sync engine: exact-match keys, the name
//! check that must confirm a shared phone, and in-place normalization of a
//! contact for storage.

use synchub_core::model::{Address, Contact};

use crate::normalize::country::country_code;
use crate::normalize::name::{NameLevel, PersonName};
use crate::normalize::{clean_text, email::normalize_email, phone::normalize_phone};

/// Exact-match keys for a contact, sorted and unique: `email:<normalized>` for
/// each email and `phone:<e164>` for each phone that parses.
///
/// An `email:` key hit identifies the person. A `phone:` key hit does not on
/// its own (families and offices share numbers): confirm it with
/// [`names_compatible`] before linking.
pub fn match_keys(contact: &Contact, default_region: Option<&str>) -> Vec<String> {
    let region = contact_region(contact, default_region);
    let default_region = region.as_deref();
    let mut keys: Vec<String> = contact
        .emails
        .iter()
        .filter_map(|e| normalize_email(e))
        .map(|e| format!("email:{e}"))
        .chain(
            contact
                .phones
                .iter()
                .filter_map(|p| normalize_phone(p, default_region))
                .map(|p| format!("phone:{p}")),
        )
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The region a contact's national phone numbers are read in: the country
/// of its first address that names a recognisable one (a Hong Kong address
/// makes `9123 4567` a +852 number), else `default_region` (the pipeline's).
pub fn contact_region(contact: &Contact, default_region: Option<&str>) -> Option<String> {
    contact
        .addresses
        .iter()
        .find_map(|a| a.country.as_deref().and_then(country_code))
        .or_else(|| default_region.map(str::to_string))
}

/// The parsed name of a contact (structured parts first, else the full name).
pub fn person_name(contact: &Contact) -> PersonName {
    PersonName::parse(
        contact.given_name.as_deref(),
        contact.family_name.as_deref(),
        contact.full_name.as_deref(),
    )
}

/// True unless the two contacts' names show they are different people:
/// either name missing, or family names agree (exactly, as romanizations of
/// one another, or up to a typo) and given names agree (also as a nickname or
/// an initial). First and last names written the other way round count.
/// `陳大文` and `Chan Tai Man` are compatible; `陳大文` and `陳小明` are not.
pub fn names_compatible(a: &Contact, b: &Contact) -> bool {
    let (na, nb) = (person_name(a), person_name(b));
    if na.is_empty() || nb.is_empty() {
        return true;
    }
    let (given, family, _) = na.compare(&nb);
    let family_ok = matches!(
        family,
        NameLevel::Exact | NameLevel::Equivalent | NameLevel::Close | NameLevel::Missing
    );
    let given_ok = given != NameLevel::Different;
    family_ok && given_ok
}

/// The custom field that keeps email values that are not addresses.
pub const INVALID_EMAILS: &str = "invalid_emails";

/// Normalize a contact in place for storage: trim and NFKC every text field,
/// lower-case and normalize emails (a value that is not an address moves to
/// the custom field [`INVALID_EMAILS`]), phones to E.164 where they parse
/// (the cleaned original is kept when they do not), drop empty entries, and
/// de-duplicate list fields keeping the first occurrence.
pub fn normalize_contact(contact: &mut Contact, default_region: Option<&str>) {
    let region = contact_region(contact, default_region);
    let default_region = region.as_deref();
    for field in [
        &mut contact.given_name,
        &mut contact.family_name,
        &mut contact.full_name,
        &mut contact.company,
        &mut contact.title,
    ] {
        clean_opt(field);
    }
    // An address that is not one (`not-an-email`) is never an email of the
    // contact: it would become a match key and be pushed to every system.
    // It is kept, as written, under the custom field `invalid_emails`.
    let mut invalid: Vec<String> = Vec::new();
    let emails: Vec<String> = std::mem::take(&mut contact.emails)
        .into_iter()
        .filter_map(|e| match normalize_email(&e) {
            Some(ok) => Some(ok),
            None => {
                let kept = clean_text(&e);
                if !kept.is_empty() {
                    invalid.push(kept);
                }
                None
            }
        })
        .collect();
    contact.emails = dedup(emails.into_iter());
    if !invalid.is_empty() {
        let entry = contact
            .custom
            .entry(INVALID_EMAILS.to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(list) = entry {
            for e in invalid {
                let v = serde_json::Value::String(e);
                if !list.contains(&v) {
                    list.push(v);
                }
            }
        }
    }
    let phones = std::mem::take(&mut contact.phones)
        .into_iter()
        .filter_map(|p| {
            normalize_phone(&p, default_region)
                .or_else(|| Some(clean_text(&p)).filter(|s| !s.is_empty()))
        });
    contact.phones = dedup(phones);
    let tags = std::mem::take(&mut contact.tags)
        .into_iter()
        .map(|t| clean_text(&t))
        .filter(|t| !t.is_empty());
    contact.tags = dedup(tags);
    let addresses = std::mem::take(&mut contact.addresses)
        .into_iter()
        .filter_map(|mut a| {
            clean_address(&mut a);
            (!a.is_empty()).then_some(a)
        });
    contact.addresses = dedup(addresses);
}

fn clean_opt(field: &mut Option<String>) {
    *field = field.as_deref().map(clean_text).filter(|s| !s.is_empty());
}

fn clean_address(a: &mut Address) {
    for f in [
        &mut a.line1,
        &mut a.line2,
        &mut a.city,
        &mut a.region,
        &mut a.postal_code,
        &mut a.country,
    ] {
        clean_opt(f);
    }
    if let Some(c) = a.country.as_mut().filter(|c| c.len() == 2 && c.is_ascii()) {
        c.make_ascii_uppercase();
    }
}

fn dedup<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(full: &str, emails: &[&str], phones: &[&str]) -> Contact {
        Contact {
            full_name: Some(full.to_string()),
            emails: emails.iter().map(|s| s.to_string()).collect(),
            phones: phones.iter().map(|s| s.to_string()).collect(),
            ..Contact::default()
        }
    }

    #[test]
    fn keys_are_normalized_sorted_and_unique() {
        let c = contact(
            "陳大文",
            &["TaiMan@Example.com", " taiman@example.com"],
            &["０９１２-３４５-６７８", "n/a"],
        );
        assert_eq!(
            match_keys(&c, Some("TW")),
            vec!["email:taiman@example.com", "phone:+886912345678"]
        );
        // Without a region a national number yields no key.
        assert_eq!(match_keys(&c, None), vec!["email:taiman@example.com"]);
    }

    #[test]
    fn the_same_phone_in_two_formats_gives_the_same_key() {
        let a = contact("x", &[], &["+852 9123 4567"]);
        let b = contact("x", &[], &["9123-4567"]);
        assert_eq!(match_keys(&a, None), match_keys(&b, Some("HK")));
    }

    #[test]
    fn household_members_sharing_a_phone_are_not_compatible() {
        let dad = contact("陳大文", &[], &["+852 9123 4567"]);
        let son = contact("陳小明", &[], &["+852 9123 4567"]);
        let dad_latin = contact("Chan Tai Man", &[], &[]);
        assert!(!names_compatible(&dad, &son));
        assert!(names_compatible(&dad, &dad_latin));
        assert!(names_compatible(&dad, &contact("", &[], &[])));
        let jane = Contact {
            given_name: Some("Jane".into()),
            family_name: Some("Doe".into()),
            ..Contact::default()
        };
        let john = Contact {
            given_name: Some("John".into()),
            family_name: Some("Doe".into()),
            ..Contact::default()
        };
        let j = Contact {
            given_name: Some("J.".into()),
            family_name: Some("Doe".into()),
            ..Contact::default()
        };
        assert!(!names_compatible(&jane, &john));
        assert!(names_compatible(&jane, &j));
    }

    #[test]
    fn normalize_contact_cleans_for_storage() {
        let mut c = Contact {
            given_name: Some("  ＴＡＩ ＭＡＮ ".into()),
            family_name: Some("   ".into()),
            emails: vec![
                "A@B.com".into(),
                "a@b.com ".into(),
                "not an email".into(),
                "".into(),
            ],
            phones: vec![
                "(02) 2345-6789".into(),
                "+886 2 2345 6789".into(),
                "ext 12 only".into(),
            ],
            tags: vec!["vip".into(), " vip".into()],
            addresses: vec![
                Address {
                    city: Some(" 台北市 ".into()),
                    country: Some("tw".into()),
                    ..Address::default()
                },
                Address::default(),
            ],
            ..Contact::default()
        };
        normalize_contact(&mut c, Some("TW"));
        assert_eq!(c.given_name.as_deref(), Some("TAI MAN"));
        assert_eq!(c.family_name, None);
        assert_eq!(c.emails, vec!["a@b.com"]);
        assert_eq!(
            c.custom.get(INVALID_EMAILS),
            Some(&serde_json::json!(["not an email"]))
        );
        assert_eq!(c.phones, vec!["+886223456789", "ext 12 only"]);
        assert_eq!(c.tags, vec!["vip"]);
        assert_eq!(c.addresses.len(), 1);
        assert_eq!(c.addresses[0].city.as_deref(), Some("台北市"));
        assert_eq!(c.addresses[0].country.as_deref(), Some("TW"));
        let once = c.clone();
        normalize_contact(&mut c, Some("TW"));
        assert_eq!(c, once, "idempotent");
    }

    #[test]
    fn a_contacts_own_country_reads_its_phones_before_the_pipeline_region() {
        let mut c = contact("陳大文", &[], &["9123-4567"]);
        c.addresses.push(Address {
            city: Some("九龍".into()),
            country: Some("Hong Kong".into()),
            ..Address::default()
        });
        // The pipeline is Taiwanese; the record says Hong Kong.
        assert_eq!(match_keys(&c, Some("TW")), vec!["phone:+85291234567"]);
        normalize_contact(&mut c, Some("TW"));
        assert_eq!(c.phones, vec!["+85291234567"]);
        // No country on the record: the pipeline's region applies.
        let mut tw = contact("林美玲", &[], &["0912-345-678"]);
        normalize_contact(&mut tw, Some("TW"));
        assert_eq!(tw.phones, vec!["+886912345678"]);
    }
}

#[cfg(test)]
mod invalid_email_tests {
    use super::*;

    #[test]
    fn a_value_that_is_not_an_address_is_kept_aside_and_never_a_key() {
        let mut c = Contact {
            given_name: Some("大文".into()),
            family_name: Some("陳".into()),
            emails: vec!["not-an-email".into(), " Tai.Man@Example.HK ".into()],
            ..Contact::default()
        };
        normalize_contact(&mut c, Some("HK"));
        assert_eq!(c.emails, vec!["tai.man@example.hk".to_string()]);
        assert_eq!(
            c.custom.get(INVALID_EMAILS),
            Some(&serde_json::json!(["not-an-email"]))
        );
        let keys = match_keys(&c, Some("HK"));
        assert!(keys.iter().all(|k| !k.contains("not-an-email")), "{keys:?}");
    }
}
