//! The built-in listener over real loopback TCP, with a raw `std::net::TcpStream` as the client.
//! Every client socket has a read timeout, so a listener bug fails a test instead of hanging it.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use profilis_exporters::exposition::METRICS_CONTENT_TYPE;
use profilis_exporters::listener::{
    self, parse_allow_list, parse_allowed_network, parse_listen_addr, Listener, ListenerConfig,
    ListenerError, RenderFn, DEFAULT_LISTEN,
};
use profilis_exporters::{Error, Exporter};
use socket2::{Domain, Protocol, Socket, Type};

/// Longest a client waits for any single read; far above what a healthy listener needs.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

const PAGE: &str = "# HELP profilis_queue_depth Events waiting in the queue.\n\
                    # TYPE profilis_queue_depth gauge\n\
                    profilis_queue_depth 3\n";

fn ephemeral() -> ListenerConfig {
    ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ListenerConfig::default()
    }
}

fn page() -> RenderFn {
    Arc::new(|| PAGE.to_owned())
}

fn start(config: ListenerConfig) -> Listener {
    listener::start(config, page()).expect("listener starts")
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream
}

/// A loopback address other than `127.0.0.1`: Linux routes all of `127.0.0.0/8` to `lo`, so a
/// client bound to it reaches the listener from an address an allow-list of `127.0.0.1` refuses.
const OTHER_LOOPBACK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Connects from `source`, with a receive buffer of `receive_buffer` bytes when given (a small
/// one makes the listener's writes stall as soon as the client stops reading).
fn connect_with(source: Ipv4Addr, receive_buffer: Option<usize>, addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket
        .bind(&SocketAddr::new(source.into(), 0).into())
        .expect("bind the client socket");
    socket
        .connect_timeout(&addr.into(), CLIENT_TIMEOUT)
        .expect("connect");
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream
}

/// Sends one request with `Connection: close` and reads the reply to the end of the stream.
fn send(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = connect(addr);
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        write!(request, "{name}: {value}\r\n").unwrap();
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read reply");
    parse_reply(&raw)
}

fn get(addr: SocketAddr, target: &str) -> Reply {
    send(addr, "GET", target, &[])
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).expect("ascii head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header line");
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Reads until the server closes the connection; panics if it is still open after
/// `CLIENT_TIMEOUT`. A reset counts as closed. Returns whatever was received before.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return received,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the listener kept the connection open for {CLIENT_TIMEOUT:?}")
            }
            Err(_) => return received, // reset by the listener: closed too
        }
    }
}

/// Reads exactly one response with a `Content-Length` body from a keep-alive connection;
/// `None` when the connection closed or reset first.
fn read_one_response(stream: &mut TcpStream) -> Option<Reply> {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        if let Some(split) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            let reply = parse_reply(&received);
            let length: usize = reply
                .header("content-length")
                .map_or(0, |length| length.parse().unwrap());
            if received.len() >= split + 4 + length {
                return Some(reply);
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) => return None,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no response within {CLIENT_TIMEOUT:?}")
            }
            Err(_) => return None,
        }
    }
}

fn gunzip(data: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(data)
        .read_to_string(&mut text)
        .expect("valid gzip");
    text
}

#[test]
fn get_metrics_serves_the_rendered_page_as_prometheus_text() {
    let listener = start(ephemeral());
    let reply = get(listener.local_addr(), "/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some(METRICS_CONTENT_TYPE));
    assert_eq!(
        METRICS_CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(reply.header("content-encoding"), None);
    assert_eq!(reply.body, PAGE.as_bytes());
}

#[test]
fn query_string_is_ignored_when_matching_paths() {
    let listener = start(ephemeral());
    let reply = get(
        listener.local_addr(),
        "/metrics?name[]=profilis_queue_depth",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, PAGE.as_bytes());
    assert_eq!(get(listener.local_addr(), "/healthz?verbose=1").status, 200);
}

#[test]
fn metrics_are_gzipped_when_the_client_accepts_gzip() {
    let listener = start(ephemeral());
    let reply = send(
        listener.local_addr(),
        "GET",
        "/metrics",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    assert_eq!(reply.header("content-type"), Some(METRICS_CONTENT_TYPE));
    assert_eq!(gunzip(&reply.body), PAGE);
}

#[test]
fn metrics_are_not_gzipped_when_gzip_is_refused() {
    let listener = start(ephemeral());
    let reply = send(
        listener.local_addr(),
        "GET",
        "/metrics",
        &[("Accept-Encoding", "gzip;q=0, identity")],
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-encoding"), None);
    assert_eq!(reply.body, PAGE.as_bytes());
}

#[test]
fn head_metrics_sends_headers_without_a_body() {
    let listener = start(ephemeral());
    let reply = send(listener.local_addr(), "HEAD", "/metrics", &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some(METRICS_CONTENT_TYPE));
    assert_eq!(
        reply.header("content-length"),
        Some(PAGE.len().to_string().as_str())
    );
    assert!(reply.body.is_empty(), "HEAD sent a body: {:?}", reply.body);
}

#[test]
fn head_metrics_with_gzip_sends_no_body_either() {
    let listener = start(ephemeral());
    let reply = send(
        listener.local_addr(),
        "HEAD",
        "/metrics",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    assert!(reply.body.is_empty(), "HEAD sent a body: {:?}", reply.body);
}

#[test]
fn healthz_answers_ok() {
    let listener = start(ephemeral());
    let reply = get(listener.local_addr(), "/healthz");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"ok");
    let head = send(listener.local_addr(), "HEAD", "/healthz", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn unknown_paths_are_not_found() {
    let listener = start(ephemeral());
    for path in ["/", "/metric", "/metrics/", "/admin", "/healthz/x"] {
        assert_eq!(get(listener.local_addr(), path).status, 404, "{path}");
    }
}

#[test]
fn other_methods_on_metrics_are_not_allowed() {
    let listener = start(ephemeral());
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let reply = send(
            listener.local_addr(),
            method,
            "/metrics",
            &[("Content-Length", "0")],
        );
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method}");
    }
}

#[test]
fn a_request_body_is_not_read_and_does_not_break_the_listener() {
    let listener = start(ephemeral());
    let reply = send(
        listener.local_addr(),
        "POST",
        "/metrics",
        &[("Content-Length", "1000000")],
    );
    assert_eq!(reply.status, 405);
    assert_eq!(get(listener.local_addr(), "/metrics").status, 200);
}

#[test]
fn address_in_use_is_a_typed_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let error = listener::start(
        ListenerConfig {
            addr,
            ..ListenerConfig::default()
        },
        page(),
    )
    .expect_err("the address is taken");
    assert!(
        matches!(error, ListenerError::AddrInUse { addr: named } if named == addr),
        "{error:?}"
    );
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

#[test]
fn listen_addresses_parse_or_name_the_bad_value() {
    assert_eq!(
        parse_listen_addr("127.0.0.1:9464").unwrap(),
        "127.0.0.1:9464".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        parse_listen_addr(" [::1]:9000 ").unwrap(),
        "[::1]:9000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        parse_listen_addr("localhost:9100").unwrap(),
        "127.0.0.1:9100".parse::<SocketAddr>().unwrap()
    );
    for bad in [
        "",
        "9464",
        "127.0.0.1",
        "127.0.0.1:99999",
        "example.com:80",
        "::1:9464",
    ] {
        let error = parse_listen_addr(bad).expect_err(bad);
        assert!(
            matches!(&error, ListenerError::InvalidAddr { value } if value == bad),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&format!("{bad:?}")), "{message}");
        assert!(message.contains("ip:port"), "{message}");
    }
}

#[test]
fn allowed_networks_parse_or_name_the_bad_value() {
    assert_eq!(
        parse_allowed_network("10.0.0.0/8").unwrap().to_string(),
        "10.0.0.0/8"
    );
    assert_eq!(
        parse_allowed_network("127.0.0.1").unwrap().to_string(),
        "127.0.0.1/32"
    );
    assert_eq!(parse_allowed_network("::1").unwrap().to_string(), "::1/128");
    assert_eq!(
        parse_allowed_network("192.168.1.7/24").unwrap().to_string(),
        "192.168.1.0/24"
    );
    assert_eq!(
        parse_allow_list("10.0.0.0/8, ::1,").unwrap(),
        vec![
            parse_allowed_network("10.0.0.0/8").unwrap(),
            parse_allowed_network("::1").unwrap()
        ]
    );
    for bad in ["10.0.0.0/33", "localhost", "10.0.0", "", "1.2.3.4/"] {
        let error = parse_allowed_network(bad).expect_err(bad);
        assert!(
            matches!(&error, ListenerError::InvalidNetwork { value } if value == bad),
            "{error:?}"
        );
        assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
    }
    let error = parse_allow_list("10.0.0.0/8,nope").unwrap_err();
    assert!(
        matches!(&error, ListenerError::InvalidNetwork { value } if value == "nope"),
        "{error:?}"
    );
}

#[test]
fn an_allow_list_naming_no_network_is_an_error() {
    for empty in ["", " ", ",", " , ", ",,\t,"] {
        let error = parse_allow_list(empty).expect_err(empty);
        assert!(
            matches!(&error, ListenerError::EmptyAllowList { value } if value == empty),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&format!("{empty:?}")), "{message}");
        assert!(message.contains("10.0.0.0/8"), "{message}");
    }
    let error = Exporter::new().allow(" , ").err().expect("rejected");
    assert!(
        matches!(error, Error::Listener(ListenerError::EmptyAllowList { .. })),
        "{error:?}"
    );
}

#[test]
fn ipv4_mapped_entries_become_the_ipv4_networks_they_stand_for() {
    for (entry, stored) in [
        ("::ffff:127.0.0.1", "127.0.0.1/32"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:10.1.2.3/104", "10.0.0.0/8"),
        ("::ffff:192.168.1.7/120", "192.168.1.0/24"),
        ("::ffff:0.0.0.0/96", "0.0.0.0/0"),
        // Not IPv4-mapped, or wider than the mapped range: left as they are.
        ("::1", "::1/128"),
        ("::/0", "::/0"),
        ("::ffff:0:0/95", "::fffe:0:0/95"),
        ("fd00::/8", "fd00::/8"),
    ] {
        assert_eq!(
            parse_allowed_network(entry).unwrap().to_string(),
            stored,
            "{entry}"
        );
    }
    assert_eq!(
        parse_allow_list("::ffff:10.0.0.0/104, ::ffff:127.0.0.1").unwrap(),
        parse_allow_list("10.0.0.0/8, 127.0.0.1").unwrap()
    );
}

#[test]
fn an_ipv4_mapped_entry_admits_its_client_on_an_ipv4_socket() {
    let allowed = start(ListenerConfig {
        allow: parse_allow_list("::ffff:127.0.0.1").unwrap(),
        ..ephemeral()
    });
    assert_eq!(get(allowed.local_addr(), "/metrics").status, 200);
    // Built without the parser, the entry still matches.
    let unparsed = start(ListenerConfig {
        allow: vec!["::ffff:127.0.0.0/120".parse().unwrap()],
        ..ephemeral()
    });
    assert_eq!(get(unparsed.local_addr(), "/metrics").status, 200);
    let refused = start(ListenerConfig {
        allow: parse_allow_list("::ffff:10.0.0.1").unwrap(),
        ..ephemeral()
    });
    assert_eq!(get(refused.local_addr(), "/metrics").status, 403);
}

#[test]
fn zero_limits_and_bad_tokens_are_refused_before_binding() {
    let zero_connections = listener::start(
        ListenerConfig {
            max_connections: 0,
            ..ephemeral()
        },
        page(),
    )
    .unwrap_err();
    assert!(
        matches!(
            zero_connections,
            ListenerError::InvalidSetting {
                name: "max_connections",
                ..
            }
        ),
        "{zero_connections:?}"
    );
    let zero_timeout = listener::start(
        ListenerConfig {
            read_timeout: Duration::ZERO,
            ..ephemeral()
        },
        page(),
    )
    .unwrap_err();
    assert!(zero_timeout.to_string().contains("read_timeout"));
    // "No limit" written as the longest duration: refused, not a panic in every connection.
    for (config, name) in [
        (
            ListenerConfig {
                connection_timeout: Duration::MAX,
                ..ephemeral()
            },
            "connection_timeout",
        ),
        (
            ListenerConfig {
                read_timeout: listener::MAX_TIMEOUT + Duration::from_nanos(1),
                ..ephemeral()
            },
            "read_timeout",
        ),
    ] {
        let error = listener::start(config, page()).unwrap_err();
        assert!(
            matches!(error, ListenerError::InvalidSetting { name: n, .. } if n == name),
            "{error:?}"
        );
        assert!(error.to_string().contains("at most 24 hours"), "{error}");
    }
    // The longest allowed starts, and answers.
    let longest = start(ListenerConfig {
        read_timeout: listener::MAX_TIMEOUT,
        connection_timeout: listener::MAX_TIMEOUT,
        ..ephemeral()
    });
    assert_eq!(get(longest.local_addr(), "/metrics").status, 200);
    for token in ["", "has space", "tab\there"] {
        let error = listener::start(
            ListenerConfig {
                bearer_token: Some(token.to_owned()),
                ..ephemeral()
            },
            page(),
        )
        .unwrap_err();
        assert!(
            matches!(error, ListenerError::InvalidBearerToken),
            "{error:?}"
        );
    }
}

#[test]
fn clients_outside_the_allow_list_get_forbidden_on_every_path() {
    let listener = start(ListenerConfig {
        allow: vec![parse_allowed_network("10.0.0.0/8").unwrap()],
        ..ephemeral()
    });
    for (method, path) in [
        ("GET", "/metrics"),
        ("HEAD", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/nope"),
        ("DELETE", "/metrics"),
    ] {
        let reply = send(listener.local_addr(), method, path, &[]);
        assert_eq!(reply.status, 403, "{method} {path}");
        assert!(reply.body.is_empty(), "{method} {path}: {:?}", reply.body);
        assert_eq!(reply.header("allow"), None);
        assert_eq!(reply.header("www-authenticate"), None);
    }
}

#[test]
fn clients_inside_the_allow_list_are_served() {
    let listener = start(ListenerConfig {
        allow: parse_allow_list("10.0.0.0/8, 127.0.0.0/8").unwrap(),
        ..ephemeral()
    });
    assert_eq!(get(listener.local_addr(), "/metrics").status, 200);
}

#[test]
fn bearer_token_is_required_when_configured() {
    let listener = start(ListenerConfig {
        bearer_token: Some("s3cr3t-t0ken".to_owned()),
        ..ephemeral()
    });
    let addr = listener.local_addr();

    let missing = get(addr, "/metrics");
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));

    for wrong in [
        "Bearer wrong",
        "Bearer s3cr3t-t0ke",
        "Bearer s3cr3t-t0ken2",
        "Basic s3cr3t-t0ken",
        "s3cr3t-t0ken",
        "Bearer",
    ] {
        let reply = send(addr, "GET", "/metrics", &[("Authorization", wrong)]);
        assert_eq!(reply.status, 401, "{wrong}");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{wrong}");
    }

    let right = send(
        addr,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer s3cr3t-t0ken")],
    );
    assert_eq!(right.status, 200);
    assert_eq!(right.body, PAGE.as_bytes());
    let scheme_any_case = send(
        addr,
        "GET",
        "/metrics",
        &[("Authorization", "bearer s3cr3t-t0ken")],
    );
    assert_eq!(scheme_any_case.status, 200);
}

#[test]
fn bearer_token_also_guards_healthz_and_unknown_paths() {
    let listener = start(ListenerConfig {
        bearer_token: Some("tok".to_owned()),
        ..ephemeral()
    });
    let addr = listener.local_addr();
    assert_eq!(get(addr, "/healthz").status, 401);
    assert_eq!(get(addr, "/does-not-exist").status, 401);
    let auth = [("Authorization", "Bearer tok")];
    assert_eq!(send(addr, "GET", "/healthz", &auth).status, 200);
    assert_eq!(send(addr, "GET", "/does-not-exist", &auth).status, 404);
}

#[test]
fn a_client_stalling_in_its_headers_is_disconnected_after_the_read_timeout() {
    let listener = start(ListenerConfig {
        read_timeout: Duration::from_millis(200),
        ..ephemeral()
    });
    let mut stream = connect(listener.local_addr());
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: example\r\nX-Slow: ")
        .unwrap();
    let received = read_until_closed(&mut stream);
    assert!(
        !String::from_utf8_lossy(&received).contains(" 200 "),
        "a stalled request was answered: {received:?}"
    );
    // The listener itself is still fine.
    assert_eq!(get(listener.local_addr(), "/metrics").status, 200);
}

#[test]
fn a_connection_is_closed_after_the_connection_timeout_even_while_active() {
    let listener = start(ListenerConfig {
        read_timeout: Duration::from_secs(30),
        connection_timeout: Duration::from_millis(300),
        ..ephemeral()
    });
    let mut stream = connect(listener.local_addr());
    // Keep-alive requests keep the connection busy; the overall limit still ends it.
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let closed = loop {
        assert!(Instant::now() < deadline, "the connection was never closed");
        let request = b"GET /healthz HTTP/1.1\r\nHost: example\r\n\r\n";
        if stream.write_all(request).is_err() {
            break true;
        }
        match read_one_response(&mut stream) {
            None => break true,
            Some(reply) => {
                assert_eq!(reply.status, 200);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert!(closed);
}

#[test]
fn oversized_headers_are_refused() {
    let listener = start(ListenerConfig {
        max_header_bytes: 1024,
        ..ephemeral()
    });
    let mut stream = connect(listener.local_addr());
    let big = "a".repeat(16 * 1024);
    let request = format!("GET /metrics HTTP/1.1\r\nHost: example\r\nX-Big: {big}\r\n\r\n");
    // The listener may close before it has read everything, so writing may fail.
    let _ = stream.write_all(request.as_bytes());
    let received = read_until_closed(&mut stream);
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "oversized headers were not refused: {text:?}"
    );
    // A normal request right after is served.
    assert_eq!(get(listener.local_addr(), "/metrics").status, 200);
}

#[test]
fn headers_under_the_limit_are_accepted() {
    let listener = start(ListenerConfig {
        max_header_bytes: 4096,
        ..ephemeral()
    });
    let value = "a".repeat(2048);
    let reply = send(
        listener.local_addr(),
        "GET",
        "/metrics",
        &[("X-Big", &value)],
    );
    assert_eq!(reply.status, 200);
}

/// Whether `stream` is still open: a request on it is answered `200`.
fn still_served(stream: &mut TcpStream) -> bool {
    let request = b"GET /healthz HTTP/1.1\r\nHost: example\r\n\r\n";
    stream.write_all(request).is_ok()
        && read_one_response(stream).is_some_and(|reply| reply.status == 200)
}

#[test]
fn when_full_the_oldest_connection_without_a_request_gives_way() {
    let listener = start(ListenerConfig {
        max_connections: 2,
        read_timeout: Duration::from_secs(30),
        ..ephemeral()
    });
    let addr = listener.local_addr();
    // The listener accepts in the order clients connected, so `oldest` is admitted first.
    let mut oldest = connect(addr);
    let mut younger = connect(addr);

    // A third client finds both places taken by clients that sent nothing, and is served.
    assert_eq!(get(addr, "/metrics").status, 200);
    assert!(
        read_until_closed(&mut oldest).is_empty(),
        "the oldest idle connection was answered"
    );
    assert!(
        still_served(&mut younger),
        "the younger connection was closed"
    );
}

#[test]
fn idle_keep_alive_connections_outlast_connections_without_a_request() {
    let listener = start(ListenerConfig {
        max_connections: 2,
        read_timeout: Duration::from_secs(30),
        ..ephemeral()
    });
    let addr = listener.local_addr();
    let mut keep_alive = connect(addr);
    assert!(still_served(&mut keep_alive));
    // Younger, but it has not sent a request: it gives way first.
    let mut silent = connect(addr);

    assert_eq!(get(addr, "/metrics").status, 200);
    assert!(read_until_closed(&mut silent).is_empty());
    assert!(
        still_served(&mut keep_alive),
        "the keep-alive connection was closed"
    );
}

#[test]
fn when_every_connection_is_answering_a_newcomer_gets_503_with_retry_after() {
    // Far more than the socket buffers of both ends hold, so the response stalls while the
    // client does not read it.
    let big_page: RenderFn = Arc::new(|| "x".repeat(16 * 1024 * 1024));
    let listener = listener::start(
        ListenerConfig {
            max_connections: 1,
            ..ephemeral()
        },
        big_page,
    )
    .unwrap();
    let addr = listener.local_addr();

    let mut slow_reader = connect_with(Ipv4Addr::LOCALHOST, Some(4096), addr);
    slow_reader
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: example\r\n\r\n")
        .unwrap();
    // The status line arriving shows its request is being answered.
    let mut status_line = [0_u8; 12];
    slow_reader.read_exact(&mut status_line).unwrap();
    assert_eq!(&status_line, b"HTTP/1.1 200");

    let turned_away = get(addr, "/healthz");
    assert_eq!(turned_away.status, 503);
    assert_eq!(turned_away.header("retry-after"), Some("1"));
    assert_eq!(turned_away.header("connection"), Some("close"));
    assert!(turned_away.header("date").is_some());
    assert!(
        String::from_utf8_lossy(&turned_away.body).contains("retry later"),
        "{:?}",
        turned_away.body
    );

    // Once the slow reader leaves, its place is free again.
    drop(slow_reader);
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        let reply = get(addr, "/healthz");
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503);
        assert!(Instant::now() < deadline, "the place was never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn refused_clients_are_answered_at_once_and_take_no_place() {
    let listener = start(ListenerConfig {
        allow: parse_allow_list("127.0.0.1").unwrap(),
        max_connections: 1,
        read_timeout: Duration::from_secs(30),
        ..ephemeral()
    });
    let addr = listener.local_addr();
    // Refused clients that send nothing and keep their sockets open.
    let mut refused: Vec<TcpStream> = (0..4)
        .map(|_| connect_with(OTHER_LOOPBACK, None, addr))
        .collect();

    // The one place is still there for an allowed client.
    assert_eq!(get(addr, "/metrics").status, 200);
    for stream in &mut refused {
        let reply = parse_reply(&read_until_closed(stream));
        assert_eq!(reply.status, 403);
        assert!(reply.body.is_empty(), "{:?}", reply.body);
        assert_eq!(reply.header("content-length"), Some("0"));
        assert_eq!(reply.header("connection"), Some("close"));
    }
}

#[test]
fn a_refused_client_that_sent_its_request_reads_the_whole_answer() {
    let listener = start(ListenerConfig {
        allow: parse_allow_list("127.0.0.1").unwrap(),
        ..ephemeral()
    });
    let addr = listener.local_addr();
    for _ in 0..20 {
        let mut stream = connect_with(OTHER_LOOPBACK, None, addr);
        let big = "a".repeat(4000);
        let request = format!("GET /metrics HTTP/1.1\r\nHost: example\r\nX-Big: {big}\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        assert_eq!(parse_reply(&read_until_closed(&mut stream)).status, 403);
    }
}

#[test]
fn starts_and_serves_from_a_plain_thread() {
    std::thread::spawn(|| {
        let listener = start(ephemeral());
        assert_eq!(get(listener.local_addr(), "/metrics").status, 200);
        listener.shutdown();
    })
    .join()
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn starts_and_stops_from_inside_a_current_thread_tokio_runtime() {
    let listener = start(ephemeral());
    let addr = listener.local_addr();
    // The blocking client runs elsewhere; the listener must not need this runtime to serve.
    let reply = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_and_stops_from_inside_a_multi_thread_tokio_runtime() {
    let listener = start(ephemeral());
    let addr = listener.local_addr();
    let reply = tokio::task::spawn_blocking(move || get(addr, "/healthz"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    listener.shutdown();
}

#[test]
fn a_panicking_render_gives_500_and_the_next_request_succeeds() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let render: RenderFn = Arc::new(move || {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("render failed on purpose");
        }
        PAGE.to_owned()
    });
    let listener = listener::start(ephemeral(), render).unwrap();
    assert_eq!(get(listener.local_addr(), "/metrics").status, 500);
    let reply = get(listener.local_addr(), "/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, PAGE.as_bytes());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn keep_alive_connections_serve_several_requests() {
    let listener = start(ephemeral());
    let mut stream = connect(listener.local_addr());
    let request = b"GET /healthz HTTP/1.1\r\nHost: example\r\n\r\n";
    for _ in 0..3 {
        stream.write_all(request).unwrap();
        let reply = read_one_response(&mut stream).expect("the connection stays open");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, b"ok");
    }
}

#[test]
fn shutdown_closes_connections_and_frees_the_port() {
    let listener = start(ephemeral());
    let addr = listener.local_addr();
    let mut idle = connect(addr);
    listener.shutdown();
    assert!(read_until_closed(&mut idle).is_empty());
    // The port can be bound again right away.
    std::net::TcpListener::bind(addr).expect("the port is free after shutdown");
}

#[test]
fn dropping_the_listener_stops_it() {
    let addr = {
        let listener = start(ephemeral());
        listener.local_addr()
    };
    let refused = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT);
    assert!(refused.is_err(), "still accepting after drop");
}

#[test]
fn default_config_listens_on_loopback() {
    let config = ListenerConfig::default();
    assert_eq!(config.addr, DEFAULT_LISTEN);
    assert!(DEFAULT_LISTEN.ip().is_loopback());
    assert!(config.allow.is_empty());
    assert!(config.bearer_token.is_none());
}
