//! Database queries as DB events: counted in `profilis_db_queries_total`, failures in
//! `profilis_db_query_errors_total`, timed in `profilis_db_query_duration_seconds` (labels
//! service, instance, worker, `db_vendor`). The statement never becomes a label; events keep
//! it [`mask`]ed and cut to the [statement limit](set_statement_limit).
//!
//! - For any client: [`query`] times a closure and [`query_async`] a future, as one query of a
//!   vendor; `#[profiled(db = "postgres")]` turns a function's calls into queries; [`Query`] is
//!   the building block adapters use.
//! - Hooks for particular clients, each behind a feature: `rusqlite`
//!   (`rusqlite`), `sqlx` (`sqlx`), `diesel` (`diesel`).
//!
//! Like function calls, every query is counted; sampling (the global rate) decides only which
//! are timed and become events, decided when the query starts. A timed query's span is current
//! while it runs, so profiled calls inside it are its children, and it is a child of the
//! calling thread's current span; calls inside a query not timed stay the caller's children.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use profilis_core::event::DbDetail;
use profilis_core::{context, Detail, Outcome, Site, SpanContext, Timer};

mod mask;
pub use mask::{for_event, mask, set_statement_limit, statement_limit, DEFAULT_STATEMENT_LIMIT};

#[cfg(feature = "diesel")]
#[cfg_attr(docsrs, doc(cfg(feature = "diesel")))]
pub mod diesel;
#[cfg(feature = "rusqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "rusqlite")))]
pub mod rusqlite;
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
pub mod sqlx;

/// One query being timed, for adapters: started with [`Query::start`], recorded once by
/// [`Query::finish`]. Dropped unfinished (the query panicked, or its future was dropped), it is
/// recorded as failed, with outcome `Panicked` if the thread is panicking or the query's
/// future was being polled ([`Query::poll_with`]), and `Cancelled` otherwise.
#[derive(Debug)]
#[must_use = "a query is recorded when finished"]
pub struct Query {
    site: &'static Site,
    /// `None` once recorded.
    timer: Option<Timer>,
    /// Inside [`Query::poll_with`]: dropped now, the poll panicked.
    polling: bool,
}

impl Query {
    /// Starts timing a query of `vendor` (`sqlite`, `postgres`, `mysql`, ...) now. `None` when
    /// profiling is off or no collector runs.
    pub fn start(vendor: &str) -> Option<Query> {
        let site = Site::db(vendor);
        let timer = Timer::start_sampled(site)?;
        Some(Query {
            site,
            timer: Some(timer),
            polling: false,
        })
    }

    /// The query's span; make it current while the query runs so that profiled calls inside
    /// are its children. For a query not sampled in, the span that was current when it
    /// started.
    pub fn context(&self) -> SpanContext {
        self.timer.map(|t| t.context()).unwrap_or_default()
    }

    /// The vendor given to [`Query::start`].
    pub fn vendor(&self) -> &'static str {
        self.site.name()
    }

    /// Records the query as ended now: `statement` is its SQL as sent (masked and cut here,
    /// and only if a sink wants events), `error` whether it failed, `rows` the rows affected
    /// or returned if the driver reports them.
    pub fn finish(mut self, statement: Option<&str>, error: bool, rows: Option<u64>) {
        self.end(statement, error, rows, Outcome::Returned);
    }

    /// Like [`Query::finish`], for drivers whose statement text costs something to get (it
    /// is formatted, say): `statement` is called only if a sink wants the event.
    pub fn finish_with<S: AsRef<str>>(
        mut self,
        statement: impl FnOnce() -> Option<S>,
        error: bool,
        rows: Option<u64>,
    ) {
        self.end_with(statement, error, rows, Outcome::Returned);
    }

    fn end(&mut self, statement: Option<&str>, error: bool, rows: Option<u64>, outcome: Outcome) {
        self.end_with(|| statement, error, rows, outcome);
    }

    fn end_with<S: AsRef<str>>(
        &mut self,
        statement: impl FnOnce() -> Option<S>,
        error: bool,
        rows: Option<u64>,
        outcome: Outcome,
    ) {
        let Some(timer) = self.timer.take() else {
            return;
        };
        let site = self.site;
        timer.finish(site, true, error, outcome, || {
            let vendor = site.name();
            Detail::Db(DbDetail {
                vendor: vendor.into(),
                query: statement()
                    .and_then(|sql| for_event(vendor, sql.as_ref()))
                    .map(Into::into),
                rows,
            })
        });
    }

    /// Forgets the query without recording it.
    #[cfg(feature = "rusqlite")]
    pub(crate) fn discard(mut self) {
        self.timer = None;
    }

    /// Runs `poll` (a poll of the query's future) as part of the query: if it panics, the
    /// query is recorded as panicked when dropped, even after the panic was caught (a panic
    /// handler that drops the future later, say).
    pub fn poll_with<T>(&mut self, poll: impl FnOnce() -> T) -> T {
        self.polling = true;
        let polled = poll();
        self.polling = false;
        polled
    }

    /// Records an unfinished query as failed, keeping its statement.
    fn abandon(&mut self, statement: Option<&str>) {
        let outcome = if self.polling || std::thread::panicking() {
            Outcome::Panicked
        } else {
            Outcome::Cancelled
        };
        self.end(statement, true, None, outcome);
    }
}

impl Drop for Query {
    fn drop(&mut self) {
        self.abandon(None);
    }
}

/// Runs `f` as one query of `vendor` with SQL `statement`: counted, timed (if sampled) and
/// failed when `f` returns `Err` or panics (the panic goes on unchanged).
///
/// ```
/// # fn run() -> Result<u64, String> { Ok(1) }
/// let n = profilis_integrations::db::query("postgres", "SELECT count(*) FROM users", || run());
/// assert_eq!(n, Ok(1));
/// ```
pub fn query<T, E>(
    vendor: &str,
    statement: &str,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let Some(query) = Query::start(vendor) else {
        return f();
    };
    let mut guard = StatementGuard { query, statement };
    let result = context::scope(guard.query.context(), f);
    guard
        .query
        .end(Some(statement), result.is_err(), None, Outcome::Returned);
    result
}

/// Records the query as abandoned with its statement if dropped before it ended.
struct StatementGuard<'s> {
    query: Query,
    statement: &'s str,
}

impl Drop for StatementGuard<'_> {
    fn drop(&mut self) {
        self.query.abandon(Some(self.statement));
    }
}

/// Awaits `future` as one query of `vendor` with SQL `statement`, timed from the first poll to
/// completion; failed when the output is `Err`, cancelled (and failed) when the future is
/// dropped before it completes.
///
/// ```
/// # async fn fetch() -> Result<Vec<u32>, String> { Ok(vec![1]) }
/// # futures::executor::block_on(async {
/// let rows = profilis_integrations::db::query_async("postgres", "SELECT id FROM t", fetch()).await;
/// assert_eq!(rows, Ok(vec![1]));
/// # });
/// ```
pub fn query_async<'s, F, T, E>(
    vendor: &'s str,
    statement: &'s str,
    future: F,
) -> QueryFuture<'s, F>
where
    F: Future<Output = Result<T, E>>,
{
    QueryFuture {
        future,
        vendor,
        statement,
        started: false,
        query: None,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`query_async`].
    #[must_use = "futures do nothing unless polled"]
    pub struct QueryFuture<'s, F> {
        #[pin]
        future: F,
        vendor: &'s str,
        statement: &'s str,
        started: bool,
        query: Option<StatementGuard<'s>>,
    }
}

impl<F, T, E> Future for QueryFuture<'_, F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if !*this.started {
            *this.started = true;
            *this.query = Query::start(this.vendor).map(|query| StatementGuard {
                query,
                statement: this.statement,
            });
        }
        let poll = match this.query.as_mut() {
            Some(guard) => {
                let _current = context::enter(guard.query.context());
                guard.query.poll_with(|| this.future.poll(cx))
            }
            None => this.future.poll(cx),
        };
        if let Poll::Ready(result) = &poll {
            if let Some(mut guard) = this.query.take() {
                guard.query.end(
                    Some(this.statement),
                    result.is_err(),
                    None,
                    Outcome::Returned,
                );
            }
        }
        poll
    }
}
