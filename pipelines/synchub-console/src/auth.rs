//! Login, sessions and the checks every form passes.
//!
//! * Passwords are hashed with argon2id (the crate's default parameters)
//!   and a random salt; only the PHC string is stored, and no password is
//!   ever logged. An unknown login name is checked against a decoy hash, so
//!   it takes as long as a wrong password.
//! * A session is a random 256-bit token in a cookie marked `HttpOnly` and
//!   `SameSite=Strict` (and `Secure` behind https); the store keeps only its
//!   SHA-256, with the session's CSRF token and its end.
//! * Every POST carries a CSRF token: the session's (compared in constant
//!   time), or for the login form a token it was given in a cookie of its
//!   own (double submit). A form without it is refused (403) before
//!   anything else is read; a viewer's form is refused (403) after it.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use base64::Engine as _;
use maud::html;
use rand::RngCore;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use synchub_store::users::Role;

use crate::layout::{self, page};
use crate::{Console, ConsoleError, PageError, Shared};

/// The shortest password `synchub users add` takes.
pub const MIN_PASSWORD_CHARS: usize = 10;

const SESSION_COOKIE: &str = "synchub_session";
const LOGIN_COOKIE: &str = "synchub_login";

/// The argon2id PHC string of `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, ConsoleError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| ConsoleError::Password(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ConsoleError::Password(e.to_string()))
}

/// Whether `password` is the one `hash` (a PHC string) was made from.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// 256 random bits, URL-safe base64.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn token_hash(token: &str) -> String {
    synchub_core::hash_bytes(token.as_bytes())
}

/// The value of cookie `name` in the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether cookies set for this request are marked `Secure`.
fn secure(console: &Console, headers: &HeaderMap) -> bool {
    console.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> HeaderValue {
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    // Tokens are base64url and the rest is ASCII.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

fn equal(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(crate) fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to go after login: a path of this console, never another site.
fn local_target(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

pub(crate) fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// The signed-in user of a request.
#[derive(Clone)]
pub(crate) struct SessionUser {
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) csrf: String,
    token_hash: String,
}

impl std::fmt::Debug for SessionUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl SessionUser {
    /// Refuses a form without this session's CSRF token, then a form from
    /// a role that may not change anything.
    pub(crate) fn authorize(&self, csrf: &str) -> Result<(), PageError> {
        self.check_csrf(csrf)?;
        if !self.role.can_act() {
            tracing::warn!(user = %self.name, role = %self.role, "console: a viewer's change refused");
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Not allowed",
                format!(
                    "{} has the {} role, which reads but changes nothing; an admin can give the operator role (synchub users add {} --role operator)",
                    self.name, self.role, self.name
                ),
            ));
        }
        Ok(())
    }

    fn check_csrf(&self, csrf: &str) -> Result<(), PageError> {
        if equal(csrf, &self.csrf) {
            return Ok(());
        }
        tracing::warn!(user = %self.name, "console: a form without its CSRF token refused");
        Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Form refused",
            "this form did not carry the token of your session (it is old, or it did not come from this console); reload the page and try again",
        ))
    }
}

#[axum::async_trait]
impl FromRequestParts<Shared> for SessionUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Response> {
        if let Some(token) = cookie(&parts.headers, SESSION_COOKIE) {
            let hash = token_hash(token);
            match state.store.session(&hash).await {
                Ok(Some(s)) => {
                    return Ok(SessionUser {
                        name: s.user.name,
                        role: s.user.role,
                        csrf: s.csrf_token,
                        token_hash: hash,
                    })
                }
                Ok(None) => {}
                Err(e) => return Err(PageError::from(e).into_response()),
            }
        }
        // Pages send the reader to the login form; a form is refused.
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let here = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            return Err(redirect(&format!("/login?next={}", encode_component(here))));
        }
        Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            "Signed out",
            "your session has ended; sign in again",
        )
        .into_response())
    }
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

fn login_form(token: &str, next: &str, name: &str, problem: Option<&str>) -> maud::Markup {
    page(
        "Sign in",
        None,
        html! {
            section.login {
                h1 { "synchub console" }
                @if let Some(p) = problem { p.error role="alert" { (p) } }
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(token);
                    input type="hidden" name="next" value=(next);
                    label { "Name" input name="name" value=(name) autocomplete="username" required autofocus; }
                    label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

fn with_login_cookie(mut r: Response, token: &str, secure: bool) -> Response {
    r.headers_mut().append(
        SET_COOKIE,
        set_cookie(LOGIN_COOKIE, token, "/login", 3600, secure),
    );
    r
}

/// `GET /login`.
pub(crate) async fn login_page(
    State(c): State<Shared>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if let Ok(Some(_)) = c.store.session(&token_hash(token)).await {
            return redirect(local_target(&q.next));
        }
    }
    let token = random_token();
    let next = local_target(&q.next).to_string();
    with_login_cookie(
        layout::html(StatusCode::OK, login_form(&token, &next, "", None)),
        &token,
        secure(&c, &headers),
    )
}

/// `POST /login`.
pub(crate) async fn login(
    State(c): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let secure = secure(&c, &headers);
    let Some(expected) = cookie(&headers, LOGIN_COOKIE).filter(|t| equal(&form.csrf, t)) else {
        tracing::warn!("console: a login form without its CSRF token refused");
        return PageError::new(
            StatusCode::FORBIDDEN,
            "Form refused",
            "the sign-in form was old or did not come from this console; open /login again",
        )
        .into_response();
    };
    let next = local_target(&form.next).to_string();
    let user = match c.store.user_by_name(form.name.trim()).await {
        Ok(u) => u,
        Err(e) => return PageError::from(e).into_response(),
    };
    let hash = user
        .as_ref()
        .map_or_else(|| c.decoy_hash.clone(), |u| u.password_hash.clone());
    let password = form.password;
    let verified = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .unwrap_or(false);
    let user = match user {
        Some(u) if verified => u,
        _ => {
            tracing::warn!(user = %form.name.trim(), "console: sign-in refused");
            let token = expected.to_string();
            return with_login_cookie(
                layout::html(
                    StatusCode::UNAUTHORIZED,
                    login_form(
                        &token,
                        &next,
                        form.name.trim(),
                        Some("Wrong name or password."),
                    ),
                ),
                &token,
                secure,
            );
        }
    };
    let token = random_token();
    let ttl = c.config.session_ttl;
    let expires = chrono::Utc::now()
        + chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::hours(12));
    let expires = expires.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    if let Err(e) = c
        .store
        .open_session(&token_hash(&token), user.id, &random_token(), &expires)
        .await
    {
        return PageError::from(e).into_response();
    }
    tracing::info!(user = %user.name, role = %user.role, "console: signed in");
    let mut r = redirect(&next);
    r.headers_mut().append(
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, &token, "/", ttl.as_secs(), secure),
    );
    r.headers_mut().append(
        SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/login", 0, secure),
    );
    r
}

#[derive(Deserialize, Default)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub(crate) csrf: String,
}

/// `POST /logout`.
pub(crate) async fn logout(
    State(c): State<Shared>,
    headers: HeaderMap,
    user: SessionUser,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&form.csrf)?;
    c.store.close_session(&user.token_hash).await?;
    tracing::info!(user = %user.name, "console: signed out");
    let mut r = redirect("/login");
    r.headers_mut().append(
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", 0, secure(&c, &headers)),
    );
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterz"));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(h, hash_password("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a_synchub_session=x; synchub_session=tok; other=1"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn login_only_sends_back_to_this_console() {
        assert_eq!(local_target("/customers?q=1"), "/customers?q=1");
        assert_eq!(local_target("//evil.example/"), "/");
        assert_eq!(local_target("https://evil.example/"), "/");
        assert_eq!(local_target("/\\evil"), "/");
        assert_eq!(
            encode_component("/customers?q=陳"),
            "/customers%3Fq%3D%E9%99%B3"
        );
    }

    #[test]
    fn tokens_are_compared_whole() {
        assert!(equal("abc", "abc"));
        assert!(!equal("abc", "abd"));
        assert!(!equal("", ""));
        assert!(!equal("ab", "abc"));
    }
}
