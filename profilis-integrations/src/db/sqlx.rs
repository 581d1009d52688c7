//! sqlx 0.9: [`Profiled`] wraps an executor (a `&Pool`, a `&mut` connection or transaction)
//! so that every query run through it is recorded, with the vendor of its database
//! (`sqlite`, `postgres`, `mysql`, from the driver's name).
//!
//! ```
//! # #[cfg(feature = "sqlx-sqlite")]
//! # async fn demo() -> Result<(), sqlx::Error> {
//! use profilis_integrations::db::sqlx::profiled;
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
//! Limits: only queries run through a [`Profiled`] executor are seen (not the ones sqlx runs
//! itself, such as `BEGIN`/`COMMIT` of a `Transaction` or migrations); a query is timed from
//! the call to its last row, pool acquisition included; a stream dropped before its end is
//! recorded then, as it stands. `rows` in events is the rows returned; for a statement that
//! returned none: 0 for a read (`SELECT`, ...), the rows affected for a write, which needs the
//! `sqlx-sqlite`, `sqlx-postgres` or `sqlx-mysql` feature for its driver (else `null`), and
//! `null` for a `WITH` statement, which may be either.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures_core::future::BoxFuture;
use futures_core::stream::{BoxStream, Stream};
use sqlx::error::{BoxDynError, Error};
use sqlx::{Database, Describe, Either, Execute, Executor, SqlStr};

use profilis_core::Site;

use super::Query;

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
        name => Site::db(&name.to_ascii_lowercase()).name(),
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
    sql: Arc<OnceLock<SqlStr>>,
}

impl<'q, DB: Database, Q: Execute<'q, DB>> Execute<'q, DB> for Capture<Q> {
    fn sql(self) -> SqlStr {
        let sql = self.inner.sql();
        let _ = self.sql.set(sql.clone());
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

fn statement_of(sql: &OnceLock<SqlStr>) -> Option<&str> {
    sql.get().map(SqlStr::as_str)
}

/// One item of a `fetch_many` stream: a statement's result or a row.
type Step<DB> = Result<Either<<DB as Database>::QueryResult, <DB as Database>::Row>, Error>;

/// The stream of a profiled `fetch_many`: records the query at its end, at its first error,
/// or when dropped.
struct Recorded<'e, DB: Database> {
    inner: BoxStream<'e, Step<DB>>,
    query: Option<Query>,
    sql: Arc<OnceLock<SqlStr>>,
    /// Rows the query returned.
    returned: u64,
    /// Rows its results said it affected; `None` once one result could not say.
    affected: Option<u64>,
    failed: bool,
}

impl<DB: Database> Recorded<'_, DB> {
    fn record(&mut self) {
        if let Some(query) = self.query.take() {
            let statement = statement_of(&self.sql);
            // Rows returned if there were any. Else rows affected, but not for reads (SQLite
            // reports the last write's count for them), and not for a `WITH` statement, which
            // may read or write.
            let rows = if self.returned > 0 {
                Some(self.returned)
            } else {
                match statement.map(kind_of) {
                    Some(Kind::Read) => Some(0),
                    Some(Kind::Write) => self.affected,
                    Some(Kind::Either) | None => None,
                }
            };
            query.finish(statement, self.failed, rows);
        }
    }
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
    let first = sql
        .trim_start()
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
        let poll = match this.query.as_mut() {
            Some(query) => query.poll_with(|| inner.as_mut().poll_next(cx)),
            None => inner.as_mut().poll_next(cx),
        };
        match &poll {
            Poll::Ready(Some(Ok(Either::Left(result)))) => {
                this.affected = this.affected.zip(rows_affected(result)).map(|(a, b)| a + b);
            }
            Poll::Ready(Some(Ok(Either::Right(_)))) => this.returned += 1,
            Poll::Ready(Some(Err(_))) => {
                this.failed = true;
                this.record();
            }
            Poll::Ready(None) => this.record(),
            Poll::Pending => {}
        }
        poll
    }
}

impl<DB: Database> Drop for Recorded<'_, DB> {
    fn drop(&mut self) {
        match self.query.as_mut() {
            // Dropped by a panic in its poll: a panicked query.
            Some(query) if query.polling => query.abandon(statement_of(&self.sql)),
            // Dropped between polls, by the end of the stream or a caller done with it.
            _ => self.record(),
        }
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
        let Some(started) = Query::start(vendor_of::<E::Database>()) else {
            return self.0.fetch_many(query);
        };
        let sql = Arc::new(OnceLock::new());
        let inner = self.0.fetch_many(Capture {
            inner: query,
            sql: Arc::clone(&sql),
        });
        Box::pin(Recorded::<E::Database> {
            inner,
            query: Some(started),
            sql,
            returned: 0,
            affected: Some(0),
            failed: false,
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
        let Some(started) = Query::start(vendor_of::<E::Database>()) else {
            return self.0.fetch_optional(query);
        };
        let sql = Arc::new(OnceLock::new());
        let inner = self.0.fetch_optional(Capture {
            inner: query,
            sql: Arc::clone(&sql),
        });
        Box::pin(RecordedOne {
            inner,
            query: Some(started),
            sql,
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
    query: Option<Query>,
    sql: Arc<OnceLock<SqlStr>>,
}

impl<R> Future for RecordedOne<'_, R> {
    type Output = Result<Option<R>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let inner = &mut this.inner;
        let poll = match this.query.as_mut() {
            Some(query) => query.poll_with(|| inner.as_mut().poll(cx)),
            None => inner.as_mut().poll(cx),
        };
        if let Poll::Ready(result) = &poll {
            if let Some(query) = this.query.take() {
                let rows = match result {
                    Ok(row) => Some(u64::from(row.is_some())),
                    Err(_) => None,
                };
                query.finish(statement_of(&this.sql), result.is_err(), rows);
            }
        }
        poll
    }
}

impl<R> Drop for RecordedOne<'_, R> {
    fn drop(&mut self) {
        if let Some(mut query) = self.query.take() {
            query.abandon(statement_of(&self.sql));
        }
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
}
