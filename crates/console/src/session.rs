//! Who is at the console: a session per browser, named by an opaque random token in a
//! cookie (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS), held by this broker only.
//! A signed-in session carries the identity the broker's authenticator gave the
//! credentials (a SCRAM user's password, as SASL/PLAIN checks it; a bearer token, as the
//! other listeners take it); where the broker lets callers in anonymously, a visitor gets
//! an anonymous session at once. Every change a page sends is a form `POST` that carries
//! the session's CSRF token, checked here; a `POST` whose `Origin` is another site is
//! refused before that. The broker's ACLs then authorize the identity, as for any API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::time::Instant;

use shale_broker::api::Identity;
use shale_core::clock::monotonic_now;

use crate::Console;
use crate::view::{Chrome, Failure};

/// The session cookie's name.
const COOKIE: &str = "shale_console";

/// Sessions one broker keeps at most: past it, expired ones are dropped, then the least
/// recently used.
const MAX_SESSIONS: usize = 10_000;

/// A browser's session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Its cookie's value.
    token: String,
    /// Who it acts as.
    pub(crate) who: Identity,
    /// Signed in (with a name to show and a way out), or anonymous.
    pub(crate) signed_in: bool,
    /// What every form of this session carries.
    pub(crate) csrf: String,
    last_used: Instant,
}

impl Session {
    /// Whether a form's token is this session's (compared in constant time).
    pub(crate) fn check_csrf(&self, sent: &str) -> Result<(), Failure> {
        let (ours, theirs) = (self.csrf.as_bytes(), sent.as_bytes());
        let differ = ours.iter().zip(theirs).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        let same = ours.len() == theirs.len() && differ == 0;
        match same {
            true => Ok(()),
            false => Err(Failure::new(
                StatusCode::FORBIDDEN,
                "The form's CSRF token is not this session's: reload the page and try again.",
            )),
        }
    }

    /// The principal's name, as pages show it.
    pub(crate) fn principal(&self) -> String {
        self.who.principal.to_string()
    }

    /// The frame of a page of `st` this session sees, `active` in the navigation.
    pub(crate) fn chrome(&self, st: &Console, active: &'static str) -> Chrome {
        Chrome {
            active,
            user: self.signed_in.then(|| self.principal()),
            csrf: self.csrf.clone(),
            read_only: st.read_only,
            cluster: st.api.cluster_name().to_string(),
        }
    }
}

/// Every session of this console.
#[derive(Debug)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
    /// Over TLS: cookies are `Secure`.
    secure: bool,
    rng: SystemRandom,
}

impl Sessions {
    pub(crate) fn new(idle: Duration, secure: bool) -> Self {
        Sessions { map: Mutex::new(HashMap::new()), idle, secure, rng: SystemRandom::new() }
    }

    /// 32 random bytes, as hex.
    fn token(&self) -> String {
        let mut bytes = [0u8; 32];
        // The system's CSPRNG does not fail on Linux once the process runs; if it did, an
        // all-zero token would be guessable, so refuse to go on.
        #[allow(clippy::expect_used, reason = "no safe token without the system's RNG")]
        self.rng.fill(&mut bytes).expect("the system's random number generator");
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A new session for `who`.
    pub(crate) fn create(&self, who: Identity, signed_in: bool) -> Session {
        let session = Session {
            token: self.token(),
            who,
            signed_in,
            csrf: self.token(),
            last_used: monotonic_now(),
        };
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_SESSIONS {
            let idle = self.idle;
            map.retain(|_, s| s.last_used.elapsed() < idle);
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) =
                    map.values().min_by_key(|s| s.last_used).map(|s| s.token.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(session.token.clone(), session.clone());
        session
    }

    /// The live session named by the request's cookie, its use noted.
    fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let token = cookie(headers, COOKIE)?;
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let s = map.get_mut(token)?;
        if s.last_used.elapsed() >= self.idle {
            map.remove(token);
            return None;
        }
        s.last_used = monotonic_now();
        Some(s.clone())
    }

    /// Ends `session`.
    pub(crate) fn end(&self, session: &Session) {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).remove(&session.token);
    }

    /// The `Set-Cookie` value that gives the browser `session`.
    pub(crate) fn set_cookie(&self, session: &Session) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}", session.token)
    }

    /// The `Set-Cookie` value that takes the session cookie away.
    pub(crate) fn clear_cookie(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Paths served without a session: the sign-in page and the static assets.
fn public(path: &str) -> bool {
    path == "/login" || path.starts_with("/assets/")
}

/// Whether a change comes from another site: its `Origin` (browsers send it on every
/// `POST`) names a host other than the one asked.
fn cross_site(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    origin == "null" || origin_host != host
}

/// Puts the request's session in its extensions: the one its cookie names, else a new
/// anonymous one where the broker lets anonymous callers in (its cookie set on the
/// answer), else sends the browser to sign in. Changes from another site are refused.
pub(crate) async fn layer(
    State(st): State<Arc<Console>>,
    mut req: Request,
    next: Next,
) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD && cross_site(req.headers()) {
        return Failure::new(StatusCode::FORBIDDEN, "A change sent from another site is refused.")
            .into_response();
    }
    if let Some(session) = st.sessions.find(req.headers()) {
        req.extensions_mut().insert(session);
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    if public(&path) {
        return next.run(req).await;
    }
    if st.api.auth_required() {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let back = crate::view::query_escape(target);
        return Redirect::to(&format!("/login?next={back}")).into_response();
    }
    let session = st.sessions.create(Identity::anonymous(), false);
    let set = st.sessions.set_cookie(&session);
    req.extensions_mut().insert(session);
    let mut answer = next.run(req).await;
    if let Ok(value) = set.parse() {
        answer.headers_mut().append(header::SET_COOKIE, value);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; shale_console=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn a_post_from_another_site_is_cross_site() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(!cross_site(&h), "no Origin: a non-browser client");
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(!cross_site(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(cross_site(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(cross_site(&h));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_tls() {
        let plain = Sessions::new(Duration::from_secs(60), false);
        let s = plain.create(Identity::anonymous(), false);
        let c = plain.set_cookie(&s);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
        let tls = Sessions::new(Duration::from_secs(60), true);
        assert!(tls.set_cookie(&s).ends_with("; Secure"));
        assert_eq!(s.token.len(), 64);
        assert_ne!(s.token, s.csrf);
        assert!(s.check_csrf(&s.csrf).is_ok() && s.check_csrf("x").is_err());
    }
}
