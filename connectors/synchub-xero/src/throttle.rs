//! How Xero reports what is left of a tenant's allowance, for the
//! runtime's throttle: `X-MinLimit-Remaining` (60 a minute) and
//! `X-DayLimit-Remaining` (5,000 a day) on every answer. Xero names no
//! reset time: the minute window is taken to reset a minute on, and an
//! exhausted day limit parks the tenant for an hour before probing again.
//! <https://developer.xero.com/documentation/guides/oauth2/limits>

use std::time::Duration;

use synchub_http::BudgetHeader;

/// How long an exhausted day limit keeps the tenant parked before a probe.
pub const DAY_PROBE: Duration = Duration::from_secs(3600);

/// Xero's budget headers.
pub const BUDGET_HEADERS: &[BudgetHeader] = &[
    BudgetHeader::Remaining {
        remaining: "x-minlimit-remaining",
        reset: None,
        period: Duration::from_secs(60),
    },
    BudgetHeader::Remaining {
        remaining: "x-daylimit-remaining",
        reset: None,
        period: DAY_PROBE,
    },
];

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue};
    use synchub_http::{Budget, ResponsePolicy};

    use super::*;
    use crate::policy::XeroPolicy;

    #[test]
    fn minute_and_day_limits_are_read_as_two_windows() {
        let mut h = HeaderMap::new();
        h.insert("X-MinLimit-Remaining", HeaderValue::from_static("0"));
        h.insert("X-DayLimit-Remaining", HeaderValue::from_static("4211"));
        assert_eq!(
            XeroPolicy.budget(200, &h),
            vec![
                Budget::Window {
                    name: "x-minlimit-remaining",
                    remaining: 0,
                    resets_in: Duration::from_secs(60)
                },
                Budget::Window {
                    name: "x-daylimit-remaining",
                    remaining: 4211,
                    resets_in: DAY_PROBE
                },
            ]
        );
        assert!(XeroPolicy.budget(200, &HeaderMap::new()).is_empty());
    }
}
