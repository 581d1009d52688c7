//! A small shop whose functions, HTTP routes and SQLite queries are profiled, with the live
//! dashboard of the built-in listener: open the printed URL in a browser.
//!
//! ```sh
//! cargo run --example dashboard_demo --features axum,rusqlite
//! # profilis dashboard: http://127.0.0.1:9464/
//! ```
//!
//! What it does, a round every 20 ms: prices an order (`price_order`, which has no price for
//! sku 42: an `Err` whose message the dashboard's error list shows), checksums it (a hot, cheap
//! function), reads a coupon (`parse_coupon` panics on a malformed one, now and then), loads a
//! user (async), asks its own axum app for `/users/{id}` (404 for user 0), `/checkout` (500
//! every fifth time) and now and then `/slow`, and runs SQLite statements, through rusqlite's
//! hook and through `profilis::db::query` (one of them fails every tenth round). The app also
//! mounts the dashboard at `/profilis/` (`profilis::http::axum::dashboard_router`).
//!
//! Options: `--listen HOST:PORT` for the built-in listener (default `PROFILIS_LISTEN` or
//! `127.0.0.1:9464`; port 0 picks a free one), `--token TOKEN` to require
//! `Authorization: Bearer TOKEN` (the page asks for it, or takes `?token=TOKEN`),
//! `--rounds N` to stop the workload after N rounds and keep serving (what the browser test
//! does). Ctrl-C stops it.

use std::fmt;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use profilis::http::tower::ProfilisLayer;
use profilis::http::HttpConfig;
use profilis::{profiled, Exporter};

/// Why an order has no price.
#[derive(Debug)]
struct PriceError {
    sku: u64,
}

impl fmt::Display for PriceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no price for sku {}", self.sku)
    }
}

impl std::error::Error for PriceError {}

/// Prices `quantity` items of `sku`; sku 42 has no price.
#[profiled]
fn price_order(sku: u64, quantity: u64) -> Result<u64, PriceError> {
    std::thread::sleep(Duration::from_micros(200 + sku * 10));
    if sku == 42 {
        return Err(PriceError { sku });
    }
    Ok(quantity * (100 + sku * 7))
}

/// A hot, cheap function.
#[profiled]
fn checksum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |acc, b| acc.rotate_left(5) ^ u32::from(*b))
}

/// Reads a coupon code; a malformed one panics (a bug the dashboard shows as a panic).
#[profiled]
fn parse_coupon(code: &str) -> u32 {
    let (_, percent) = code.split_once('-').expect("a coupon is NAME-PERCENT");
    percent.parse().unwrap_or(0)
}

/// Loads a user, across an `.await`.
#[profiled]
async fn load_user(id: u64) -> Result<String, String> {
    tokio::time::sleep(Duration::from_millis(1 + id % 3)).await;
    if id == 0 {
        return Err("no user 0".to_owned());
    }
    Ok(format!("user {id}\n"))
}

async fn user(Path(id): Path<u64>) -> Result<String, StatusCode> {
    load_user(id).await.map_err(|_| StatusCode::NOT_FOUND)
}

async fn checkout(Path(n): Path<u64>) -> (StatusCode, &'static str) {
    if n.is_multiple_of(5) {
        (StatusCode::INTERNAL_SERVER_ERROR, "payment declined\n")
    } else {
        (StatusCode::OK, "paid\n")
    }
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(40)).await;
    "slow\n"
}

struct Options {
    listen: Option<String>,
    token: Option<String>,
    rounds: Option<u64>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        listen: None,
        token: None,
        rounds: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{arg} needs {what}"));
        match arg.as_str() {
            "--listen" => options.listen = Some(value("HOST:PORT")?),
            "--token" => options.token = Some(value("a token")?),
            "--rounds" => {
                let n = value("a number")?;
                options.rounds = Some(
                    n.parse()
                        .map_err(|_| format!("--rounds takes a number, got {n:?}"))?,
                );
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}: expected --listen HOST:PORT, --token TOKEN \
                     or --rounds N"
                ))
            }
        }
    }
    Ok(options)
}

/// One round of the shop's work.
async fn round(
    n: u64,
    app: std::net::SocketAddr,
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<bytes::Bytes>>,
    db: &rusqlite::Connection,
    plain_db: &rusqlite::Connection,
) -> Result<(), Box<dyn std::error::Error>> {
    let sku = n % 50;
    let _ = price_order(sku, 1 + n % 4);
    for i in 0..20u64 {
        std::hint::black_box(checksum(&(n * 20 + i).to_le_bytes()));
    }
    let code = if n % 25 == 24 { "BROKEN" } else { "SPRING-10" };
    let _ = std::panic::catch_unwind(|| parse_coupon(code));
    let _ = load_user(n % 7).await;

    let mut paths = vec![format!("/users/{}", n % 10), format!("/checkout/{n}")];
    if n % 10 == 3 {
        paths.push("/slow".to_owned());
    }
    for path in paths {
        let uri: axum::http::Uri = format!("http://{app}{path}").parse()?;
        let response = client.get(uri).await?;
        response.into_body().collect().await?;
    }

    db.execute(
        "INSERT INTO orders (sku, total) VALUES (?1, ?2)",
        (sku as i64, (n * 250) as i64),
    )?;
    let _count: i64 = db.query_row(
        "SELECT count(*) FROM orders WHERE total > ?1",
        [1000],
        |row| row.get(0),
    )?;
    // Failures are invisible to rusqlite's hook, so a statement that may fail goes through
    // `profilis::db::query` on a connection without the hook.
    let sql = if n % 10 == 9 {
        "SELECT price FROM prices_2019 WHERE sku = 42"
    } else {
        "SELECT count(*) FROM orders"
    };
    let _ = profilis::db::query("sqlite", sql, || {
        plain_db.query_row(sql, [], |row| row.get::<_, i64>(0))
    });
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = options()?;
    let mut exporter = Exporter::new().service("shop");
    if let Some(listen) = &options.listen {
        exporter = exporter.listen(listen)?;
    }
    if let Some(token) = &options.token {
        exporter = exporter.bearer_token(token.clone());
    }
    let profilis = exporter.install()?;
    let addr = profilis
        .listen_addr()
        .ok_or("the built-in listener is off")?;

    let rules = HttpConfig::new().build();
    let app = Router::new()
        .route("/users/{id}", get(user))
        .route("/checkout/{n}", get(checkout))
        .route("/slow", get(slow))
        .layer(ProfilisLayer::new(rules))
        // The same dashboard, mounted in the app's own router (after the layer: not profiled).
        .nest("/profilis/", profilis::http::axum::dashboard_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    println!("profilis dashboard: http://{addr}/");
    println!("metrics:            http://{addr}/metrics");
    println!("the shop's app:     http://{app_addr}/users/1");
    println!("mounted dashboard:  http://{app_addr}/profilis/");
    println!("Ctrl-C to stop");

    let client = Client::builder(TokioExecutor::new()).build_http();
    let db = rusqlite::Connection::open_in_memory()?;
    profilis::db::rusqlite::instrument(&db);
    db.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY, sku INTEGER, total INTEGER)")?;
    let plain_db = rusqlite::Connection::open_in_memory()?;
    plain_db.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY)")?;

    let work = async {
        let mut n = 0;
        while options.rounds.is_none_or(|rounds| n < rounds) {
            round(n, app_addr, &client, &db, &plain_db).await?;
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("workload done: {n} rounds");
        std::future::pending::<()>().await;
        Ok::<(), Box<dyn std::error::Error>>(())
    };
    tokio::select! {
        done = work => done?,
        _ = tokio::signal::ctrl_c() => {}
    }
    let report = profilis.shutdown();
    println!("stopped: {report}");
    Ok(())
}
