//! The page shell (navigation, who is signed in), the stylesheet, the
//! response headers every page carries, and small formatting helpers.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use crate::auth::SessionUser;

const STYLESHEET: &str = include_str!("../assets/console.css");

/// No script, no frame, nothing from elsewhere: styles from this console,
/// images inline, forms only to this console.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page as a response, with the headers every page carries.
pub(crate) fn html(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

/// `GET /console.css`.
pub(crate) async fn stylesheet() -> Response {
    let mut r = STYLESHEET.into_response();
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The shell around a page's content.
pub(crate) fn page(title: &str, user: Option<&SessionUser>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-Hant" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · synchub" }
                link rel="stylesheet" href="/console.css";
            }
            body {
                @if let Some(u) = user {
                    header.top {
                        a.brand href="/" { "synchub" }
                        nav {
                            a href="/customers" { "Customers" }
                            a href="/queues/dead-letters" { "Dead letters" }
                            a href="/queues/conflicts" { "Conflicts" }
                            a href="/queues/reviews" { "Duplicates" }
                            a href="/queues/refused" { "Refused pushes" }
                            a href="/pipelines" { "Pipelines" }
                            @if u.role == synchub_store::users::Role::Admin { a href="/audit" { "Audit" } }
                        }
                        form.who method="post" action="/logout" {
                            span { (u.name) " (" (u.role) ")" }
                            input type="hidden" name="csrf" value=(u.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

/// A one-button form posting to `action` with the session's CSRF token;
/// viewers see no button (the server refuses them anyway).
pub(crate) fn action_button(user: &SessionUser, action: &str, label: &str, class: &str) -> Markup {
    html! {
        @if user.role.can_act() {
            form.inline method="post" action=(action) {
                input type="hidden" name="csrf" value=(user.csrf);
                button class=(class) type="submit" { (label) }
            }
        }
    }
}

/// A stored JSON text as a value (a text that is not JSON is a string).
pub(crate) fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// A value for a table cell: strings bare, the rest as compact JSON.
pub(crate) fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

/// `2026-12-04 17:56:10` from an RFC 3339 time (UTC), the text otherwise.
pub(crate) fn when(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// How long ago an RFC 3339 time was, in the largest whole unit.
pub(crate) fn age(rfc3339: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return String::new();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    duration(secs)
}

/// Seconds as `45 s`, `12 min`, `3 h`, `2 d`.
pub(crate) fn duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// A short form of a long id.
pub(crate) fn short_id(id: &str) -> String {
    if id.chars().count() > 12 {
        format!("{}…", id.chars().take(8).collect::<String>())
    } else {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_show_plainly() {
        assert_eq!(show(Some(&json_value("\"陳大文\""))), "陳大文");
        assert_eq!(show(Some(&json_value("[\"a\",\"b\"]"))), "a, b");
        assert_eq!(show(Some(&json_value("{\"vip\":true}"))), "{\"vip\":true}");
        assert_eq!(show(Some(&json_value("null"))), "");
        assert_eq!(show(Some(&json_value("not json"))), "not json");
    }

    #[test]
    fn durations_use_the_largest_whole_unit() {
        assert_eq!(duration(5), "5 s");
        assert_eq!(duration(600), "10 min");
        assert_eq!(duration(3 * 3600), "3 h");
        assert_eq!(duration(3 * 86_400), "3 d");
        assert_eq!(when("2026-12-04T17:56:10.2475Z"), "2026-12-04 17:56:10");
    }
}
