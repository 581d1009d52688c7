//! rusqlite: [`instrument`] a `Connection` once and every statement it runs is a query of
//! vendor `sqlite`, through SQLite's statement tracing hook (`Connection::trace_v2`).
//!
//! ```
//! let conn = rusqlite::Connection::open_in_memory()?;
//! profilis::db::rusqlite::instrument(&conn);
//! conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2);")?;
//! let n: i64 = conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0))?;
//! assert_eq!(n, 2);
//! # Ok::<(), rusqlite::Error>(())
//! ```
//!
//! What the hook sees, and what it does not:
//!
//! - A statement is timed from when SQLite starts running it to when it is done (stepped to
//!   the end, reset or finalized), on profilis's clock: SQLite's own profile times have only
//!   millisecond resolution. Each statement of an `execute_batch` counts once.
//! - `rows` in events is the number of rows the statement returned, when it returned any;
//!   SQLite does not tell the hook how many rows a write changed.
//! - **Failures are not visible to the hook**: SQLite calls it before it sets the error code,
//!   and a statement that fails to compile never runs. A statement that failed while running
//!   counts as a query without the error flag. Where failures matter, wrap the call in
//!   [`crate::db::query`]`("sqlite", sql, || ...)` on a connection that is not instrumented.
//! - A connection has one trace hook: calling `trace_v2` on it afterwards replaces this one.
//! - A prepared statement that SQLite prepares again as it starts, because another connection
//!   changed the schema since, is recorded as its first attempt: SQLite reports the attempt
//!   that found the schema changed as a statement that ended (before it prepares the statement
//!   again), then runs it again with no sign of a start. So that one run counts once, as it
//!   should, but with no rows and the first attempt's short time. The runs after it are
//!   recorded as usual.

use std::cell::RefCell;

use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::Connection;

use super::Query;

/// The vendor of every query recorded here.
pub const VENDOR: &str = "sqlite";

/// Statements started and not yet done at once, per thread, beyond which the oldest is
/// forgotten (SQLite ends every statement it starts, so this only bounds memory).
const MAX_RUNNING: usize = 256;

/// A statement SQLite is running on this thread.
struct Running {
    /// Identifies the statement: the address of its SQL text, which SQLite keeps for the
    /// statement's life.
    key: usize,
    query: Query,
    rows: u64,
}

thread_local! {
    static RUNNING: RefCell<Vec<Running>> = const { RefCell::new(Vec::new()) };
}

/// Records every statement `conn` runs from now on as a query of vendor `sqlite`. Replaces any
/// trace hook set on the connection before.
pub fn instrument(conn: &Connection) {
    let events = TraceEventCodes::SQLITE_TRACE_STMT
        | TraceEventCodes::SQLITE_TRACE_ROW
        | TraceEventCodes::SQLITE_TRACE_PROFILE;
    conn.trace_v2(events, Some(on_trace));
}

/// The key of a statement: the address of its SQL text.
fn key_of(sql: &str) -> usize {
    sql.as_ptr() as usize
}

fn on_trace(event: TraceEvent<'_>) {
    // The hook runs inside SQLite; a thread being torn down has no state to use.
    let _ = RUNNING.try_with(|running| match event {
        TraceEvent::Stmt(stmt, _) => {
            let key = key_of(&stmt.sql());
            let mut running = running.borrow_mut();
            // Triggers report their statement again; it started once.
            if running.iter().any(|r| r.key == key) {
                return;
            }
            if let Some(query) = Query::start(VENDOR) {
                if running.len() >= MAX_RUNNING {
                    running.remove(0).query.discard();
                }
                running.push(Running {
                    key,
                    query,
                    rows: 0,
                });
            }
        }
        // Nothing being timed (profiling off, say): no need to look at the statement.
        TraceEvent::Row(_) | TraceEvent::Profile(..) if running.borrow().is_empty() => {}
        TraceEvent::Row(stmt) => {
            let key = key_of(&stmt.sql());
            if let Some(r) = running.borrow_mut().iter_mut().find(|r| r.key == key) {
                r.rows += 1;
            }
        }
        TraceEvent::Profile(stmt, _) => {
            let sql = stmt.sql();
            let key = key_of(&sql);
            let done = {
                let mut running = running.borrow_mut();
                let at = running.iter().position(|r| r.key == key);
                at.map(|at| running.remove(at))
            };
            if let Some(done) = done {
                let rows = (done.rows > 0).then_some(done.rows);
                done.query.finish(Some(&sql), false, rows);
            }
        }
        _ => {}
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbDetail;
    use profilis_core::testing::capture;

    /// SQLite runs `WHERE email = "ann@example.com"` (a double-quoted text naming no column
    /// is a string there); its event kept the address as if it were an identifier.
    #[test]
    fn double_quoted_strings_sqlite_runs_are_masked() {
        let ((), captured) = capture(|| {
            let conn = Connection::open_in_memory().unwrap();
            instrument(&conn);
            conn.execute_batch("CREATE TABLE \"user\" (email TEXT)")
                .unwrap();
            conn.execute("INSERT INTO \"user\" VALUES (\"ann@example.com\")", [])
                .unwrap();
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM \"user\" WHERE \"email\" = \"ann@example.com\"",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "SQLite took it for a string");
        });
        let statements: Vec<_> = captured
            .named(VENDOR)
            .iter()
            .map(|e| {
                e.detail::<DbDetail>()
                    .unwrap()
                    .query
                    .as_deref()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            statements,
            [
                "CREATE TABLE \"user\" (email TEXT)",
                "INSERT INTO \"user\" VALUES (?)",
                "SELECT count(*) FROM \"user\" WHERE \"email\" = ?",
            ]
        );
    }

    #[test]
    fn every_statement_is_a_query_with_the_rows_it_returned() {
        let ((), captured) = capture(|| {
            let conn = Connection::open_in_memory().unwrap();
            instrument(&conn);
            conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2);")
                .unwrap();
            let n: i64 = conn
                .query_row("SELECT count(*) FROM t WHERE x > 0", [], |row| row.get(0))
                .unwrap();
            assert_eq!(n, 2);
        });
        let seen: Vec<_> = captured
            .named(VENDOR)
            .iter()
            .map(|e| {
                let detail = e.detail::<DbDetail>().unwrap();
                (detail.query.as_deref().unwrap().to_owned(), detail.rows)
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("CREATE TABLE t (x INTEGER)".to_owned(), None),
                ("INSERT INTO t VALUES (?), (?)".to_owned(), None),
                ("SELECT count(*) FROM t WHERE x > ?".to_owned(), Some(1)),
            ]
        );
    }

    /// A file of its own for a database two connections share, removed when dropped.
    struct DbFile(std::path::PathBuf);

    impl Drop for DbFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// What the module docs say of a statement prepared again after a schema change.
    #[test]
    fn a_statement_prepared_again_after_a_schema_change_counts_once_as_its_first_attempt() {
        let file = DbFile(
            std::env::temp_dir().join(format!("profilis-reprepare-{}.sqlite", std::process::id())),
        );
        let ((), captured) = capture(|| {
            let a = Connection::open(&file.0).unwrap();
            let b = Connection::open(&file.0).unwrap();
            a.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3);")
                .unwrap();
            instrument(&a);
            let mut stmt = a.prepare("SELECT x FROM t WHERE x > 0").unwrap();
            for round in 0..3 {
                if round == 1 {
                    // Another connection changes the schema: SQLite prepares `stmt` again
                    // when it next starts.
                    b.execute_batch("CREATE INDEX i ON t (x)").unwrap();
                }
                let n = stmt.query_map([], |r| r.get::<_, i64>(0)).unwrap().count();
                assert_eq!(n, 3);
            }
            assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 1);
        });
        let rows: Vec<_> = captured
            .named(VENDOR)
            .iter()
            .map(|e| e.detail::<DbDetail>().unwrap().rows)
            .collect();
        assert_eq!(rows, [Some(3), None, Some(3)]);
    }
}
