//! The `/metrics` response: the format the scraper asks for (the Prometheus text format by
//! default, OpenMetrics when its `Accept` header prefers it: [`ExpositionFormat::negotiate`])
//! with its content type, and gzip when the client accepts it. The built-in listener and the
//! axum and actix-web handlers answer alike through [`metrics_page_as`].

use std::io::{self, Write as _};

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::text_format::ExpositionFormat;

/// Content type of the Prometheus text exposition format served on `/metrics` by default.
pub const METRICS_CONTENT_TYPE: &str = ExpositionFormat::Text.content_type();

/// Content type of OpenMetrics 1.0, served on `/metrics` when the scraper asks for it.
pub const OPENMETRICS_CONTENT_TYPE: &str = ExpositionFormat::OpenMetrics.content_type();

pub(crate) fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::default());
    encoder.write_all(data)?;
    encoder.finish()
}

/// A `/metrics` response body, ready to send with its format's content type and, if `gzip`,
/// `Content-Encoding: gzip` (and `Vary: Accept, Accept-Encoding`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsPage {
    /// The body.
    pub body: Vec<u8>,
    /// Whether the body is gzip-compressed.
    pub gzip: bool,
    /// The body's format.
    pub format: ExpositionFormat,
}

impl MetricsPage {
    /// The headers to send with the body: `Content-Type` ([`METRICS_CONTENT_TYPE`] or
    /// [`OPENMETRICS_CONTENT_TYPE`]), `Vary: Accept, Accept-Encoding`, and
    /// `Content-Encoding: gzip` when the body is compressed.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        [
            ("content-type", self.format.content_type()),
            ("vary", "Accept, Accept-Encoding"),
        ]
        .into_iter()
        .chain(self.gzip.then_some(("content-encoding", "gzip")))
    }
}

/// The `/metrics` response for exposition text `page` (in the text format) and a request's
/// `Accept-Encoding` values: gzip-compressed when the client accepts gzip.
pub fn metrics_page<'a>(
    page: String,
    accept_encoding: impl IntoIterator<Item = &'a str>,
) -> MetricsPage {
    metrics_page_as(ExpositionFormat::Text, page, accept_encoding)
}

/// The `/metrics` response for `page`, written in `format` (the one
/// [`ExpositionFormat::negotiate`] picked from the request's `Accept`), and a request's
/// `Accept-Encoding` values: gzip-compressed when the client accepts gzip. The built-in
/// listener and the framework handlers (`profilis::http`) answer alike through this.
pub fn metrics_page_as<'a>(
    format: ExpositionFormat,
    page: String,
    accept_encoding: impl IntoIterator<Item = &'a str>,
) -> MetricsPage {
    if accepts_gzip(accept_encoding) {
        if let Ok(body) = gzip(page.as_bytes()) {
            return MetricsPage {
                body,
                gzip: true,
                format,
            };
        }
    }
    MetricsPage {
        body: page.into_bytes(),
        gzip: false,
        format,
    }
}

/// Whether a request to a `/metrics` handler mounted in an application's own router (the
/// axum and actix-web handlers of `profilis::http`) may have the page: `authorization` (its
/// `Authorization` header's value, if any) must carry the installed exporter's
/// [bearer token](crate::Exporter::bearer_token) as `Bearer <token>`, as the built-in
/// listener asks. Always `true` when that exporter has no token, or before one is installed.
/// A handler answers `false` with `401 Unauthorized` and `WWW-Authenticate: Bearer`.
///
/// ```
/// // No exporter installed in this process: nothing to ask for.
/// assert!(profilis_exporters::exposition::scrape_authorized(None));
/// ```
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub fn scrape_authorized(authorization: Option<&[u8]>) -> bool {
    crate::auth::installed_authorized(authorization)
}

/// Whether `Accept-Encoding` accepts gzip: `gzip` or `x-gzip` with a non-zero weight, or else
/// `*` with a non-zero weight. No header means identity only.
pub(crate) fn accepts_gzip<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    let mut gzip = None;
    let mut any = None;
    for item in values.into_iter().flat_map(|value| value.split(',')) {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let weight = parts
            .find_map(|param| {
                let (name, value) = param.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().unwrap_or(0.0))
            })
            .unwrap_or(1.0);
        let accepted = weight > 0.0;
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(accepted);
        } else if coding == "*" {
            any = Some(accepted);
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept_encoding(value: &str) -> [&str; 1] {
        [value]
    }

    #[test]
    fn gzip_is_accepted_when_listed_with_a_positive_weight() {
        assert!(accepts_gzip(accept_encoding("gzip")));
        assert!(accepts_gzip(accept_encoding("deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(accept_encoding("x-gzip")));
        assert!(accepts_gzip(accept_encoding("*")));
    }

    #[test]
    fn gzip_is_refused_when_absent_or_weighted_zero() {
        assert!(!accepts_gzip([]));
        assert!(!accepts_gzip(accept_encoding("identity")));
        assert!(!accepts_gzip(accept_encoding("gzip;q=0")));
        assert!(!accepts_gzip(accept_encoding("*, gzip;q=0")));
        assert!(!accepts_gzip(accept_encoding("br, *;q=0")));
    }

    #[test]
    fn pages_are_gzipped_only_for_clients_that_accept_it() {
        let plain = metrics_page("a 1\n".to_owned(), []);
        assert_eq!((plain.body.as_slice(), plain.gzip), (&b"a 1\n"[..], false));
        let zipped = metrics_page("a 1\n".to_owned(), ["gzip"]);
        assert!(zipped.gzip);
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(zipped.body.as_slice()),
            &mut text,
        )
        .unwrap();
        assert_eq!(text, "a 1\n");
    }
}
