//! Timing a query of any client: a closure ([`query`]) or a future ([`query_async`]) run as
//! one query of a vendor, with its statement.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use profilis_core::context;

use super::query::Query;

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
    let Some(mut query) = Query::start_with(vendor, statement) else {
        return f();
    };
    let span = query.context();
    let result = query.run(|| context::scope(span, f));
    query.finish(None, result.is_err(), None);
    result
}

/// Awaits `future` as one query of `vendor` with SQL `statement`, timed from the first poll to
/// completion; failed when the output is `Err`, cancelled (and failed) when the future is
/// dropped after its first poll and before it completes.
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
                query.finish(None, result.is_err(), None);
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
                Ok::<_, ()>(context::current())
            });
            assert!(
                span.unwrap().is_some(),
                "the query's span is current inside"
            );
            assert!(query("run-test-sync", "SELEC", || Err::<(), _>("syntax")).is_err());
            let panicked = catch_unwind(|| {
                query("run-test-sync", "SELECT 'secret'", || -> Result<(), ()> {
                    panic!("driver bug")
                })
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
        let panicked = captured.named("run-test-sync")[2].detail::<DbDetail>();
        assert_eq!(panicked.unwrap().query.as_deref(), Some("SELECT ?"));
    }

    #[test]
    fn futures_dropped_early_are_cancelled_or_panicked_with_their_statement() {
        let mut cx = Context::from_waker(Waker::noop());
        let ((), captured) = capture(|| {
            let done =
                futures::executor::block_on(query_async("run-test-async", "SELECT 1", async {
                    Ok::<_, ()>(7)
                }));
            assert_eq!(done, Ok(7));
            // Never polled: never started, nothing to record.
            drop(query_async(
                "run-test-async",
                "SELECT 'never'",
                std::future::pending::<Result<(), ()>>(),
            ));
            let mut pending = Box::pin(query_async(
                "run-test-async",
                "SELECT 2",
                std::future::pending::<Result<(), ()>>(),
            ));
            assert!(pending.as_mut().poll(&mut cx).is_pending());
            drop(pending);
            let mut panicking = Box::pin(query_async("run-test-async", "SELECT 3", async {
                panic!("driver bug");
                #[allow(unreachable_code)]
                Ok::<(), ()>(())
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
                (true, Outcome::Cancelled, Some("SELECT ?".into())),
                (true, Outcome::Panicked, Some("SELECT ?".into())),
            ]
        );
    }
}
