//! Email normalization: case, spaces, Unicode, display-name wrappers, and the
//! opt-in Gmail rule (dots and `+tags` in the local part do not matter).

use super::clean_text;

/// Options for [`normalize_email_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmailRules {
    /// Apply Gmail's own equivalences (`j.doe+news@gmail.com` = `jdoe@gmail.com`,
    /// `googlemail.com` = `gmail.com`). Opt-in: other providers treat dots as significant.
    pub gmail_canonical: bool,
}

/// Normalize an email address: NFKC, trim, strip `mailto:` and `Name <...>`
/// wrappers, remove inner spaces, lower-case. `None` when it is not an address.
pub fn normalize_email(raw: &str) -> Option<String> {
    normalize_email_with(raw, EmailRules::default())
}

/// [`normalize_email`] with explicit [`EmailRules`].
pub fn normalize_email_with(raw: &str, rules: EmailRules) -> Option<String> {
    let mut s = clean_text(raw);
    if let (Some(open), Some(close)) = (s.find('<'), s.rfind('>')) {
        if open < close {
            s = s[open + 1..close].to_string();
        }
    }
    let mut s: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    if let Some(rest) = s.strip_prefix("mailto:") {
        s = rest.to_string();
    }
    let s = s.trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | ';' | '.' | '(' | ')'));
    let (local, domain) = s.split_once('@')?;
    if local.is_empty() || domain.contains('@') || !valid_domain(domain) {
        return None;
    }
    if rules.gmail_canonical && (domain == "gmail.com" || domain == "googlemail.com") {
        let base = local.split('+').next().unwrap_or(local);
        let base: String = base.chars().filter(|c| *c != '.').collect();
        if base.is_empty() {
            return None;
        }
        return Some(format!("{base}@gmail.com"));
    }
    Some(format!("{local}@{domain}"))
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_cases_and_trims() {
        assert_eq!(
            normalize_email("  Jane.Doe@Example.COM ").as_deref(),
            Some("jane.doe@example.com")
        );
    }

    #[test]
    fn strips_wrappers_and_full_width() {
        assert_eq!(
            normalize_email("Jane Doe <JANE@example.com>").as_deref(),
            Some("jane@example.com")
        );
        assert_eq!(normalize_email("mailto:a@b.tw").as_deref(), Some("a@b.tw"));
        assert_eq!(
            normalize_email("ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ").as_deref(),
            Some("jane@example.com")
        );
        assert_eq!(
            normalize_email("jane @ example.com").as_deref(),
            Some("jane@example.com")
        );
    }

    #[test]
    fn rejects_non_addresses() {
        assert_eq!(normalize_email(""), None);
        assert_eq!(normalize_email("n/a"), None);
        assert_eq!(normalize_email("jane@"), None);
        assert_eq!(normalize_email("@example.com"), None);
        assert_eq!(normalize_email("jane@localhost"), None);
        assert_eq!(normalize_email("a@b@c.com"), None);
    }

    #[test]
    fn gmail_rule_is_opt_in() {
        let raw = "J.Doe+news@GoogleMail.com";
        assert_eq!(
            normalize_email(raw).as_deref(),
            Some("j.doe+news@googlemail.com")
        );
        let rules = EmailRules {
            gmail_canonical: true,
        };
        assert_eq!(
            normalize_email_with(raw, rules).as_deref(),
            Some("jdoe@gmail.com")
        );
        // Dots are significant for other providers even with the rule on.
        assert_eq!(
            normalize_email_with("j.doe@corp.tw", rules).as_deref(),
            Some("j.doe@corp.tw")
        );
    }
}
