//! Timing a query of any client: a closure ([`query`]) or a future ([`query_async`]) run as
//! one query of a vendor, with its statement.

use std::any::type_name;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use profilis_core::{context, Failure};

use super::query::Query;

/// Runs `f` as one query of `vendor` (a name such as `postgres`; see [`site`](crate::db::site)
/// for what else becomes [`OTHER_VENDOR`](crate::db::OTHER_VENDOR)) with SQL `statement`:
/// counted, timed (if sampled) and
/// failed when `f` returns `Err` or panics (the panic goes on unchanged). An `Err(e)` is
/// recorded with why ([`failure_of`]): the event's `exception_type` is `E`'s type name and
/// `exception_value` its message, written out only if an output wants them.
///
/// ```
/// # fn run() -> Result<u64, String> { Ok(1) }
/// let n = profilis::db::query("postgres", "SELECT count(*) FROM users", || run());
/// assert_eq!(n, Ok(1));
/// ```
pub fn query<T, E: fmt::Display>(
    vendor: &str,
    statement: &str,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let Some(mut query) = Query::start_with(vendor, statement) else {
        return f();
    };
    let span = query.context();
    let result = query.run(|| context::scope(span, f));
    finish(query, &result);
    result
}

/// The failure of a query that returned `Err(err)`: `exception_type` is
/// `std::any::type_name::<E>()` (its full path, `rusqlite::error::Error` say), `exception_value`
/// its `Display`, cut to [`Failure::MAX_MESSAGE`] bytes.
pub fn failure_of<E: fmt::Display>(err: &E) -> Failure {
    Failure::new(type_name::<E>(), Some(err))
}

/// Records `query` as ended with `result`.
fn finish<S: super::Statement, T, E: fmt::Display>(query: Query<S>, result: &Result<T, E>) {
    match result {
        Ok(_) => query.finish(None, false, None),
        Err(err) => query.finish_failed(None, || failure_of(err)),
    }
}

/// Awaits `future` as one query of `vendor` with SQL `statement`, timed from the first poll to
/// completion; failed when the output is `Err` (with why, as for [`query`]), cancelled (and
/// failed) when the future is dropped after its first poll and before it completes.
///
/// ```
/// # async fn fetch() -> Result<Vec<u32>, String> { Ok(vec![1]) }
/// # futures::executor::block_on(async {
/// let rows = profilis::db::query_async("postgres", "SELECT id FROM t", fetch()).await;
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
    E: fmt::Display,
{
    QueryFuture {
        future,
        unstarted: Some((vendor, statement)),
        query: None,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`query_async`].
    #[must_use = "futures do nothing unless polled"]
    pub struct QueryFuture<'s, F> {
        #[pin]
        future: F,
        // The vendor and statement, until the first poll starts the query.
        unstarted: Option<(&'s str, &'s str)>,
        // `None` before the first poll, once recorded, and when profiling is off.
        query: Option<Query<&'s str>>,
    }
}

impl<F, T, E> Future for QueryFuture<'_, F>
where
    F: Future<Output = Result<T, E>>,
    E: fmt::Display,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some((vendor, statement)) = this.unstarted.take() {
            *this.query = Query::start_with(vendor, statement);
        }
        let future = this.future;
        let poll = match this.query.as_mut() {
            Some(query) => {
                let _current = context::enter(query.context());
                query.run(|| future.poll(cx))
            }
            None => future.poll(cx),
        };
        if let Poll::Ready(result) = &poll {
            if let Some(query) = this.query.take() {
                finish(query, result);
            }
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbDetail;
    use profilis_core::testing::capture;
    use profilis_core::Outcome;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::Waker;

    #[test]
    fn closures_are_queries_that_fail_with_err_or_a_panic() {
        let ((), captured) = capture(|| {
            let span = query("run-test-sync", "SELECT 1", || {
                Ok::<_, String>(context::current())
            });
            assert!(
                span.unwrap().is_some(),
                "the query's span is current inside"
            );
            assert!(query("run-test-sync", "SELEC", || Err::<(), _>("syntax")).is_err());
            let panicked = catch_unwind(|| {
                query(
                    "run-test-sync",
                    "SELECT 'secret'",
                    || -> Result<(), String> { panic!("driver bug") },
                )
            });
            assert!(panicked.is_err(), "the panic goes on");
        });
        let ended: Vec<_> = captured
            .named("run-test-sync")
            .iter()
            .map(|e| (e.error, e.outcome))
            .collect();
        assert_eq!(
            ended,
            [
                (false, Outcome::Returned),
                (true, Outcome::Returned),
                (true, Outcome::Panicked)
            ]
        );
        let events = captured.named("run-test-sync");
        let panicked = events[2].detail::<DbDetail>();
        assert_eq!(panicked.unwrap().query.as_deref(), Some("SELECT ?"));
        // The `Err` carries its type and message; the success nothing.
        assert_eq!(events[0].failure, None);
        assert_eq!(
            events[1].failure.as_deref(),
            Some(&Failure::new("&str", Some(&"syntax")))
        );
    }

    #[test]
    fn futures_dropped_early_are_cancelled_or_panicked_with_their_statement() {
        let mut cx = Context::from_waker(Waker::noop());
        let ((), captured) = capture(|| {
            let done =
                futures::executor::block_on(query_async("run-test-async", "SELECT 1", async {
                    Ok::<_, std::io::Error>(7)
                }));
            assert_eq!(done.unwrap(), 7);
            let refused =
                futures::executor::block_on(query_async("run-test-async", "SELECT 4", async {
                    Err::<u32, _>(std::io::Error::other("connection reset"))
                }));
            assert!(refused.is_err());
            // Never polled: never started, nothing to record.
            drop(query_async(
                "run-test-async",
                "SELECT 'never'",
                std::future::pending::<Result<(), String>>(),
            ));
            let mut pending = Box::pin(query_async(
                "run-test-async",
                "SELECT 2",
                std::future::pending::<Result<(), String>>(),
            ));
            assert!(pending.as_mut().poll(&mut cx).is_pending());
            drop(pending);
            let mut panicking = Box::pin(query_async("run-test-async", "SELECT 3", async {
                panic!("driver bug");
                #[allow(unreachable_code)]
                Ok::<(), String>(())
            }));
            let caught = catch_unwind(AssertUnwindSafe(|| {
                let _ = panicking.as_mut().poll(&mut cx);
            }));
            assert!(caught.is_err());
            drop(panicking);
        });
        let ended: Vec<_> = captured
            .named("run-test-async")
            .iter()
            .map(|e| {
                (
                    e.error,
                    e.outcome,
                    e.detail::<DbDetail>().unwrap().query.clone(),
                )
            })
            .collect();
        assert_eq!(
            ended,
            [
                (false, Outcome::Returned, Some("SELECT ?".into())),
                (true, Outcome::Returned, Some("SELECT ?".into())),
                (true, Outcome::Cancelled, Some("SELECT ?".into())),
                (true, Outcome::Panicked, Some("SELECT ?".into())),
            ]
        );
        let refused = &captured.named("run-test-async")[1];
        assert_eq!(
            refused.failure.as_deref(),
            Some(&Failure::new(
                "std::io::error::Error",
                Some(&"connection reset")
            ))
        );
    }
}
