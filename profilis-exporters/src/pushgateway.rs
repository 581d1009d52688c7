//! Pushing the exposition to a Prometheus Pushgateway, for batch jobs that end before a scrape
//! could reach them: [`Pushgateway`] says where (the gateway's URL, the job and the grouping
//! labels), how (basic auth, a timeout) and whether the exporter's guard pushes when it drops.
//!
//! The requests are those of the Pushgateway's API: `PUT` (push: replace every metric of the
//! group), `POST` (push-add: replace only the metrics of the same names) and `DELETE` (remove
//! the group), to `/metrics/job/<job>{/<label>/<value>}`. A value is percent-encoded, or
//! written in base64url as `<label>@base64/<value>` when it holds a `/` or is `.` or `..`
//! (which a path would read as its own segments), and as `<label>@base64/=` when empty, as the
//! API asks. Redirects are not followed: a client that follows one turns a `PUT` into a
//! bodiless `GET`, and the page it lands on (a proxy's login page) would answer `200` for a
//! push that stored nothing; a `3xx` is a [`PushError::Status`] instead.
//!
//! The client is `ureq`: a small, blocking HTTP/1.1 client with no runtime, which is what a
//! push from a guard's `drop` (or the end of `main`) needs; hyper would need a tokio runtime
//! for one request. Only `http://` gateways are supported for now (no TLS stack is built in).

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;

/// Content type of the pushed body: the Prometheus text format 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Most characters of a gateway's error answer kept in [`PushError::Status`].
const BODY_KEPT: usize = 512;

/// How a push replaces what the gateway holds for the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushMethod {
    /// `PUT`: every metric of the group is replaced by the pushed ones.
    Put,
    /// `POST` (push-add): only the metrics with the names of the pushed ones are replaced.
    Post,
}

impl PushMethod {
    fn as_str(self) -> &'static str {
        match self {
            PushMethod::Put => "PUT",
            PushMethod::Post => "POST",
        }
    }
}

/// Why a Pushgateway could not be configured, or a push (or delete) failed. A failed request
/// names the method, the URL (never the password) and the gateway's status or the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The gateway's URL is not an `http://host[:port][/path]` URL.
    #[error("Pushgateway URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong, and what is allowed.
        reason: &'static str,
    },
    /// The job name is empty.
    #[error("Pushgateway job name must not be empty")]
    EmptyJob,
    /// A grouping label's name is not allowed.
    #[error("Pushgateway grouping label {name:?}: {reason}")]
    InvalidLabel {
        /// The label name given.
        name: String,
        /// What is wrong, and what is allowed.
        reason: &'static str,
    },
    /// The basic auth user name holds a `:` (which would end it early).
    #[error("Pushgateway basic auth user {user:?}: a user name must not contain ':'")]
    InvalidUser {
        /// The user name given.
        user: String,
    },
    /// The timeout is zero or longer than [`Pushgateway::MAX_TIMEOUT`].
    #[error(
        "Pushgateway timeout {timeout:?}: must be greater than zero and at most 24 hours (Pushgateway::MAX_TIMEOUT)"
    )]
    InvalidTimeout {
        /// The timeout given.
        timeout: Duration,
    },
    /// The gateway answered with a status other than 2xx (a redirect, `3xx`, among them: it
    /// is not followed).
    #[error("{method} {url}: the Pushgateway answered {status}: {body}")]
    Status {
        /// `PUT`, `POST` or `DELETE`.
        method: &'static str,
        /// The group's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body (the gateway's reason).
        body: String,
    },
    /// The request did not get an answer: the connection was refused, the host not found,
    /// the timeout passed.
    #[error("{method} {url}: no answer from the Pushgateway: {cause}")]
    Request {
        /// `PUT`, `POST` or `DELETE`.
        method: &'static str,
        /// The group's URL.
        url: String,
        /// What went wrong.
        cause: String,
    },
    /// [`ExporterGuard::push`](crate::ExporterGuard::push) was called on an exporter without
    /// a Pushgateway ([`Exporter::pushgateway`](crate::Exporter::pushgateway)).
    #[error("this exporter has no Pushgateway: set one with Exporter::pushgateway")]
    NotConfigured,
}

/// Where and how to push: the gateway's URL, the job and grouping labels, basic auth, the
/// timeout, and what the exporter's guard does when it drops.
///
/// ```no_run
/// # use profilis_exporters as profilis;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use profilis::{Exporter, PushMethod, Pushgateway};
///
/// let gateway = Pushgateway::new("http://pushgateway:9091", "nightly_import")?
///     .grouping("shard", "eu/1")?
///     .basic_auth("ci", "secret")?
///     .timeout(Duration::from_secs(5))?;
/// let profilis = Exporter::new().pushgateway(gateway).install()?;
/// // ... the job's work; pushing along the way is allowed too:
/// profilis.push(PushMethod::Post)?;
/// // Dropping the guard pushes (PUT) everything a last time.
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Pushgateway {
    url: String,
    labels: Vec<String>,
    auth: Option<String>,
    timeout: Duration,
    on_drop: Option<PushMethod>,
}

impl std::fmt::Debug for Pushgateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credentials stay out of logs.
        f.debug_struct("Pushgateway")
            .field("url", &self.url)
            .field("basic_auth", &self.auth.is_some())
            .field("timeout", &self.timeout)
            .field("on_drop", &self.on_drop)
            .finish()
    }
}

impl Pushgateway {
    /// The default timeout of a request (connecting, sending and reading the answer).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// The longest [`Pushgateway::timeout`]: a day, as for the listener's timeouts.
    /// `Duration::MAX` does not fit on a clock.
    pub const MAX_TIMEOUT: Duration = crate::limits::MAX_TIMEOUT;

    /// A gateway at `url` (`http://host:9091`, or with a path prefix when it is served under
    /// one) for `job`, with no grouping labels, no auth, a timeout of
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT), and a `PUT` when the exporter's guard drops.
    ///
    /// # Errors
    /// [`PushError::InvalidUrl`] if `url` is not `http://host[:port][/path]` (an `https://`
    /// URL, credentials in the URL, a query or fragment are refused, each saying so, as are a
    /// port that is not a number up to 65535 and characters a URL cannot hold, such as a
    /// space); [`PushError::EmptyJob`] if `job` is empty.
    pub fn new(url: &str, job: &str) -> Result<Pushgateway, PushError> {
        let invalid = |reason| PushError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(invalid(
                    "https is not supported yet (no TLS stack is built in); use an http:// URL, or a local TLS proxy",
                ))
            }
            _ => return Err(invalid("must start with http://")),
        };
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err(invalid(
                "names no host (expected http://host[:port][/path])",
            ));
        }
        if host.contains('@') {
            return Err(invalid(
                "must not hold credentials: use Pushgateway::basic_auth",
            ));
        }
        if rest.contains(['?', '#']) {
            return Err(invalid("must not have a query or fragment"));
        }
        if job.is_empty() {
            return Err(PushError::EmptyJob);
        }
        let mut full = format!("http://{}/metrics/", rest.trim_end_matches('/'));
        // What the requests go to, checked now rather than at the first push (for a batch
        // job, often the one as it ends), with the parser ureq sends them with.
        let uri = full.parse::<ureq::http::Uri>().map_err(|_| {
            invalid("is not a URL: a space, or another character a URL cannot hold, or a bad host")
        })?;
        // `Uri` takes any digits as a port (and leaves it out if they overflow).
        let authority = uri.authority().map_or("", |a| a.as_str());
        let after_host = authority
            .rsplit_once(']')
            .map_or(authority, |(_, rest)| rest);
        if let Some((_, port)) = after_host.rsplit_once(':') {
            if port.parse::<u16>().is_err() {
                return Err(invalid("has a port that is not a number from 0 to 65535"));
            }
        }
        push_segment(&mut full, "job", job);
        Ok(Pushgateway {
            url: full,
            labels: Vec::new(),
            auth: None,
            timeout: Self::DEFAULT_TIMEOUT,
            on_drop: Some(PushMethod::Put),
        })
    }

    /// Adds a grouping label (`instance`, `shard`, ...): the group is the job and these labels.
    ///
    /// # Errors
    /// [`PushError::InvalidLabel`] if `name` is not a Prometheus label name
    /// (`[a-zA-Z_][a-zA-Z0-9_]*`), starts with `__` (reserved), is `job`, or was given before.
    pub fn grouping(mut self, name: &str, value: &str) -> Result<Pushgateway, PushError> {
        let invalid = |reason| PushError::InvalidLabel {
            name: name.to_owned(),
            reason,
        };
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(invalid(
                "not a label name: letters, digits and '_', not starting with a digit",
            ));
        }
        if name.starts_with("__") {
            return Err(invalid("names starting with '__' are reserved"));
        }
        if name == "job" {
            return Err(invalid("the job is given to Pushgateway::new"));
        }
        if self.labels.iter().any(|given| given == name) {
            return Err(invalid("given twice"));
        }
        self.labels.push(name.to_owned());
        self.url.push('/');
        push_segment(&mut self.url, name, value);
        Ok(self)
    }

    /// Sends `Authorization: Basic` with `user` and `password` (for a gateway started with a
    /// `--web.config.file` that asks for it).
    ///
    /// # Errors
    /// [`PushError::InvalidUser`] if `user` holds a `:`.
    pub fn basic_auth(mut self, user: &str, password: &str) -> Result<Pushgateway, PushError> {
        if user.contains(':') {
            return Err(PushError::InvalidUser {
                user: user.to_owned(),
            });
        }
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.auth = Some(format!("Basic {token}"));
        Ok(self)
    }

    /// The longest a request may take, connecting included (default 10 s). A push that takes
    /// longer fails with [`PushError::Request`].
    ///
    /// # Errors
    /// [`PushError::InvalidTimeout`] if `timeout` is zero (every push would fail) or longer
    /// than [`Pushgateway::MAX_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Result<Pushgateway, PushError> {
        if !crate::limits::valid_timeout(timeout) {
            return Err(PushError::InvalidTimeout { timeout });
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// What the exporter's guard does when it drops, after the last flush: `Some(Put)` (the
    /// default), `Some(Post)`, or `None` for nothing. A failure then is printed on stderr and
    /// counted in `profilis_push_failures_total`; the local metrics stay as they are.
    pub fn push_on_drop(mut self, method: Option<PushMethod>) -> Pushgateway {
        self.on_drop = method;
        self
    }

    /// The group's URL: `http://host:port/metrics/job/<job>{/<label>/<value>}`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn on_drop(&self) -> Option<PushMethod> {
        self.on_drop
    }

    /// Pushes `exposition` (Prometheus text format 0.0.4, as
    /// [`render`](crate::render) gives it) with `method`.
    ///
    /// # Errors
    /// [`PushError::Status`] if the gateway refuses it (naming the URL, the status and the
    /// gateway's reason), [`PushError::Request`] if it cannot be reached in time.
    pub fn push(&self, method: PushMethod, exposition: &str) -> Result<(), PushError> {
        let agent = self.agent();
        let request = match method {
            PushMethod::Put => agent.put(&self.url),
            PushMethod::Post => agent.post(&self.url),
        };
        let request = request.header("content-type", CONTENT_TYPE);
        let request = match &self.auth {
            Some(auth) => request.header("authorization", auth),
            None => request,
        };
        self.answer(method.as_str(), request.send(exposition.as_bytes()))
    }

    /// Deletes the group (every metric pushed with this job and these grouping labels).
    ///
    /// # Errors
    /// As [`Pushgateway::push`].
    pub fn delete(&self) -> Result<(), PushError> {
        let request = self.agent().delete(&self.url);
        let request = match &self.auth {
            Some(auth) => request.header("authorization", auth),
            None => request,
        };
        self.answer("DELETE", request.call())
    }

    fn agent(&self) -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            // A redirect is the answer, an error: see the module's docs.
            .max_redirects(0)
            .build()
            .into()
    }

    fn answer(
        &self,
        method: &'static str,
        answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(), PushError> {
        let mut response = answer.map_err(|e| PushError::Request {
            method,
            url: self.url.clone(),
            cause: e.to_string(),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        Err(PushError::Status {
            method,
            url: self.url.clone(),
            status: status.as_u16(),
            body: body.trim().chars().take(BODY_KEPT).collect(),
        })
    }
}

/// Appends `name/value` to a URL path as the Pushgateway's API asks: the value
/// percent-encoded, or `name@base64/<base64url>` when it holds a `/`, is `.` or `..` (path
/// segments of their own), or is empty.
fn push_segment(url: &mut String, name: &str, value: &str) {
    if value.is_empty() {
        let _ = write!(url, "{name}@base64/=");
    } else if value.contains('/') || value == "." || value == ".." {
        let encoded = base64::engine::general_purpose::URL_SAFE.encode(value);
        let _ = write!(url, "{name}@base64/{encoded}");
    } else {
        url.push_str(name);
        url.push('/');
        for byte in value.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                url.push(byte as char);
            } else {
                let _ = write!(url, "%{byte:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_api() {
        let gateway = Pushgateway::new("http://127.0.0.1:9091/", "nightly import")
            .unwrap()
            .grouping("shard", "eu/1")
            .unwrap()
            .grouping("empty", "")
            .unwrap()
            .grouping("name", "a b%ü")
            .unwrap();
        assert_eq!(
            gateway.url(),
            "http://127.0.0.1:9091/metrics/job/nightly%20import/shard@base64/ZXUvMQ==/empty@base64/=/name/a%20b%25%C3%BC"
        );
        let slash_job = Pushgateway::new("http://gw/prefix", "a/b").unwrap();
        assert_eq!(slash_job.url(), "http://gw/prefix/metrics/job@base64/YS9i");
        // `.` and `..` would be path segments of their own; `...` is a name like any other.
        let dots = Pushgateway::new("http://gw", "..")
            .unwrap()
            .grouping("dir", ".")
            .unwrap()
            .grouping("more", "...")
            .unwrap();
        assert_eq!(
            dots.url(),
            "http://gw/metrics/job@base64/Li4=/dir@base64/Lg==/more/..."
        );
    }

    #[test]
    fn urls_that_cannot_be_sent_are_refused_when_given() {
        for url in [
            "http://gw:99999",
            "http://gw:port",
            "http://g w:9091",
            "http://gw:9091/a b",
            "http://[::1",
        ] {
            let err = Pushgateway::new(url, "job").unwrap_err();
            assert!(
                matches!(&err, PushError::InvalidUrl { url: u, .. } if u == url),
                "{url}: {err}"
            );
        }
        for url in ["http://gw:9091", "http://[::1]:9091/prefix", "http://gw:0"] {
            assert!(Pushgateway::new(url, "job").is_ok(), "{url}");
        }
    }

    #[test]
    fn timeouts_are_bounded() {
        let gateway = Pushgateway::new("http://gw", "job").unwrap();
        for timeout in [Duration::ZERO, Duration::MAX, Pushgateway::MAX_TIMEOUT * 2] {
            let err = gateway.clone().timeout(timeout).unwrap_err();
            assert!(
                matches!(err, PushError::InvalidTimeout { timeout: t } if t == timeout),
                "{err}"
            );
            assert!(err.to_string().contains("24 hours"), "{err}");
        }
        let longest = gateway.timeout(Pushgateway::MAX_TIMEOUT).unwrap();
        assert_eq!(longest.timeout, Pushgateway::MAX_TIMEOUT);
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        for url in [
            "gw:9091",
            "https://gw",
            "http://",
            "http://u:p@gw",
            "http://gw?x=1",
        ] {
            let err = Pushgateway::new(url, "job").unwrap_err();
            assert!(
                matches!(&err, PushError::InvalidUrl { url: u, .. } if u == url),
                "{err}"
            );
        }
        assert!(matches!(
            Pushgateway::new("http://gw", ""),
            Err(PushError::EmptyJob)
        ));
        let gateway = Pushgateway::new("http://gw", "job").unwrap();
        for name in ["", "1a", "a-b", "__x", "job"] {
            let err = gateway.clone().grouping(name, "v").unwrap_err();
            assert!(
                matches!(&err, PushError::InvalidLabel { name: n, .. } if n == name),
                "{err}"
            );
        }
        let twice = gateway
            .clone()
            .grouping("a", "shard")
            .unwrap()
            .grouping("shard", "a/b")
            .unwrap();
        assert!(matches!(
            twice.grouping("shard", "c"),
            Err(PushError::InvalidLabel { .. })
        ));
        assert!(matches!(
            gateway.basic_auth("a:b", "c"),
            Err(PushError::InvalidUser { .. })
        ));
    }
}
