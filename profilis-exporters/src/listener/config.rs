//! Settings of the built-in listener, their defaults and checks, and why it could not start.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

pub use ipnet::IpNet;
use ipnet::Ipv4Net;

/// Port of [`DEFAULT_LISTEN`].
pub const DEFAULT_PORT: u16 = 9464;

/// Default listen address: `127.0.0.1:9464`, loopback only.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, DEFAULT_PORT));

/// Default [`ListenerConfig::read_timeout`]: 5 seconds.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Default [`ListenerConfig::connection_timeout`]: 30 seconds.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Default [`ListenerConfig::max_header_bytes`]: 8 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 * 1024;

/// Default [`ListenerConfig::max_connections`]: 16.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// Settings of the built-in listener. [`Default`] gives the values listed in the
/// [module docs](super#defaults).
#[derive(Clone)]
pub struct ListenerConfig {
    /// Address to listen on. Port `0` picks a free port; see [`Listener::local_addr`](super::Listener::local_addr).
    pub addr: SocketAddr,
    /// Networks whose clients may use the listener; empty lets in everyone who can reach
    /// [`addr`](Self::addr). Build entries with [`parse_allowed_network`] or [`parse_allow_list`]
    /// (which refuses a string naming no network). An IPv4 client matches an entry in either
    /// form, `a.b.c.d` or `::ffff:a.b.c.d`, whatever the socket.
    pub allow: Vec<IpNet>,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Time a client has to send the request line and headers of each request, counted from
    /// when the listener starts waiting for them (also bounds idle keep-alive connections).
    /// When every place is taken, a client still sending them may be closed sooner to make room
    /// (see [`max_connections`](Self::max_connections)). Also the stall limit: a response its
    /// client has not taken within this time (a client that asks for the page and reads none
    /// of it) no longer keeps its connection's place when a newcomer needs one.
    pub read_timeout: Duration,
    /// Longest time a connection may stay open, from accept to close, whatever it is doing,
    /// except waiting for the [`before_scrape`](Self::before_scrape) hook: that time does not
    /// count (the connection's end is pushed back by it), and each wait is bounded by this
    /// time on its own.
    pub connection_timeout: Duration,
    /// Largest request line plus headers accepted, in bytes; larger ones get `431`.
    pub max_header_bytes: usize,
    /// Most connections of allowed clients open at once. When all are taken, a newcomer takes
    /// the place of the oldest connection without a complete request, else of the longest idle
    /// keep-alive one, else of the one whose response has waited the longest, past
    /// [`read_timeout`](Self::read_timeout), for its client to take it; when every connection
    /// is answering a request within that time, the newcomer gets `503`
    /// with `Retry-After`. Refused clients never take a place. See the
    /// [module docs](super#security).
    pub max_connections: usize,
    /// The dashboard served at `/`, `/metrics.json`, `/errors.json` and `/slowest.json`, if
    /// any (see [`crate::dashboard`]); without one those paths answer `404`.
    pub dashboard: Option<crate::dashboard::Dashboard>,
    /// Run before each `/metrics` answer of this listener is rendered (`GET` and `HEAD`, once
    /// the allow-list and the bearer token have let the request in; never for `/healthz` or
    /// the dashboard), and awaited: a standalone exporter refreshes its metrics here. Only
    /// this listener's `/metrics` runs it: not [`render`](crate::render) nor
    /// [`render_as`](crate::render_as), the textfile, the Pushgateway, nor a `/metrics` route
    /// of your own (such as `profilis::http`'s handlers behind
    /// [`Exporter::without_listener`](crate::Exporter::without_listener)).
    ///
    /// The scrape waits for it for [`connection_timeout`](Self::connection_timeout) at most,
    /// a wait that does not count against the connection's own time; past it the hook's future
    /// is dropped and the scrape answered with what is there. A hook should bound its own time
    /// well within that and the scraper's timeout. A hook that panics still gets the scrape
    /// answered.
    pub before_scrape: Option<BeforeScrape>,
}

/// What [`ListenerConfig::before_scrape`] runs: a function returning the future the listener
/// awaits before rendering `/metrics`. The future runs on the listener's own thread and
/// runtime (a current-thread tokio runtime: it must not block the thread), as a task of its
/// own, so it runs to its end even if the scraper goes away, for
/// [`connection_timeout`](ListenerConfig::connection_timeout) at most (then it is dropped); a
/// function or future that panics still gets the scrape answered.
pub type BeforeScrape = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>
        + Send
        + Sync,
>;

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            addr: DEFAULT_LISTEN,
            allow: Vec::new(),
            bearer_token: None,
            read_timeout: DEFAULT_READ_TIMEOUT,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            dashboard: None,
            before_scrape: None,
        }
    }
}

impl fmt::Debug for ListenerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret: show only whether one is set.
        f.debug_struct("ListenerConfig")
            .field("addr", &self.addr)
            .field("allow", &self.allow)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("read_timeout", &self.read_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("max_connections", &self.max_connections)
            .field("dashboard", &self.dashboard.is_some())
            .field("before_scrape", &self.before_scrape.is_some())
            .finish()
    }
}

/// Why the listener could not be configured or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenerError {
    /// A listen address string could not be parsed.
    #[error(
        "listen address {value:?} is not allowed: expected `ip:port` such as `127.0.0.1:9464`, \
         `[::1]:9464`, `0.0.0.0:9464` or `localhost:9464`"
    )]
    InvalidAddr {
        /// The string given.
        value: String,
    },
    /// An allow-list entry could not be parsed.
    #[error(
        "allowed network {value:?} is not allowed: expected an IP address or a CIDR network \
         such as `10.0.0.0/8`, `127.0.0.1` or `::1`"
    )]
    InvalidNetwork {
        /// The string given.
        value: String,
    },
    /// An allow-list string holds no entry at all (`""`, `" , "`), which would otherwise be
    /// read as "no allow-list" and let everyone in.
    #[error(
        "allow-list {value:?} is not allowed: it names no network; expected one or more \
         comma-separated IP addresses or CIDR networks such as `10.0.0.0/8, 127.0.0.1`. To let \
         every client in, set no allow-list at all"
    )]
    EmptyAllowList {
        /// The string given.
        value: String,
    },
    /// A numeric or duration setting is out of range.
    #[error("listener setting {name} = {value} is not allowed: expected {expected}")]
    InvalidSetting {
        /// The [`ListenerConfig`] field at fault.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// The bearer token is empty or holds characters that cannot appear in a header.
    #[error(
        "the bearer token is not allowed: expected at least one visible ASCII character and no \
         spaces (the token itself is not shown)"
    )]
    InvalidBearerToken,
    /// Another socket already listens on the address.
    #[error(
        "listen address {addr} is already in use: stop the other process, or choose another \
         address (PROFILIS_LISTEN or Exporter::listen for the exporter's listener)"
    )]
    AddrInUse {
        /// The address that was asked for.
        addr: SocketAddr,
    },
    /// Binding the address failed for another reason (permissions, no such interface, ...).
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The error from the operating system.
        source: io::Error,
    },
    /// The listener thread or its runtime could not be started.
    #[error("could not start the listener thread for {addr}: {source}")]
    Start {
        /// The address the listener was bound to.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
}

/// Parses a listen address: `ip:port` (`127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:9464`), or
/// `localhost:port` meaning `127.0.0.1:port`. Surrounding whitespace is ignored.
///
/// # Errors
///
/// [`ListenerError::InvalidAddr`] naming the string when it is neither.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, ListenerError> {
    let trimmed = s.trim();
    if let Ok(addr) = trimmed.parse::<SocketAddr>() {
        return Ok(addr);
    }
    trimmed
        .strip_prefix("localhost:")
        .and_then(|port| port.parse::<u16>().ok())
        .map(|port| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))
        .ok_or_else(|| ListenerError::InvalidAddr {
            value: s.to_owned(),
        })
}

/// Parses one allow-list entry: a CIDR network (`10.0.0.0/8`, `fd00::/8`) or a single address
/// (`127.0.0.1`, `::1`), which allows just that address. Surrounding whitespace is ignored.
///
/// An IPv4-mapped IPv6 entry is stored as the IPv4 entry it stands for, so it means the same on
/// every socket: `::ffff:127.0.0.1` becomes `127.0.0.1/32` and `::ffff:10.0.0.0/104` becomes
/// `10.0.0.0/8`. Host bits are cleared: `192.168.1.7/24` becomes `192.168.1.0/24`.
///
/// # Errors
///
/// [`ListenerError::InvalidNetwork`] naming the string when it is neither.
pub fn parse_allowed_network(s: &str) -> Result<IpNet, ListenerError> {
    let trimmed = s.trim();
    let parsed = if trimmed.contains('/') {
        trimmed.parse::<IpNet>().ok().map(|net| net.trunc())
    } else {
        trimmed.parse::<IpAddr>().ok().map(IpNet::from)
    };
    parsed
        .map(ipv4_if_mapped)
        .ok_or_else(|| ListenerError::InvalidNetwork {
            value: s.to_owned(),
        })
}

/// `::ffff:a.b.c.d/n` with `n >= 96` as the IPv4 network `a.b.c.d/(n - 96)`; any other network
/// unchanged. Wider IPv6 networks (`::/0`) hold more than IPv4-mapped addresses and stay IPv6;
/// [`Server::allows`](super::server::Server::allows) matches IPv4 clients against them too.
fn ipv4_if_mapped(net: IpNet) -> IpNet {
    const MAPPED_PREFIX_LEN: u8 = 96;
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= MAPPED_PREFIX_LEN => v6
            .addr()
            .to_ipv4_mapped()
            .and_then(|v4| Ipv4Net::new(v4, v6.prefix_len() - MAPPED_PREFIX_LEN).ok())
            .map_or(net, IpNet::V4),
        other => other,
    }
}

/// Parses a comma-separated allow-list (`"10.0.0.0/8, 127.0.0.1, ::1"`) with
/// [`parse_allowed_network`]. Empty entries between commas are skipped, but the list must name
/// at least one network: a string with none is an error rather than "allow everyone".
///
/// # Errors
///
/// - [`ListenerError::InvalidNetwork`] naming the first entry that does not parse;
/// - [`ListenerError::EmptyAllowList`] naming the string when it holds no entry (`""`, `" , "`).
pub fn parse_allow_list(s: &str) -> Result<Vec<IpNet>, ListenerError> {
    let networks = s
        .split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(parse_allowed_network)
        .collect::<Result<Vec<_>, _>>()?;
    if networks.is_empty() {
        return Err(ListenerError::EmptyAllowList {
            value: s.to_owned(),
        });
    }
    Ok(networks)
}

/// The longest [`ListenerConfig::read_timeout`] and
/// [`ListenerConfig::connection_timeout`]: a day. A listener that lets a client hold a place
/// longer is not bounded in any useful sense (and `Duration::MAX` does not fit on a clock).
pub const MAX_TIMEOUT: Duration = crate::limits::MAX_TIMEOUT;

pub(super) fn validate(config: &ListenerConfig) -> Result<(), ListenerError> {
    let nonzero_duration = |name, value: Duration| {
        if !crate::limits::valid_timeout(value) {
            Err(ListenerError::InvalidSetting {
                name,
                value: format!("{value:?}"),
                expected: "a duration greater than zero and at most 24 hours (MAX_TIMEOUT)",
            })
        } else {
            Ok(())
        }
    };
    let nonzero_count = |name, value: usize| {
        if value == 0 {
            Err(ListenerError::InvalidSetting {
                name,
                value: value.to_string(),
                expected: "at least 1",
            })
        } else {
            Ok(())
        }
    };
    nonzero_duration("read_timeout", config.read_timeout)?;
    nonzero_duration("connection_timeout", config.connection_timeout)?;
    nonzero_count("max_header_bytes", config.max_header_bytes)?;
    nonzero_count("max_connections", config.max_connections)?;
    if let Some(token) = &config.bearer_token {
        check_bearer_token(token)?;
    }
    Ok(())
}

/// A bearer token must be at least one visible ASCII character, without spaces: what a header
/// can carry and a client can type.
pub(crate) fn check_bearer_token(token: &str) -> Result<(), ListenerError> {
    if !crate::auth::valid_bearer_token(token) {
        return Err(ListenerError::InvalidBearerToken);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_config_hides_the_token() {
        let config = ListenerConfig {
            bearer_token: Some("hunter2".to_owned()),
            ..ListenerConfig::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }
}
