//! Clients that ask for `/metrics` and never read the answer: with a page larger than the
//! socket buffers can hold, the response is never all sent, so the connection stays "answering
//! a request". Such connections must not keep a scraper out for the whole connection timeout
//! (here a day): once a response has waited the stall limit (`read_timeout`) for its client,
//! the connection gives way to a newcomer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use profilis_exporters::listener::{self, ListenerConfig, RenderFn, MAX_TIMEOUT};
use profilis_test_support::{try_get, wait_for};
use socket2::{Domain, Protocol, Socket, Type};

/// Longest the scraper keeps trying; far above what a healthy run needs.
const PATIENCE: Duration = Duration::from_secs(30);

/// The page's size: four times the largest send buffer the kernel grows a socket to (16 MiB
/// for Linux's default 4 MiB), so a client that reads nothing leaves most of it unsent and the
/// connection stays "answering"; a page that fit in the buffer would leave it idle, and the
/// test would pass without the rule it checks.
fn page_bytes() -> usize {
    let largest_send_buffer = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse::<usize>().ok())
        .unwrap_or(4 << 20);
    (4 * largest_send_buffer).max(16 << 20)
}

/// Connects with a small receive buffer, asks for `/metrics`, reads the status line (so the
/// response is under way) and then nothing more.
fn stalled_client(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: stalled\r\n\r\n")
        .unwrap();
    let mut status = [0_u8; 12];
    stream.read_exact(&mut status).unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");
    stream
}

#[test]
fn clients_that_never_read_their_page_give_way_to_a_scraper() {
    let page_bytes = page_bytes();
    let page = Arc::new("a 1\n".repeat(page_bytes / 4));
    let render: RenderFn = Arc::new(move || String::clone(&page));
    let config = ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        max_connections: 2,
        // The stall limit.
        read_timeout: Duration::from_secs(1),
        // Only the stall limit can free the places.
        connection_timeout: MAX_TIMEOUT,
        ..ListenerConfig::default()
    };
    let listener = listener::start(config, render).unwrap();
    let addr = listener.local_addr();
    // Both places taken by connections whose responses are under way and never read.
    let stalled = [stalled_client(addr), stalled_client(addr)];

    let answered = wait_for(PATIENCE, || {
        try_get(addr, "/metrics", &[])
            .ok()
            .filter(|response| response.status == 200)
    });
    let response =
        answered.expect("the scraper was turned away while two clients sat on their pages");
    assert_eq!(response.body.len(), page_bytes);
    drop(stalled);
}
