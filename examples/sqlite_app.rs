//! Database queries on `/metrics`: a rusqlite connection instrumented through SQLite's trace
//! hook and a sqlx pool queried through a profiled executor, both on in-memory SQLite, with a
//! failing query now and then. Served by the built-in listener.
//!
//! ```sh
//! cargo run --example sqlite_app --features rusqlite,sqlx-sqlite
//! curl -s localhost:9464/metrics | grep profilis_db_
//! ```
//!
//! Ctrl-C stops it. `--rounds N` stops after N rounds of queries instead, printing the DB
//! series (handy in scripts). `PROFILIS_LISTEN=127.0.0.1:9999` moves the listener.

use std::time::Duration;

use profilis::db::sqlx::profiled;

/// One round of rusqlite statements: every one is recorded by the connection's hook.
fn rusqlite_round(conn: &rusqlite::Connection, round: u64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO events (kind, payload) VALUES (?1, ?2)",
        ((round % 3) as i64, format!("payload {round}")),
    )?;
    let _recent: Vec<String> = conn
        .prepare("SELECT payload FROM events ORDER BY id DESC LIMIT 5")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let _total: i64 = conn.query_row(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) \
         SELECT count(*) FROM c",
        [],
        |row| row.get(0),
    )?;
    Ok(())
}

/// One round through sqlx; every seventh round runs a query that fails (counted in
/// `profilis_db_query_errors_total`).
async fn sqlx_round(pool: &sqlx::SqlitePool, round: u64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO orders (total) VALUES (?)")
        .bind(round as i64 * 250)
        .execute(profiled(pool))
        .await?;
    let (_count,): (i64,) = sqlx::query_as("SELECT count(*) FROM orders WHERE total > 1000")
        .fetch_one(profiled(pool))
        .await?;
    if round.is_multiple_of(7) {
        let failed = sqlx::query("SELECT * FROM no_such_table")
            .fetch_all(profiled(pool))
            .await;
        debug_assert!(failed.is_err());
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: Option<u64> = match std::env::args().skip_while(|a| a != "--rounds").nth(1) {
        Some(n) => Some(
            n.parse()
                .map_err(|_| format!("--rounds takes a number, got {n:?}"))?,
        ),
        None => None,
    };
    let profilis = profilis::install_exporter()?;
    let addr = profilis.listen_addr().expect("the built-in listener runs");
    println!("serving metrics on http://{addr}/metrics (Ctrl-C to stop)");

    let conn = rusqlite::Connection::open_in_memory()?;
    profilis::db::rusqlite::instrument(&conn);
    conn.execute_batch("CREATE TABLE events (id INTEGER PRIMARY KEY, kind INTEGER, payload TEXT)")?;

    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await?;
    sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)")
        .execute(profiled(&pool))
        .await?;

    let mut round = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        round += 1;
        rusqlite_round(&conn, round)?;
        sqlx_round(&pool, round).await?;
        if rounds.is_some_and(|n| round >= n) {
            break;
        }
    }

    let report = profilis.shutdown();
    println!("stopped after {round} rounds: {report}");
    let text = profilis::render().unwrap_or_default();
    for line in text
        .lines()
        .filter(|l| l.starts_with("profilis_db_queries_total"))
    {
        println!("{line}");
    }
    Ok(())
}
