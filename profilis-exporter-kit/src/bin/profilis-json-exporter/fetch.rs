//! One poll of the target: `GET` the status document over plain HTTP/1 within the timeout, and
//! tell apart why it failed (refused, timed out, a non-2xx status, a body too large or not
//! JSON), each error naming the URL. The body is read for the mapped fields only
//! ([`Pointers::read`]).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::{header, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::document::{Document, DocumentError, Pointers};

/// The largest status document read; a larger one is an error, not a memory spike.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Why a poll failed. Each names the URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Nothing listens at the target's port.
    #[error("GET {url}: connection refused (is the target running?)")]
    Refused {
        /// The URL.
        url: String,
    },
    /// No complete answer within the timeout (the answer late, or its body trickling past it).
    #[error("GET {url}: no complete answer within {timeout:?} (--target-timeout-seconds)")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// Another failure to connect (the name does not resolve, the network is unreachable).
    #[error("GET {url}: cannot connect: {cause}")]
    Connect {
        /// The URL.
        url: String,
        /// Why, from the innermost error.
        cause: String,
    },
    /// The target answered with a status other than 2xx.
    #[error("GET {url}: the target answered {status}; a 2xx status is expected")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
    },
    /// The body is larger than [`BODY_LIMIT`].
    #[error("GET {url}: the body is larger than {limit} bytes, the most read")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The body is not a JSON document.
    #[error("GET {url}: the body is not JSON: {source}")]
    NotJson {
        /// The URL.
        url: String,
        /// The parser's complaint (with line and column).
        source: DocumentError,
    },
    /// The exchange broke off (the connection closed mid-answer, a malformed response).
    #[error("GET {url}: {cause}")]
    Exchange {
        /// The URL.
        url: String,
        /// Why.
        cause: String,
    },
}

/// Reads the status document from one URL.
#[derive(Debug)]
pub struct Fetcher {
    client: Client<HttpConnector, Empty<Bytes>>,
    uri: Uri,
    url: String,
    timeout: Duration,
    limit: usize,
}

impl Fetcher {
    /// A fetcher of `url` (`http://host:port/path`) with this timeout per poll.
    ///
    /// # Errors
    /// A message naming the URL when it is not an http URL.
    pub fn new(url: &str, timeout: Duration) -> Result<Fetcher, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("the target URL {url} is not valid: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!(
                "the target URL {url} is not an http:// URL with a host (https is not supported)"
            ));
        }
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build(HttpConnector::new());
        Ok(Fetcher {
            client,
            uri,
            url: url.to_owned(),
            timeout,
            limit: BODY_LIMIT,
        })
    }

    /// The URL polled.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The longest one poll may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET`s the document and reads the fields of `pointers` from it.
    ///
    /// # Errors
    /// [`FetchError`], naming the URL and the cause.
    pub async fn fetch(&self, pointers: &Pointers) -> Result<Document, FetchError> {
        let body = tokio::time::timeout(self.timeout, self.body())
            .await
            .map_err(|_| FetchError::Timeout {
                url: self.url.clone(),
                timeout: self.timeout,
            })??;
        pointers.read(&body).map_err(|source| FetchError::NotJson {
            url: self.url.clone(),
            source,
        })
    }

    async fn body(&self) -> Result<Bytes, FetchError> {
        let url = || self.url.clone();
        let request = Request::get(self.uri.clone())
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("profilis-json-exporter/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|e| FetchError::Exchange {
                url: url(),
                cause: e.to_string(),
            })?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| classify(&self.url, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status { url: url(), status });
        }
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.limit as u64) {
            return Err(FetchError::TooLarge {
                url: url(),
                limit: self.limit,
            });
        }
        match Limited::new(response.into_body(), self.limit)
            .collect()
            .await
        {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(FetchError::TooLarge {
                url: url(),
                limit: self.limit,
            }),
            Err(e) => Err(FetchError::Exchange {
                url: url(),
                cause: format!("the body broke off: {}", causes(&*e)),
            }),
        }
    }
}

/// Sorts a client error: a refused connection, another connect failure, or a broken exchange.
fn classify(url: &str, error: &hyper_util::client::legacy::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return FetchError::Refused { url: url.into() };
            }
        }
        source = e.source();
    }
    if error.is_connect() {
        FetchError::Connect {
            url: url.into(),
            cause: causes(error),
        }
    } else {
        FetchError::Exchange {
            url: url.into(),
            cause: causes(error),
        }
    }
}

/// An error and its sources, `outer: inner: innermost`.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A loopback server that answers each connection with `response` after `delay`.
    async fn serve(response: Vec<u8>, delay: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let response = response.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    tokio::time::sleep(delay).await;
                    let _ = stream.write_all(&response).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        format!("http://{addr}/status")
    }

    fn answer(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    async fn fetch(url: &str, timeout: Duration) -> Result<Document, FetchError> {
        Fetcher::new(url, timeout)
            .unwrap()
            .fetch(&Pointers::new(["/current_requests"]))
            .await
    }

    #[tokio::test]
    async fn a_document_is_read() {
        let url = serve(
            answer("200 OK", r#"{"current_requests": 3}"#),
            Duration::ZERO,
        )
        .await;
        let doc = fetch(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!(doc.field(0), Some(&crate::document::Field::Number(3.0)));
    }

    #[tokio::test]
    async fn failures_are_told_apart_and_name_the_url() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = format!("http://{}/status", free.local_addr().unwrap());
        drop(free);
        let err = fetch(&refused, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, FetchError::Refused { .. }), "{err:?}");
        assert!(err.to_string().contains(&refused), "{err}");

        let slow = serve(answer("200 OK", "{}"), Duration::from_secs(30)).await;
        let err = fetch(&slow, Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(err, FetchError::Timeout { .. }), "{err:?}");
        assert!(err.to_string().contains(&slow), "{err}");

        let failing = serve(answer("500 Internal Server Error", "oops"), Duration::ZERO).await;
        let err = fetch(&failing, Duration::from_secs(5)).await.unwrap_err();
        assert!(
            err.to_string().contains("500 Internal Server Error"),
            "{err}"
        );
        assert!(err.to_string().contains(&failing), "{err}");

        let garbled = serve(answer("200 OK", "{\"a\": "), Duration::ZERO).await;
        let err = fetch(&garbled, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, FetchError::NotJson { .. }), "{err:?}");
        assert!(err.to_string().contains(&garbled), "{err}");

        let big = "x".repeat(BODY_LIMIT + 1);
        let declared = serve(answer("200 OK", &big), Duration::ZERO).await;
        let err = fetch(&declared, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, FetchError::TooLarge { .. }), "{err:?}");

        // No content-length: the limit is found while reading.
        let undeclared = serve(
            format!("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{big}").into_bytes(),
            Duration::ZERO,
        )
        .await;
        let err = fetch(&undeclared, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn only_http_urls() {
        let err = Fetcher::new("https://example.com/status", Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("https is not supported"), "{err}");
    }
}
