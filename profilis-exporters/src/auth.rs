//! The bearer token check shared by the built-in listener and the dashboard's handlers (which
//! framework routers mount too), so every door asks for the token the same way.

#[cfg(feature = "dashboard")]
use std::sync::Mutex;

/// The bearer token of the exporter installed last (none if it had none), which the `/metrics`
/// handlers mounted in an application's own router ask for: the page they serve is that
/// exporter's, and stays on after its guard drops, so the token stays with it.
#[cfg(feature = "dashboard")]
static INSTALLED_TOKEN: Mutex<Option<String>> = Mutex::new(None);

/// Makes `token` the one [`installed_authorized`] asks for.
#[cfg(feature = "dashboard")]
pub(crate) fn install_token(token: Option<String>) {
    *INSTALLED_TOKEN.lock().unwrap_or_else(|e| e.into_inner()) = token;
}

/// Whether `authorization` carries the installed exporter's bearer token; always `true` when
/// it has none (or none is installed).
#[cfg(feature = "dashboard")]
pub(crate) fn installed_authorized(authorization: Option<&[u8]>) -> bool {
    let token = INSTALLED_TOKEN.lock().unwrap_or_else(|e| e.into_inner());
    bearer_authorized(token.as_deref(), authorization)
}

/// Whether `token` can be a bearer token: not empty, visible ASCII only (no spaces).
pub(crate) fn valid_bearer_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether `authorization` (the `Authorization` header's value, if any) carries `expected` as
/// a bearer token; always `true` when no token is set. The scheme name is case-insensitive
/// (RFC 7235); the token is compared exactly, in constant time.
pub(crate) fn bearer_authorized(expected: Option<&str>, authorization: Option<&[u8]>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let Some(value) = authorization else {
        return false;
    };
    let (Some(scheme), Some(token)) = (value.get(..7), value.get(7..)) else {
        return false;
    };
    scheme.eq_ignore_ascii_case(b"bearer ")
        && constant_time_eq(token.trim_ascii(), expected.as_bytes())
}

/// Compares in time that depends only on the length of `expected`, so response timing does not
/// reveal how much of a guessed token was right.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (index, &byte) in expected.iter().enumerate() {
        difference |= byte ^ given.get(index).copied().unwrap_or(!byte);
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_matches_only_equal_bytes() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret!", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn only_the_bearer_scheme_with_the_exact_token_passes() {
        assert!(bearer_authorized(None, None));
        assert!(bearer_authorized(Some("s3"), Some(b"Bearer s3")));
        assert!(bearer_authorized(Some("s3"), Some(b"bEaReR  s3 ")));
        assert!(!bearer_authorized(Some("s3"), None));
        assert!(!bearer_authorized(Some("s3"), Some(b"Basic s3")));
        assert!(!bearer_authorized(Some("s3"), Some(b"Bearer s4")));
        assert!(!bearer_authorized(Some("s3"), Some(b"Bear")));
    }
}
