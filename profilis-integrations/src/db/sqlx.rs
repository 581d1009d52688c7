//! sqlx 0.9: [`Profiled`] wraps an executor (a `&Pool`, a `&mut` connection or transaction)
//! so that every query run through it is recorded, with the vendor of its database
//! (`sqlite`, `postgres`, `mysql`, from the driver's name).
//!
//! ```
//! # #[cfg(feature = "sqlx-sqlite")]
//! # async fn demo() -> Result<(), sqlx::Error> {
//! use profilis::db::sqlx::profiled;
//!
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
//! sqlx::query("CREATE TABLE t (x INTEGER)").execute(profiled(&pool)).await?;
//! let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(profiled(&pool)).await?;
//! # let _ = n;
//! # Ok(())
//! # }
//! ```
//!
//! Why a wrapper: sqlx has no query callback. Its `sqlx::query` log events carry the statement
//! and elapsed time but not the database, nor whether the query failed, and they exist only at
//! the log levels an application enables. Wrapping the executor sees every query started
//! through it, its outcome and its rows, on every database.
//!
//! A query that fails is recorded with sqlx's error: its event's `exception_type` is
//! [`ERROR_TYPE`] (`sqlx::Error`) and `exception_value` the error's message
//! (`error returned from database: no such table: nope`, say).
//!
//! Limits: only queries run through a [`Profiled`] executor are seen (not the ones sqlx runs
//! itself, such as `BEGIN`/`COMMIT` of a `Transaction` or migrations); a query is timed from
//! the call to its last row, pool acquisition included. A query dropped before it gave
//! anything (an `execute` or `fetch_all` cut short by a timeout or a `select!`, waiting for a
//! connection of a pool, say) is a failed query with outcome `cancelled`, as a query future
//! dropped early is everywhere; a stream dropped after some rows or results (a caller that read
//! the rows it wanted) is recorded then, as it stands. `rows` in events is the rows returned; for a statement that
//! returned none: 0 for a read (`SELECT`, ...), the rows affected for a write, which needs the
//! `sqlx-sqlite`, `sqlx-postgres` or `sqlx-mysql` feature for its driver (else `null`), and
//! `null` for a `WITH` statement, which may be either.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures_core::future::BoxFuture;
use futures_core::stream::{BoxStream, Stream};
use profilis_core::adapter::{Abandon, RecordOnce};
use profilis_core::{Failure, Outcome};
use sqlx::error::{BoxDynError, Error};
use sqlx::{Database, Describe, Either, Execute, Executor, SqlStr};

use super::query::{QueryCall, NO_FAILURE};
use super::{site, Query, Statement};

/// An executor whose queries are recorded as DB events. Made by [`profiled`].
#[derive(Debug, Clone, Copy)]
pub struct Profiled<E>(pub E);

/// Wraps an executor (`&pool`, `&mut *conn`, `&mut *tx`) so that the queries run through it
/// are recorded.
pub fn profiled<E>(executor: E) -> Profiled<E> {
    Profiled(executor)
}

/// The `db_vendor` of a sqlx database: `sqlite`, `postgres`, `mysql`, else its name in lower
/// case.
pub fn vendor_of<DB: Database>() -> &'static str {
    match DB::NAME {
        "SQLite" => "sqlite",
        "PostgreSQL" => "postgres",
        "MySQL" => "mysql",
        // Made once per name and kept, like every vendor's site.
        name => site(&name.to_ascii_lowercase()).label(),
    }
}

/// Rows a query result says were affected, for the drivers enabled by feature; `None` for
/// the others (their count is unknown, not 0).
fn rows_affected(result: &dyn std::any::Any) -> Option<u64> {
    #[cfg(feature = "sqlx-sqlite")]
    if let Some(r) = result.downcast_ref::<sqlx_sqlite::SqliteQueryResult>() {
        return Some(r.rows_affected());
    }
    #[cfg(feature = "sqlx-postgres")]
    if let Some(r) = result.downcast_ref::<sqlx_postgres::PgQueryResult>() {
        return Some(r.rows_affected());
    }
    #[cfg(feature = "sqlx-mysql")]
    if let Some(r) = result.downcast_ref::<sqlx_mysql::MySqlQueryResult>() {
        return Some(r.rows_affected());
    }
    let _ = result;
    None
}

/// A query handed to sqlx, keeping a copy of its SQL (a cheap clone) for the event.
struct Capture<Q> {
    inner: Q,
    sql: CapturedSql,
}

impl<'q, DB: Database, Q: Execute<'q, DB>> Execute<'q, DB> for Capture<Q> {
    fn sql(self) -> SqlStr {
        let sql = self.inner.sql();
        let _ = self.sql.0.set(sql.clone());
        sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.inner.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.inner.take_arguments()
    }

    fn persistent(&self) -> bool {
        self.inner.persistent()
    }
}

/// The SQL of a query, as sqlx hands it to the driver: known once the driver asked for it.
#[derive(Debug, Clone, Default)]
struct CapturedSql(Arc<OnceLock<SqlStr>>);

impl Statement for CapturedSql {
    fn sql(&self) -> Option<&str> {
        self.0.get().map(SqlStr::as_str)
    }
}

/// One item of a `fetch_many` stream: a statement's result or a row.
type Step<DB> = Result<Either<<DB as Database>::QueryResult, <DB as Database>::Row>, Error>;

/// A `fetch_many` query, with what its rows and results said so far.
#[derive(Debug)]
struct Fetch {
    query: QueryCall<CapturedSql>,
    /// Rows the query returned.
    returned: u64,
    /// Rows its results said it affected; `None` once one result could not say.
    affected: Option<u64>,
    /// Whether the stream gave a row or a result yet.
    gave: bool,
}

/// The type every sqlx query fails with, as users name it.
pub const ERROR_TYPE: &str = "sqlx::Error";

/// The failure of a query that sqlx failed with `err`: `exception_type` [`ERROR_TYPE`],
/// `exception_value` its message (`error returned from database: ...`).
fn failure(err: &Error) -> Failure {
    Failure::new(ERROR_TYPE, Some(err))
}

impl Fetch {
    /// Records the query as it stands, failed if `err` is given.
    fn record(self, err: Option<&Error>) {
        // Rows returned if there were any. Else rows affected, but not for reads (SQLite
        // reports the last write's count for them), and not for a `WITH` statement, which
        // may read or write.
        let rows = if self.returned > 0 {
            Some(self.returned)
        } else {
            match self.query.statement().map(kind_of) {
                Some(Kind::Read) => Some(0),
                Some(Kind::Write) => self.affected,
                Some(Kind::Either) | None => None,
            }
        };
        match err {
            Some(err) => self.query.record(
                || None::<&str>,
                true,
                Some(|| failure(err)),
                rows,
                Outcome::Returned,
            ),
            None => self
                .query
                .record(|| None::<&str>, false, NO_FAILURE, rows, Outcome::Returned),
        }
    }
}

impl Abandon for Fetch {
    /// Dropped between polls after it gave a row or a result, the stream was ended by a
    /// caller that read what it wanted: recorded as it stands. Dropped before it gave anything
    /// (a timeout around `execute`, say): cancelled, a failed query. Dropped by a panic in its
    /// poll: panicked.
    fn abandon(self, outcome: Outcome) {
        match outcome {
            Outcome::Returned | Outcome::Cancelled if self.gave => self.record(None),
            outcome => self.query.abandon(outcome),
        }
    }
}

/// The stream of a profiled `fetch_many`: records the query at its end, at its first error,
/// or when dropped.
struct Recorded<'e, DB: Database> {
    inner: BoxStream<'e, Step<DB>>,
    fetch: RecordOnce<Fetch>,
}

/// What a statement does, as far as its first word tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    /// `WITH ...`: a read, or a write with common table expressions.
    Either,
}

fn kind_of(sql: &str) -> Kind {
    // The first word after any comments and opening parentheses (`/* report */ SELECT`,
    // `(SELECT ..) UNION ..`): an empty one would be taken for a write, and a read given the
    // last write's count as its rows.
    // Comments end where masking ends them (not nested: only the start is read here).
    use super::mask::{block_comment_end, line_end};
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if rest.starts_with("--") {
            rest = &rest[line_end(rest.as_bytes(), 0)..];
        } else if rest.starts_with("/*") {
            rest = &rest[block_comment_end(rest.as_bytes(), 0, false)..];
        } else if let Some(after) = rest.strip_prefix('(') {
            rest = after;
        } else {
            break;
        }
    }
    let first = rest
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default();
    let is = |words: &[&str]| words.iter().any(|w| first.eq_ignore_ascii_case(w));
    if is(&["SELECT", "VALUES", "PRAGMA", "EXPLAIN", "SHOW", "DESCRIBE"]) {
        Kind::Read
    } else if is(&["WITH"]) {
        Kind::Either
    } else {
        Kind::Write
    }
}

impl<DB: Database> Stream for Recorded<'_, DB> {
    type Item = Step<DB>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let inner = &mut this.inner;
        let poll = this.fetch.run(|| inner.as_mut().poll_next(cx));
        let Some(fetch) = this.fetch.get_mut() else {
            return poll;
        };
        let ended = match &poll {
            Poll::Ready(Some(Ok(Either::Left(result)))) => {
                fetch.gave = true;
                fetch.affected = fetch
                    .affected
                    .zip(rows_affected(result))
                    .map(|(a, b)| a + b);
                None
            }
            Poll::Ready(Some(Ok(Either::Right(_)))) => {
                fetch.gave = true;
                fetch.returned += 1;
                None
            }
            Poll::Ready(Some(Err(err))) => Some(Some(err)),
            Poll::Ready(None) => Some(None),
            Poll::Pending => None,
        };
        // Ended: at its first error (recorded with it), or at its end.
        if let Some(err) = ended {
            if let Some(fetch) = this.fetch.take() {
                fetch.record(err);
            }
        }
        poll
    }
}

impl<'c, E> Executor<'c> for Profiled<E>
where
    E: Executor<'c>,
{
    type Database = E::Database;

    fn fetch_many<'e, 'q: 'e, Q>(
        self,
        query: Q,
    ) -> BoxStream<
        'e,
        Result<
            Either<<Self::Database as Database>::QueryResult, <Self::Database as Database>::Row>,
            Error,
        >,
    >
    where
        'c: 'e,
        Q: 'q + Execute<'q, Self::Database>,
    {
        let sql = CapturedSql::default();
        let Some(started) = QueryCall::start(vendor_of::<E::Database>(), sql.clone()) else {
            return self.0.fetch_many(query);
        };
        let inner = self.0.fetch_many(Capture { inner: query, sql });
        Box::pin(Recorded::<E::Database> {
            inner,
            fetch: RecordOnce::new(Fetch {
                query: started,
                returned: 0,
                affected: Some(0),
                gave: false,
            }),
        })
    }

    fn fetch_optional<'e, 'q: 'e, Q>(
        self,
        query: Q,
    ) -> BoxFuture<'e, Result<Option<<Self::Database as Database>::Row>, Error>>
    where
        'c: 'e,
        Q: 'q + Execute<'q, Self::Database>,
    {
        let sql = CapturedSql::default();
        let Some(started) = Query::start_with(vendor_of::<E::Database>(), sql.clone()) else {
            return self.0.fetch_optional(query);
        };
        let inner = self.0.fetch_optional(Capture { inner: query, sql });
        Box::pin(RecordedOne {
            inner,
            query: Some(started),
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [<Self::Database as Database>::TypeInfo],
    ) -> BoxFuture<'e, Result<<Self::Database as Database>::Statement, Error>>
    where
        'c: 'e,
    {
        self.0.prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Self::Database>, Error>>
    where
        'c: 'e,
    {
        self.0.describe(sql)
    }
}

/// The future of a profiled `fetch_optional`. Dropped before it completes, the query is
/// recorded as cancelled.
struct RecordedOne<'e, R> {
    inner: BoxFuture<'e, Result<Option<R>, Error>>,
    /// `None` once recorded.
    query: Option<Query<CapturedSql>>,
}

impl<R> Future for RecordedOne<'_, R> {
    type Output = Result<Option<R>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let inner = &mut this.inner;
        let poll = match this.query.as_mut() {
            Some(query) => query.run(|| inner.as_mut().poll(cx)),
            None => inner.as_mut().poll(cx),
        };
        if let Poll::Ready(result) = &poll {
            if let Some(query) = this.query.take() {
                match result {
                    Ok(row) => query.finish(None, false, Some(u64::from(row.is_some()))),
                    Err(err) => query.finish_failed(None, || failure(err)),
                }
            }
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_reads_writes_or_either_by_their_first_word() {
        assert_eq!(kind_of("  select 1"), Kind::Read);
        assert_eq!(kind_of("PRAGMA user_version"), Kind::Read);
        assert_eq!(kind_of("UPDATE t SET a = 1"), Kind::Write);
        assert_eq!(kind_of("with c as (select 1) delete from t"), Kind::Either);
        assert_eq!(kind_of(""), Kind::Write);
        // The first word after comments and opening parentheses.
        assert_eq!(kind_of("/* report */ SELECT 1"), Kind::Read);
        assert_eq!(kind_of("-- report\n  select 1"), Kind::Read);
        assert_eq!(kind_of("((SELECT 1) UNION (SELECT 2))"), Kind::Read);
        assert_eq!(kind_of("/* a */ -- b\n DELETE FROM t"), Kind::Write);
        assert_eq!(kind_of("/* never ends"), Kind::Write);
    }

    #[test]
    fn results_of_drivers_without_their_feature_have_no_count() {
        // Not a driver's result type: its count is unknown, not 0.
        assert_eq!(rows_affected(&()), None);
        #[cfg(feature = "sqlx-sqlite")]
        assert_eq!(
            rows_affected(&sqlx_sqlite::SqliteQueryResult::default()),
            Some(0)
        );
    }

    #[cfg(feature = "sqlx-sqlite")]
    #[test]
    fn queries_dropped_early_are_recorded_as_they_stand_or_cancelled() {
        use crate::db::DbDetail;
        use profilis_core::testing::capture;
        use profilis_core::Event;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ((), captured) = capture(|| {
            runtime.block_on(async {
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect("sqlite::memory:")
                    .await
                    .unwrap();
                sqlx::query("CREATE TABLE t (x INTEGER)")
                    .execute(profiled(&pool))
                    .await
                    .unwrap();
                sqlx::query("INSERT INTO t VALUES (1), (2), (3)")
                    .execute(profiled(&pool))
                    .await
                    .unwrap();
                let (x,): (i64,) = sqlx::query_as("SELECT x FROM t ORDER BY x")
                    .fetch_one(profiled(&pool))
                    .await
                    .unwrap();
                assert_eq!(x, 1);
                // A read that starts with a comment and returns nothing: 0 rows, not the
                // last write's count.
                let none = sqlx::query("/* report */ SELECT x FROM t WHERE x < 0")
                    .fetch_all(profiled(&pool))
                    .await
                    .unwrap();
                assert!(none.is_empty());
                // A stream its caller stops reading after one row of two.
                let mut rows = sqlx::query("SELECT x FROM t WHERE x > 1").fetch(profiled(&pool));
                let first = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await;
                assert!(first.unwrap().is_ok());
                drop(rows);
                // A query dropped while it waits for the pool's only connection.
                let held = pool.acquire().await.unwrap();
                let mut waiting = Box::pin(sqlx::query("SELECT 2").fetch_optional(profiled(&pool)));
                let polled = std::future::poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx)));
                assert!(polled.await.is_pending());
                drop(waiting);
                // The same for `execute` and `fetch_all`, which read a stream to its end:
                // dropped before it gave anything, they are cancelled too.
                let mut waiting = Box::pin(sqlx::query("DELETE FROM t").execute(profiled(&pool)));
                let polled = std::future::poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx)));
                assert!(polled.await.is_pending());
                drop(waiting);
                let mut waiting = Box::pin(sqlx::query("SELECT 3").fetch_all(profiled(&pool)));
                let polled = std::future::poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx)));
                assert!(polled.await.is_pending());
                drop(waiting);
                drop(held);
            });
        });
        let events = captured.named("sqlite");
        let ended = |query: Option<&str>| -> Vec<_> {
            let detail = |e: &Event| e.detail::<DbDetail>().cloned().unwrap();
            events
                .iter()
                .filter(|e| detail(e).query.as_deref() == query)
                .map(|e| (detail(e).rows, e.error, e.outcome))
                .collect()
        };
        assert_eq!(
            ended(Some("INSERT INTO t VALUES (?), (?), (?)")),
            [(Some(3), false, Outcome::Returned)],
            "rows affected"
        );
        assert_eq!(
            ended(Some("SELECT x FROM t ORDER BY x")),
            [(Some(1), false, Outcome::Returned)]
        );
        assert_eq!(
            ended(Some("SELECT x FROM t WHERE x > ?")),
            [(Some(1), false, Outcome::Returned)],
            "as it stood when dropped"
        );
        assert_eq!(
            ended(Some("SELECT x FROM t WHERE x < ?")),
            [(Some(0), false, Outcome::Returned)],
            "a read after a comment"
        );
        // The driver never asked for their SQL: they never ran.
        assert_eq!(ended(None), [(None, true, Outcome::Cancelled); 3]);
        assert_eq!(captured.count("sqlite"), (8, 3));
    }
}
