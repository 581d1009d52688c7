//! Database queries end to end on real SQLite: rusqlite's hook, sqlx's profiled executor,
//! diesel's instrumentation, `db::query`/`query_async` and `#[profiled(db = ...)]`. Each test
//! runs known statements and reads `/metrics` from the built-in listener over loopback: exact
//! query and error counts per vendor, durations positive and ordered (a recursive CTE takes
//! longer than `SELECT 1`), events whose statements are masked, and failed queries whose events
//! carry the client's error (type and message).
//!
//! One exporter per process, so the tests take turns (`SERIAL`) and compare counts before and
//! after their own queries.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use profilis::db::DbDetail;
use profilis::{profiled, Batch, Event, EventFilter, Exporter, Sink, SinkError, Value};
use profilis_test_support::sample;

static SERIAL: Mutex<()> = Mutex::new(());

/// A query that takes a while: counts to 200,000 through a recursive CTE.
const SLOW: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) \
                    SELECT count(*) FROM c";
const TRIVIAL: &str = "SELECT 1";

struct Setup {
    metrics: SocketAddr,
    /// DB events, as a sink got them.
    events: Arc<Mutex<Vec<Event>>>,
}

/// Keeps the DB events of every batch (the collector hands it no others).
struct DbEvents {
    events: Arc<Mutex<Vec<Event>>>,
    db: EventFilter,
}

impl Sink for DbEvents {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        self.events
            .lock()
            .unwrap()
            .extend(batch.events.iter().cloned());
        Ok(())
    }

    fn event_filter(&self) -> Option<&EventFilter> {
        Some(&self.db)
    }
}

/// The DB part of an event: what its adapter attached, or no statement and no rows for the
/// event of a `#[profiled(db = ...)]` function. Panics for other kinds, and for an adapter's
/// event without it.
fn db_detail(e: &Event) -> DbDetail {
    assert_eq!(e.kind(), &profilis::DB, "not a DB event: {e:?}");
    match e.detail::<DbDetail>() {
        Some(detail) => detail.clone(),
        None => {
            assert!(e.site.is_function(), "a DB event without its detail: {e:?}");
            DbDetail {
                query: None,
                rows: None,
            }
        }
    }
}

/// The vendor of a DB event: its site's `db_vendor` label, as sinks read it.
fn vendor_of(e: &Event) -> &str {
    match e.field("db_vendor") {
        Some(Value::Str(vendor)) => vendor,
        other => panic!("a DB event without a vendor ({other:?}): {e:?}"),
    }
}

fn setup() -> (&'static Setup, MutexGuard<'static, ()>) {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let setup = SETUP.get_or_init(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        let guard = Exporter::new()
            .service("db-test")
            .listen("127.0.0.1:0")
            .unwrap()
            .flush_interval(Duration::from_millis(10))
            .sink(DbEvents {
                events: Arc::clone(&events),
                db: EventFilter::kinds([&profilis::DB]),
            })
            .install()
            .expect("exporter installs");
        let metrics = guard.listen_addr().expect("listener runs");
        std::mem::forget(guard);
        Setup { metrics, events }
    });
    setup.events.lock().unwrap().clear();
    (setup, serial)
}

/// Query and error counts and the histogram's count and sum of one vendor.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counts {
    queries: f64,
    errors: f64,
    timed: f64,
    seconds: f64,
}

impl Setup {
    fn metrics_text(&self) -> String {
        let response = profilis_test_support::get(self.metrics, "/metrics", &[]);
        assert_eq!(response.status, 200);
        response.text()
    }

    fn counts(&self, vendor: &str) -> Counts {
        let text = self.metrics_text();
        let get = |name: &str| sample(&text, name, &[("db_vendor", vendor)]).unwrap_or(0.0);
        Counts {
            queries: get("profilis_db_queries_total"),
            errors: get("profilis_db_query_errors_total"),
            timed: get("profilis_db_query_duration_seconds_count"),
            seconds: get("profilis_db_query_duration_seconds_sum"),
        }
    }

    /// The counts once `queries` more queries than `before` have been flushed, and then a
    /// little later, so that anything still on its way shows in exact comparisons.
    fn counts_after(&self, vendor: &str, before: Counts, queries: f64) -> Counts {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.counts(vendor);
            if now.queries >= before.queries + queries {
                std::thread::sleep(Duration::from_millis(60));
                return self.counts(vendor);
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {queries} {vendor} queries; before {before:?}, now {now:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The DB events captured so far (waiting until `n` have arrived).
    fn events(&self, n: usize) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.events.lock().unwrap().clone();
            if events.len() >= n {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} DB events, got {}",
                events.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The captured failure (`exception_type`, `exception_value`) of each event; `(None, None)` for
/// an event without one.
fn failures(events: &[&Event]) -> Vec<(Option<String>, Option<String>)> {
    events
        .iter()
        .map(|e| match e.failure.as_deref() {
            Some(f) => (
                f.exception_type.as_deref().map(str::to_owned),
                f.exception_value.clone(),
            ),
            None => (None, None),
        })
        .collect()
}

/// The events whose masked statement is `query`.
fn with_query<'a>(events: &'a [Event], query: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| db_detail(e).query.as_deref() == Some(query))
        .collect()
}

/// Checks that the slow query's event took longer than the trivial one's, and that no event
/// kept a literal.
fn check_events(events: &[Event], vendor: &str, slow_masked: &str) {
    for e in events {
        let detail = db_detail(e);
        assert_eq!(vendor_of(e), vendor, "{e:?}");
        assert!(e.dur_ns > 0, "{e:?}");
        if let Some(q) = &detail.query {
            assert!(!q.contains("secret"), "a literal leaked into an event: {q}");
        }
    }
    let slow = with_query(events, slow_masked);
    let trivial = with_query(events, "SELECT ?");
    assert!(!slow.is_empty(), "no slow query event in {events:#?}");
    assert!(!trivial.is_empty(), "no trivial query event in {events:#?}");
    let fastest_slow = slow.iter().map(|e| e.dur_ns).min().unwrap();
    let slowest_trivial = trivial.iter().map(|e| e.dur_ns).max().unwrap();
    assert!(
        fastest_slow > slowest_trivial,
        "the recursive CTE ({fastest_slow} ns) should take longer than SELECT 1 ({slowest_trivial} ns)"
    );
}

const SLOW_MASKED: &str = "WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + ? FROM c WHERE x < ?) SELECT count(*) FROM c";

#[test]
fn rusqlite_hook_counts_every_statement() {
    let (setup, _serial) = setup();
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let before = setup.counts("sqlite");
    profilis::db::rusqlite::instrument(&conn);

    // 3 statements in one batch.
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         INSERT INTO users (name) VALUES ('secret-ada');
         INSERT INTO users (name) VALUES ('secret-bob');",
    )
    .unwrap();
    // 1 prepared statement run 3 times: 3 queries.
    let mut insert = conn
        .prepare("INSERT INTO users (name) VALUES (?1)")
        .unwrap();
    for name in ["c", "d", "e"] {
        insert.execute([name]).unwrap();
    }
    drop(insert);
    // 1 query returning 5 rows.
    let mut select = conn.prepare("SELECT name FROM users ORDER BY id").unwrap();
    let names: Vec<String> = select
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(select);
    assert_eq!(names.len(), 5);
    // 2 slow and 2 trivial queries.
    for _ in 0..2 {
        let n: i64 = conn.query_row(SLOW, [], |row| row.get(0)).unwrap();
        assert_eq!(n, 200_000);
        let one: i64 = conn.query_row(TRIVIAL, [], |row| row.get(0)).unwrap();
        assert_eq!(one, 1);
    }
    let after = setup.counts_after("sqlite", before, 11.0);
    assert_eq!(
        after.queries - before.queries,
        11.0,
        "{before:?} → {after:?}"
    );
    assert_eq!(
        after.timed - before.timed,
        11.0,
        "every query is timed at rate 1"
    );
    assert_eq!(after.errors, before.errors);
    assert!(after.seconds > before.seconds);

    let events = setup.events(11);
    assert_eq!(events.len(), 11);
    check_events(&events, "sqlite", SLOW_MASKED);
    let listed = with_query(&events, "SELECT name FROM users ORDER BY id");
    assert_eq!(listed.len(), 1);
    assert_eq!(db_detail(listed[0]).rows, Some(5), "rows returned");
    let inserts = with_query(&events, "INSERT INTO users (name) VALUES (?)");
    assert_eq!(inserts.len(), 2, "the batch's literal inserts, masked");
    assert_eq!(
        with_query(&events, "INSERT INTO users (name) VALUES (?1)").len(),
        3
    );
}

#[test]
fn query_closures_futures_and_db_functions_count_errors() {
    let (setup, _serial) = setup();
    let before = setup.counts("sqlite");
    // A connection without the hook: `db::query` does the recording, failures included.
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)")
        .unwrap();
    let insert = "INSERT INTO t (k) VALUES ('secret-key')";
    profilis::db::query("sqlite", insert, || conn.execute(insert, [])).unwrap();
    let duplicate = profilis::db::query("sqlite", insert, || conn.execute(insert, []));
    let duplicate = duplicate.expect_err("a UNIQUE violation").to_string();
    // rusqlite quotes the statement of a syntax error, literal included: the event has it
    // masked, as its `query`.
    let typo = "SELEC k FROM t WHERE k = 'secret-typo'";
    let bad = profilis::db::query("sqlite", typo, || conn.execute(typo, []));
    let bad = bad.expect_err("a syntax error").to_string();
    assert!(bad.contains(typo), "{bad}");
    let bad = bad.replace(typo, "SELEC k FROM t WHERE k = ?");
    profilis::db::query("sqlite", SLOW, || {
        conn.query_row(SLOW, [], |row| row.get::<_, i64>(0))
    })
    .unwrap();
    profilis::db::query("sqlite", TRIVIAL, || {
        conn.query_row(TRIVIAL, [], |row| row.get::<_, i64>(0))
    })
    .unwrap();
    let after = setup.counts_after("sqlite", before, 5.0);
    assert_eq!(
        after.queries - before.queries,
        5.0,
        "{before:?} → {after:?}"
    );
    assert_eq!(after.errors - before.errors, 2.0, "{before:?} → {after:?}");
    let events = setup.events(5);
    check_events(&events, "sqlite", SLOW_MASKED);
    let failed: Vec<_> = events.iter().filter(|e| e.error).collect();
    assert_eq!(failed.len(), 2, "{events:#?}");
    // Each failure carries rusqlite's error: its type and the message the caller got.
    assert!(
        duplicate.contains("UNIQUE constraint failed"),
        "{duplicate}"
    );
    assert_eq!(
        failures(&failed),
        [
            (
                Some(std::any::type_name::<rusqlite::Error>().to_owned()),
                Some(duplicate)
            ),
            (
                Some(std::any::type_name::<rusqlite::Error>().to_owned()),
                Some(bad)
            ),
        ]
    );
    assert!(
        events
            .iter()
            .filter(|e| !e.error)
            .all(|e| e.failure.is_none()),
        "{events:#?}"
    );

    // Another vendor: a future and a `#[profiled(db = ...)]` function.
    #[profiled(db = "testdb")]
    fn load(id: u64) -> Result<u64, String> {
        if id == 0 {
            Err("no row".into())
        } else {
            Ok(id)
        }
    }
    let before = setup.counts("testdb");
    assert_eq!(load(1), Ok(1));
    assert_eq!(load(0), Err("no row".into()));
    let out = futures::executor::block_on(profilis::db::query_async(
        "testdb",
        "SELECT * FROM t WHERE k = 'secret'",
        async { Err::<u32, &str>("down") },
    ));
    assert_eq!(out, Err("down"));
    // A query future dropped before it completes is a cancelled, failed query.
    let mut pending = Box::pin(profilis::db::query_async(
        "testdb",
        "SELECT 1",
        std::future::pending::<Result<(), String>>(),
    ));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(pending.as_mut().poll(&mut cx).is_pending());
    drop(pending);
    // A query future whose poll panics, dropped only after the panic was caught (as a panic
    // handler does): a panicked query, not a cancelled one.
    let mut panicking = Box::pin(profilis::db::query_async("testdb", "SELECT 2", async {
        panic!("driver bug");
        #[allow(unreachable_code)]
        Ok::<(), String>(())
    }));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = panicking.as_mut().poll(&mut cx);
    }));
    assert!(caught.is_err());
    drop(panicking);
    let after = setup.counts_after("testdb", before, 5.0);
    assert_eq!(
        after.queries - before.queries,
        5.0,
        "{before:?} → {after:?}"
    );
    assert_eq!(after.errors - before.errors, 4.0, "{before:?} → {after:?}");
    let events = setup.events(10);
    let testdb: Vec<_> = events.iter().filter(|e| vendor_of(e) == "testdb").collect();
    assert_eq!(testdb.len(), 5);
    let from_fn: Vec<_> = testdb
        .iter()
        .filter(|e| e.name().ends_with("::load"))
        .collect();
    assert_eq!(from_fn.len(), 2, "DB events of the function keep its name");
    let down: Vec<_> = testdb
        .iter()
        .copied()
        .filter(|e| db_detail(e).query.as_deref() == Some("SELECT * FROM t WHERE k = ?"))
        .collect();
    assert_eq!(
        failures(&down),
        [(Some("&str".to_owned()), Some("down".to_owned()))],
        "the future's `Err`, its type and message"
    );
    assert!(testdb
        .iter()
        .any(|e| e.outcome == profilis::Outcome::Cancelled && e.error));
    let panicked: Vec<_> = testdb
        .iter()
        .filter(|e| e.outcome == profilis::Outcome::Panicked)
        .collect();
    assert_eq!(panicked.len(), 1, "{testdb:#?}");
    assert!(panicked[0].error);
    assert_eq!(db_detail(panicked[0]).query.as_deref(), Some("SELECT ?"));
}

#[test]
fn queries_are_sampled_when_they_start_and_sampled_out_ones_take_no_span() {
    use profilis::context::{self, SpanId, TraceId};

    let (setup, _serial) = setup();
    let caller = (TraceId(0x5eed), SpanId(0x77));
    let span_inside = |sql: &str| {
        context::with_trace(caller.0, Some(caller.1), || {
            profilis::db::query("sqlite", sql, || {
                let inside = context::current().expect("a span is current");
                Ok::<_, String>((inside.trace_id, inside.span_id))
            })
            .unwrap()
        })
    };
    let before = setup.counts("sqlite");
    let rate = profilis::global_rate();
    profilis::set_global_rate(0.0).unwrap();
    let sampled_out = span_inside("SELECT 'sampled out'");
    profilis::set_global_rate(1.0).unwrap();
    let sampled_in = span_inside("SELECT 'sampled in'");
    profilis::set_global_rate(rate).unwrap();

    // Sampled out: counted, not timed, and calls inside stay the caller's children.
    assert_eq!(sampled_out, caller);
    // Sampled in: a span of its own in the caller's trace.
    assert_eq!(sampled_in.0, caller.0);
    assert_ne!(sampled_in.1, caller.1);
    let after = setup.counts_after("sqlite", before, 2.0);
    assert_eq!(
        after.queries - before.queries,
        2.0,
        "{before:?} → {after:?}"
    );
    assert_eq!(after.timed - before.timed, 1.0, "{before:?} → {after:?}");
    let events = setup.events(1);
    assert_eq!(events.len(), 1, "only the sampled-in query: {events:#?}");
    assert_eq!(events[0].span_id, sampled_in.1);
    assert_eq!(events[0].parent_span_id, Some(caller.1));
}

/// A write with a common table expression that changes nothing (and has no literal, so it
/// reads the same masked).
const WITH_DELETE: &str =
    "WITH gone AS (SELECT id FROM items WHERE label IS NULL) DELETE FROM items WHERE id IN (SELECT id FROM gone)";

#[test]
fn sqlx_profiled_executor_counts_queries_rows_and_errors() {
    use profilis::db::sqlx::profiled;

    let (setup, _serial) = setup();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = setup.counts("sqlite");
    let (bad, gone) = runtime.block_on(async {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)")
            .execute(profiled(&pool))
            .await
            .unwrap();
        let inserted =
            sqlx::query("INSERT INTO items (label) VALUES ('secret-1'), ('secret-2'), ($1)")
                .bind("third")
                .execute(profiled(&pool))
                .await
                .unwrap();
        assert_eq!(inserted.rows_affected(), 3);
        let labels: Vec<(String,)> = sqlx::query_as("SELECT label FROM items ORDER BY id")
            .fetch_all(profiled(&pool))
            .await
            .unwrap();
        assert_eq!(labels.len(), 3);
        let missing: Option<(i64,)> = sqlx::query_as("SELECT id FROM items WHERE id = 99")
            .fetch_optional(profiled(&pool))
            .await
            .unwrap();
        assert!(missing.is_none());
        sqlx::query(WITH_DELETE)
            .execute(profiled(&pool))
            .await
            .unwrap();
        let bad = sqlx::query("SELEC nonsense").execute(profiled(&pool)).await;
        let bad = bad.expect_err("a syntax error").to_string();
        // `fetch_optional` fails too (its own path through the wrapper).
        let gone = sqlx::query("SELECT x FROM gone")
            .fetch_optional(profiled(&pool))
            .await;
        let gone = gone.expect_err("no such table").to_string();
        for _ in 0..2 {
            let (n,): (i64,) = sqlx::query_as(SLOW)
                .fetch_one(profiled(&pool))
                .await
                .unwrap();
            assert_eq!(n, 200_000);
            let (one,): (i64,) = sqlx::query_as(TRIVIAL)
                .fetch_one(profiled(&pool))
                .await
                .unwrap();
            assert_eq!(one, 1);
        }
        // Not through the wrapper: not seen.
        sqlx::query("SELECT 2").execute(&pool).await.unwrap();
        (bad, gone)
    });
    let after = setup.counts_after("sqlite", before, 11.0);
    assert_eq!(
        after.queries - before.queries,
        11.0,
        "{before:?} → {after:?}"
    );
    assert_eq!(after.errors - before.errors, 2.0, "{before:?} → {after:?}");
    let events = setup.events(11);
    check_events(&events, "sqlite", SLOW_MASKED);
    let insert = with_query(&events, "INSERT INTO items (label) VALUES (?), (?), ($1)");
    assert_eq!(insert.len(), 1, "{events:#?}");
    assert_eq!(db_detail(insert[0]).rows, Some(3), "rows affected");
    let listed = with_query(&events, "SELECT label FROM items ORDER BY id");
    assert_eq!(db_detail(listed[0]).rows, Some(3), "rows returned");
    let none = with_query(&events, "SELECT id FROM items WHERE id = ?");
    assert_eq!(db_detail(none[0]).rows, Some(0));
    // A `WITH` statement may read or write: returning nothing, its count is unknown (SQLite
    // would report the last write's for a read).
    let with = with_query(&events, WITH_DELETE);
    assert_eq!(db_detail(with[0]).rows, None, "{events:#?}");
    let failed = [
        with_query(&events, "SELEC nonsense")[0],
        with_query(&events, "SELECT x FROM gone")[0],
    ];
    assert!(failed.iter().all(|e| e.error));
    assert!(gone.contains("no such table: gone"), "{gone}");
    assert_eq!(
        failures(&failed),
        [
            (Some("sqlx::Error".to_owned()), Some(bad)),
            (Some("sqlx::Error".to_owned()), Some(gone)),
        ],
        "each failure carries sqlx's error, as the caller got it"
    );
    assert_eq!(
        events.iter().filter(|e| e.failure.is_some()).count(),
        2,
        "{events:#?}"
    );
}

#[test]
fn diesel_instrumentation_counts_queries_and_errors() {
    use diesel::connection::{Connection, SimpleConnection};
    use diesel::sqlite::SqliteConnection;
    use diesel::RunQueryDsl;
    use profilis::db::diesel::{set_default, DefaultError, ProfilisInstrumentation};

    let (setup, _serial) = setup();
    let before = setup.counts("sqlite");
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    conn.set_instrumentation(ProfilisInstrumentation::new("sqlite"));
    conn.batch_execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .unwrap();
    diesel::sql_query("INSERT INTO notes (body) VALUES ('secret note')")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query("INSERT INTO notes (body) VALUES (?)")
        .bind::<diesel::sql_types::Text, _>("secret bound")
        .execute(&mut conn)
        .unwrap();
    let failed = diesel::sql_query("INSERT INTO notes (body) VALUES (NULL)").execute(&mut conn);
    let failed = failed.expect_err("NOT NULL violation").to_string();
    assert!(failed.contains("NOT NULL constraint failed"), "{failed}");
    for _ in 0..2 {
        diesel::sql_query(SLOW).execute(&mut conn).unwrap();
        diesel::sql_query(TRIVIAL).execute(&mut conn).unwrap();
    }
    let after = setup.counts_after("sqlite", before, 8.0);
    assert_eq!(
        after.queries - before.queries,
        8.0,
        "{before:?} → {after:?}"
    );
    assert_eq!(after.errors - before.errors, 1.0, "{before:?} → {after:?}");
    let events = setup.events(8);
    check_events(&events, "sqlite", SLOW_MASKED);
    assert_eq!(
        with_query(&events, "INSERT INTO notes (body) VALUES (?)").len(),
        2,
        "the literal masked, the bound value dropped: {events:#?}"
    );
    let errors: Vec<_> = events.iter().filter(|e| e.error).collect();
    assert_eq!(
        failures(&errors),
        [(Some("diesel::result::Error".to_owned()), Some(failed))],
        "the failure carries diesel's error, as the caller got it"
    );
    assert_eq!(
        db_detail(errors[0]).query.as_deref(),
        Some("INSERT INTO notes (body) VALUES (NULL)")
    );

    // The default instrumentation: connections established afterwards are recorded.
    set_default("sqlite").unwrap();
    assert!(matches!(
        set_default("postgres"),
        Err(DefaultError::VendorSet {
            set: "sqlite",
            requested: "postgres"
        })
    ));
    let before = setup.counts("sqlite");
    let mut other = SqliteConnection::establish(":memory:").unwrap();
    other.batch_execute(TRIVIAL).unwrap();
    let after = setup.counts_after("sqlite", before, 1.0);
    assert_eq!(
        after.queries - before.queries,
        1.0,
        "{before:?} → {after:?}"
    );
}
