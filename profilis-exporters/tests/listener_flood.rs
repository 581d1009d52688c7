//! The listener under a flood: 64 hostile connections, each reconnecting as soon as it is cut,
//! must not keep an honest scraper from its answers. The scraper scrapes once a second for 30 s
//! from `127.0.0.1`, which the allow-list admits, both with a new connection each time and over
//! one keep-alive connection; at least 95 % of its scrapes must be answered `200` within 1 s.
//! The hostile clients come from `127.0.0.2` (refused) or from `127.0.0.1` (allowed), and either
//! send their request headers one byte a second or send nothing at all.
//!
//! Each scenario runs ~32 s; the test harness runs them two at a time.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use profilis_exporters::listener::{self, parse_allow_list, ListenerConfig, RenderFn};
use profilis_test_support::connect_from;

const HOSTILE_CLIENTS: usize = 64;
const SCRAPES: u32 = 30;
const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);
/// Each scrape must be answered within this, as Prometheus's scrape timeout would demand.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);
/// Share of scrapes that must succeed, in percent.
const REQUIRED_PERCENT: u32 = 95;
/// Time the flood gets to fill the listener before the scraper starts.
const FLOOD_HEAD_START: Duration = Duration::from_secs(1);

const ALLOWED: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Linux routes all of `127.0.0.0/8` to `lo`; the allow-list below refuses this one.
const REFUSED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

const PAGE: &str = "# TYPE profilis_queue_depth gauge\nprofilis_queue_depth 3\n";

#[derive(Clone, Copy, Debug)]
enum Hostility {
    /// Sends the request line and headers one byte a second, never finishing them.
    SlowHeaders,
    /// Connects and sends nothing.
    Silent,
}

/// One hostile client: connects, misbehaves until the listener cuts it off, reconnects at once.
/// Returns how many connections it made.
fn hostile_client(
    addr: SocketAddr,
    source: Ipv4Addr,
    hostility: Hostility,
    stop: &AtomicBool,
) -> usize {
    const SLOW_REQUEST: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: flood\r\nX-Slow: ";
    let mut connections = 0;
    let mut buffer = [0_u8; 1024];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = connect_from(source, addr, Duration::from_secs(1)) else {
            continue;
        };
        connections += 1;
        if stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .is_err()
        {
            continue;
        }
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Hostility::SlowHeaders = hostility {
                let byte = SLOW_REQUEST.get(sent).copied().unwrap_or(b'a');
                if stream.write_all(&[byte]).is_err() {
                    break;
                }
                sent += 1;
            }
            // Waits up to a second: the pace of the slow headers, and how the cut is noticed.
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(_) => {} // an answer (403); the close follows
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => break,
            }
        }
    }
    connections
}

/// The hostile clients, running until dropped.
struct Flood {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<usize>>,
}

impl Flood {
    fn start(addr: SocketAddr, source: Ipv4Addr, hostility: Hostility) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..HOSTILE_CLIENTS)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || hostile_client(addr, source, hostility, &stop))
            })
            .collect();
        Self { stop, clients }
    }

    /// Stops the clients and returns how many connections they made in all.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.clients
            .drain(..)
            .map(|client| client.join().expect("a hostile client panicked"))
            .sum()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        // Reached without `stop` only when the test fails; the threads end within a second.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one response within `deadline`: its status when the head and the whole
/// `Content-Length` body arrived and the body is the page; `None` otherwise.
fn read_response(stream: &mut TcpStream, deadline: Instant) -> Option<u16> {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        if let Some(split) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..split]).into_owned();
            let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            let body = &received[split + 4..];
            if body.len() >= length {
                let complete = status != 200 || &body[..length] == PAGE.as_bytes();
                return complete.then_some(status);
            }
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

/// How the honest scraper reaches the listener.
#[derive(Clone, Copy, Debug)]
enum Scraper {
    /// A new connection for every scrape, closed after the response.
    NewConnection,
    /// One connection kept open between scrapes, replaced when the listener closes it.
    KeepAlive,
}

/// Scrapes `SCRAPES` times, one a second; returns how many got `200` within `SCRAPE_TIMEOUT`.
fn scrape(addr: SocketAddr, scraper: Scraper) -> u32 {
    let mut kept: Option<TcpStream> = None;
    let started = Instant::now();
    let mut answered = 0;
    for scrape in 0..SCRAPES {
        if let Some(wait) =
            (started + SCRAPE_INTERVAL * scrape).checked_duration_since(Instant::now())
        {
            std::thread::sleep(wait);
        }
        let deadline = Instant::now() + SCRAPE_TIMEOUT;
        let status = match scraper {
            Scraper::NewConnection => scrape_once(addr, deadline, "Connection: close\r\n", None),
            Scraper::KeepAlive => {
                // A kept connection the listener has closed fails at once; like Prometheus's
                // client, try again on a new connection within the same deadline.
                let reused = kept.take().and_then(|mut stream| {
                    scrape_on(&mut stream, deadline, "").map(|status| (status, stream))
                });
                match reused {
                    Some((status, stream)) => {
                        kept = Some(stream);
                        Some(status)
                    }
                    None => scrape_once(addr, deadline, "", Some(&mut kept)),
                }
            }
        };
        if status == Some(200) {
            answered += 1;
        }
    }
    answered
}

/// Connects and scrapes once; keeps the connection in `keep` when given.
fn scrape_once(
    addr: SocketAddr,
    deadline: Instant,
    headers: &str,
    keep: Option<&mut Option<TcpStream>>,
) -> Option<u16> {
    let left = deadline.checked_duration_since(Instant::now())?;
    let mut stream = connect_from(ALLOWED, addr, left).ok()?;
    let status = scrape_on(&mut stream, deadline, headers);
    if let Some(keep) = keep {
        *keep = status.map(|_| stream);
    }
    status
}

fn scrape_on(stream: &mut TcpStream, deadline: Instant, headers: &str) -> Option<u16> {
    let request = format!("GET /metrics HTTP/1.1\r\nHost: scraper\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    read_response(stream, deadline)
}

/// Starts a listener that admits only `127.0.0.1`, floods it, and scrapes it both ways at once.
fn scrapes_survive(flood_from: Ipv4Addr, hostility: Hostility) {
    let render: RenderFn = Arc::new(|| PAGE.to_owned());
    let listener = listener::start(
        ListenerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            allow: parse_allow_list("127.0.0.1").unwrap(),
            ..ListenerConfig::default()
        },
        render,
    )
    .expect("listener starts");
    let addr = listener.local_addr();

    let flood = Flood::start(addr, flood_from, hostility);
    std::thread::sleep(FLOOD_HEAD_START);
    let scrapers: Vec<_> = [Scraper::NewConnection, Scraper::KeepAlive]
        .into_iter()
        .map(|scraper| (scraper, std::thread::spawn(move || scrape(addr, scraper))))
        .collect();
    let results: Vec<_> = scrapers
        .into_iter()
        .map(|(scraper, thread)| (scraper, thread.join().expect("the scraper panicked")))
        .collect();
    let hostile_connections = flood.stop();

    eprintln!(
        "flood from {flood_from} ({hostility:?}): {hostile_connections} hostile connections; \
         answered within {SCRAPE_TIMEOUT:?}: {results:?} of {SCRAPES} each"
    );
    // Every hostile client connected: the flood was real.
    assert!(
        hostile_connections >= HOSTILE_CLIENTS,
        "only {hostile_connections} hostile connections were made"
    );
    for (scraper, answered) in results {
        assert!(
            answered * 100 >= SCRAPES * REQUIRED_PERCENT,
            "{scraper:?}: only {answered} of {SCRAPES} scrapes answered 200 within \
             {SCRAPE_TIMEOUT:?} under a flood from {flood_from} ({hostility:?})"
        );
    }
}

#[test]
fn scrapes_are_answered_while_refused_clients_send_slow_headers() {
    scrapes_survive(REFUSED, Hostility::SlowHeaders);
}

#[test]
fn scrapes_are_answered_while_refused_clients_sit_silent() {
    scrapes_survive(REFUSED, Hostility::Silent);
}

#[test]
fn scrapes_are_answered_while_allowed_clients_send_slow_headers() {
    scrapes_survive(ALLOWED, Hostility::SlowHeaders);
}

#[test]
fn scrapes_are_answered_while_allowed_clients_sit_silent() {
    scrapes_survive(ALLOWED, Hostility::Silent);
}

/// Keeps the count honest: the scraper counts `200`s of a quiet listener, and not the `403`s of
/// one that refuses it.
#[test]
fn the_scraper_counts_only_answers_of_200() {
    let render: RenderFn = Arc::new(|| PAGE.to_owned());
    let quiet = listener::start(
        ListenerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..ListenerConfig::default()
        },
        render.clone(),
    )
    .expect("listener starts");
    let addr = quiet.local_addr();
    let deadline = Instant::now() + SCRAPE_TIMEOUT * 10;
    assert_eq!(
        scrape_once(addr, deadline, "Connection: close\r\n", None),
        Some(200)
    );
    let mut kept = None;
    assert_eq!(scrape_once(addr, deadline, "", Some(&mut kept)), Some(200));
    let mut stream = kept.expect("the keep-alive connection is kept");
    assert_eq!(scrape_on(&mut stream, deadline, ""), Some(200));

    let refusing = listener::start(
        ListenerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            allow: parse_allow_list("10.0.0.0/8").unwrap(),
            ..ListenerConfig::default()
        },
        render,
    )
    .expect("listener starts");
    let deadline = Instant::now() + SCRAPE_TIMEOUT * 10;
    assert_eq!(
        scrape_once(refusing.local_addr(), deadline, "", None),
        Some(403)
    );
}
