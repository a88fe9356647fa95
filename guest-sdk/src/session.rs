//! [`Session`]: short-lived scopes of this instance.

use std::ffi::OsString;
use std::time::{Duration, SystemTime};

use crate::bindings::sessions as wsess;
use crate::bindings::types as w;
use crate::error::{Error, Result};
use crate::state::State;
use crate::types::duration_to_secs;

/// A session of this instance: a scope of key space that dies at its TTL
/// (default 7 days) or when ended, reached by its id.
///
/// Keep the id (for example in a cookie or a callback URL) and
/// [`open`](Session::open) it again on later calls; open its key space with
/// [`State::session`] (or [`Session::state`]). Only this instance can open,
/// extend, end or inspect its sessions.
///
/// ```no_run
/// use std::time::Duration;
/// use wasm_state_sdk::{Session, State};
/// # fn main() -> wasm_state_sdk::Result<()> {
/// // The session the host named (`run --session ID`), or a new one for 1 hour.
/// let mut session = Session::current_or_create(Some(Duration::from_secs(3600)))?;
/// let cart = State::session(&session)?;
/// cart.list_append("items", &["apple"])?;
/// println!("session {} expires at {} ms", session.id(), session.expires_at_ms());
///
/// // Later, from the id alone:
/// let again = Session::open(session.id())?;
/// session.extend(Duration::from_secs(24 * 3600))?;  // now 1 day from now
/// again.end()?;                                     // deletes it and its keys
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    id: String,
    expires_at_ms: u64,
}

impl From<w::SessionInfo> for Session {
    fn from(i: w::SessionInfo) -> Self {
        Session {
            id: i.id,
            expires_at_ms: i.expires_at_ms,
        }
    }
}

/// The session id named by the value of [`Session::ENV_VAR`]: `Ok(None)` if
/// unset or empty, `Err(NoSuchSession)` if not valid Unicode (no session id
/// can be).
fn id_from_env(value: Option<OsString>) -> Result<Option<String>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v.into_string().map(Some).map_err(|_| Error::NoSuchSession),
    }
}

impl Session {
    /// The environment variable naming the current session: the host's
    /// `run --session ID` sets it.
    pub const ENV_VAR: &'static str = "WASM_STATE_SESSION";

    /// Creates a new, empty session of this instance that expires after
    /// `ttl` (rounded up to whole seconds; `None` = 7 days). A zero `ttl` or
    /// one above the host's maximum fails with [`Error::InvalidArgument`].
    pub fn create(ttl: Option<Duration>) -> Result<Session> {
        Ok(wsess::create(ttl.map(duration_to_secs))?.into())
    }

    /// The live session `id` of this instance. Fails with
    /// [`Error::NoSuchSession`] if `id` is unknown, expired, ended, malformed
    /// or another instance's.
    pub fn open(id: &str) -> Result<Session> {
        Ok(wsess::info(id)?.into())
    }

    /// The session named by the environment variable [`Session::ENV_VAR`]
    /// (`WASM_STATE_SESSION`, set by the host's `run --session ID`):
    /// `Ok(None)` if the variable is unset or empty, the session if it is
    /// live, [`Error::NoSuchSession`] if it is not.
    pub fn current() -> Result<Option<Session>> {
        match id_from_env(std::env::var_os(Self::ENV_VAR))? {
            None => Ok(None),
            Some(id) => Session::open(&id).map(Some),
        }
    }

    /// The [`current`](Session::current) session if there is a live one,
    /// else a new session created with `ttl` (also when the variable names a
    /// session that has expired or was ended). Compare
    /// [`id`](Session::id) with the variable to tell which happened.
    pub fn current_or_create(ttl: Option<Duration>) -> Result<Session> {
        match Session::current() {
            Ok(Some(session)) => Ok(session),
            Ok(None) | Err(Error::NoSuchSession) => Session::create(ttl),
            Err(e) => Err(e),
        }
    }

    /// The session id: URL-safe text (`A-Z a-z 0-9 - _`), opaque.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When the session expires, as Unix time in milliseconds (as of the
    /// last `create`, `open`, `current` or `extend`).
    pub fn expires_at_ms(&self) -> u64 {
        self.expires_at_ms
    }

    /// When the session expires, as a [`SystemTime`].
    pub fn expires_at(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.expires_at_ms)
    }

    /// Sets the session to expire `ttl` from now (rounded up to whole
    /// seconds; this can shorten it too). Its keys and their own TTLs are
    /// untouched. Fails with [`Error::NoSuchSession`] if it is no longer
    /// live.
    pub fn extend(&mut self, ttl: Duration) -> Result<()> {
        let info = wsess::extend(&self.id, duration_to_secs(ttl))?;
        self.expires_at_ms = info.expires_at_ms;
        Ok(())
    }

    /// Ends the session now: it and all its keys are deleted at once.
    /// Returns whether it was still live.
    pub fn end(self) -> Result<bool> {
        Ok(wsess::end(&self.id)?)
    }

    /// The session's key space: same as [`State::session`].
    pub fn state(&self) -> Result<State> {
        State::session(self)
    }

    /// Header in which an HTTP client names its session.
    pub const HEADER: &'static str = "x-session-id";

    /// Cookie in which a browser names its session.
    pub const COOKIE: &'static str = "wasm_state_session";

    /// The session an incoming HTTP request names (VCR's
    /// `getSessionFromRequest`): the [`HEADER`](Session::HEADER) header if
    /// present, else the [`COOKIE`](Session::COOKIE) cookie. `Ok(None)` if the
    /// request names none; `Err(NoSuchSession)` if it names one that is
    /// unknown, ended, expired or of another instance (the host checks).
    ///
    /// `headers` are (name, value) pairs in any HTTP library's form, e.g.
    /// `req.headers().iter().map(|(k, v)| (k.as_str(), v.as_bytes()))`.
    ///
    /// ```no_run
    /// use wasm_state_sdk::{Session, State};
    /// # fn handler(headers: Vec<(String, Vec<u8>)>) -> wasm_state_sdk::Result<()> {
    /// let pairs = headers.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
    /// let (session, created) = Session::from_request_or_create(pairs, None)?;
    /// let cart = State::session(&session)?;
    /// cart.list_append("items", &["apple"])?;
    /// if created {
    ///     // Hand the id back: `Set-Cookie: {session.cookie()}` and/or the header.
    ///     println!("set-cookie: {}", session.cookie());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn from_request<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Option<Session>> {
        match id_from_headers(headers) {
            Some(id) => Session::open(&id).map(Some),
            None => Ok(None),
        }
    }

    /// The request's session, or a new one (with `ttl`, default 7 days) if it
    /// names none or a dead one. Returns whether it was created, so the
    /// handler knows to hand the id back (see [`cookie`](Session::cookie)).
    ///
    /// Every request without a live session creates one: a client that
    /// never sends the cookie back (a crawler, a health check, a script)
    /// makes one per request until the instance's session limit refuses
    /// new ones ([`Error::QuotaExceeded`]) — for every user — until they
    /// expire. Call this only where a request needs a session of its own
    /// (use [`from_request`](Session::from_request) elsewhere), and prefer a
    /// short `ttl` that [`extend`](Session::extend) renews on each visit.
    pub fn from_request_or_create<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        ttl: Option<Duration>,
    ) -> Result<(Session, bool)> {
        match Session::from_request(headers) {
            Ok(Some(session)) => Ok((session, false)),
            Ok(None) | Err(Error::NoSuchSession) => Session::create(ttl).map(|s| (s, true)),
            Err(e) => Err(e),
        }
    }

    /// A `Set-Cookie` header value that hands this session to a browser
    /// until it expires (HttpOnly, SameSite=Lax, Path=/).
    pub fn cookie(&self) -> String {
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let max_age = self.expires_at_ms.saturating_sub(now_ms) / 1000;
        format!(
            "{}={}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax",
            Session::COOKIE,
            self.id
        )
    }
}

/// The session id named by request headers: the header first, then the cookie.
fn id_from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Option<String> {
    let mut from_cookie = None;
    for (name, value) in headers {
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        if name.eq_ignore_ascii_case(Session::HEADER) {
            let id = value.trim();
            if !id.is_empty() {
                return Some(id.to_string());
            }
        } else if name.eq_ignore_ascii_case("cookie") && from_cookie.is_none() {
            from_cookie = value.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k == Session::COOKIE && !v.is_empty()).then(|| v.to_string())
            });
        }
    }
    from_cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_a_session_only_when_set_and_non_empty() {
        assert_eq!(id_from_env(None).unwrap(), None);
        assert_eq!(id_from_env(Some(OsString::new())).unwrap(), None);
        assert_eq!(
            id_from_env(Some(OsString::from("abc_-1")))
                .unwrap()
                .as_deref(),
            Some("abc_-1")
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_unicode_env_is_no_session() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![0xff, 0xfe]);
        assert!(matches!(id_from_env(Some(bad)), Err(Error::NoSuchSession)));
    }

    #[test]
    fn requests_name_sessions_by_header_then_cookie() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            id_from_headers(pairs.iter().map(|(k, v)| (*k, v.as_bytes())))
        };
        assert_eq!(h(&[]), None);
        assert_eq!(h(&[("X-Session-Id", "abc")]).as_deref(), Some("abc"));
        assert_eq!(
            h(&[("cookie", "a=1; wasm_state_session=xyz; b=2")]).as_deref(),
            Some("xyz")
        );
        assert_eq!(
            h(&[("cookie", "wasm_state_session=c"), ("x-session-id", "h")]).as_deref(),
            Some("h")
        );
        assert_eq!(h(&[("cookie", "other=1"), ("x-session-id", " ")]), None);
        assert_eq!(h(&[("cookie", "wasm_state_session=")]), None);
    }

    #[test]
    fn expiry_as_system_time() {
        let s = Session::from(w::SessionInfo {
            id: "x".into(),
            expires_at_ms: 1_500,
        });
        assert_eq!(
            s.expires_at(),
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_500)
        );
    }
}
