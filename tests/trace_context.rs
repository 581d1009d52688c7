//! Trace context in events: reading the current ids inside a profiled call, running calls under
//! a given trace id (sync, and across `.await` on a multi-thread runtime), and joining an
//! HTTP-like outer span with the calls made inside it.
#![cfg(feature = "enabled")]

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::thread::ThreadId;
use std::time::Duration;

use profilis::adapter::Timer;
use profilis::context::{self, Scoped, SpanContext, SpanId, TraceId};
use profilis::testing::capture;
use profilis::{profiled, Detail, Outcome, Site, Value, HTTP};
use profilis_test_support::capture_multi_thread;

/// The span this call runs in, as seen from inside it.
#[profiled]
fn whoami() -> Option<SpanContext> {
    context::current()
}

#[profiled]
fn lookup(id: u64) -> u64 {
    id * 2
}

#[profiled]
fn handler(id: u64) -> u64 {
    lookup(id) + lookup(id + 1)
}

/// Awaits a few times, calling a sync profiled function between awaits; returns the context it
/// saw at each step and the threads it ran on. A blocking-pool thread wakes the task, so any
/// worker may resume it.
#[profiled]
async fn load(id: u64) -> (Vec<Option<SpanContext>>, HashSet<ThreadId>) {
    let mut seen = Vec::new();
    let mut threads = HashSet::new();
    for i in 0..8 {
        threads.insert(std::thread::current().id());
        seen.push(context::current());
        lookup(id + i);
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_micros(200)))
            .await
            .expect("blocking work done");
    }
    (seen, threads)
}

/// Pending once (waking itself), then ready: an await point without any runtime.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Reports the context and thread at each of its three steps.
#[profiled]
async fn hop() -> Vec<(Option<SpanContext>, ThreadId)> {
    let mut steps = vec![(context::current(), std::thread::current().id())];
    for _ in 0..2 {
        YieldOnce(false).await;
        lookup(1);
        steps.push((context::current(), std::thread::current().id()));
    }
    steps
}

const TRACE: TraceId = TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);
const PARENT: SpanId = SpanId(0x00f0_67aa_0ba9_02b7);

#[test]
fn the_current_ids_inside_a_profiled_call_are_its_own() {
    let (inside, captured) = capture(|| {
        assert_eq!(context::current(), None, "no span outside any call");
        let inside = whoami().expect("a profiled call is the current span");
        assert_eq!(context::current(), None, "the span ends with the call");
        inside
    });
    let event = captured.one("trace_context::whoami");
    assert_eq!(inside.trace_id, event.trace_id);
    assert_eq!(inside.span_id, event.span_id);
    assert_eq!(event.parent_span_id, None);
    assert_ne!(event.trace_id, TraceId(0));
}

#[test]
fn with_trace_gives_calls_that_trace_and_parent() {
    let (inside, captured) = capture(|| {
        let inside = context::with_trace(TRACE, Some(PARENT), || {
            assert_eq!(
                context::current(),
                Some(SpanContext {
                    trace_id: TRACE,
                    span_id: PARENT
                })
            );
            handler(1);
            whoami().unwrap()
        });
        // Without a parent: the trace is kept, the call is a root span in it.
        context::with_trace(TraceId(7), None, || lookup(9));
        inside
    });
    let handler = captured.one("trace_context::handler");
    assert_eq!(handler.trace_id, TRACE);
    assert_eq!(handler.parent_span_id, Some(PARENT));
    let lookups = captured.named("trace_context::lookup");
    assert_eq!(lookups.len(), 3);
    for inner in &lookups[..2] {
        assert_eq!(inner.trace_id, TRACE);
        assert_eq!(inner.parent_span_id, Some(handler.span_id));
    }
    assert_eq!(lookups[2].trace_id, TraceId(7));
    assert_eq!(lookups[2].parent_span_id, None);
    let whoami = captured.one("trace_context::whoami");
    assert_eq!(whoami.trace_id, TRACE);
    assert_eq!(whoami.parent_span_id, Some(PARENT));
    assert_eq!(inside.span_id, whoami.span_id);
    assert_eq!(context::current(), None, "with_trace restores the context");
}

#[test]
fn a_traceparent_header_sets_the_trace_of_calls_run_under_it() {
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let ctx = context::parse_traceparent(header).expect("a valid traceparent");
    let (_, captured) = capture(|| context::scope(ctx, || lookup(3)));
    let event = captured.one("trace_context::lookup");
    assert_eq!(event.trace_id, TRACE);
    assert_eq!(event.parent_span_id, Some(PARENT));
    assert_eq!(
        format!("{}", event.trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

#[test]
fn a_scoped_future_polled_on_different_threads_keeps_its_trace() {
    let ctx = SpanContext {
        trace_id: TRACE,
        span_id: PARENT,
    };
    let (steps, captured) = capture(|| {
        let mut future = Box::pin(Scoped::new(ctx, hop()));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            context::current(),
            None,
            "the poll leaves no context behind"
        );
        // The second step runs on another thread, the last one back here.
        let mut future = std::thread::spawn(move || {
            let mut cx = Context::from_waker(Waker::noop());
            assert!(future.as_mut().poll(&mut cx).is_pending());
            assert_eq!(context::current(), None);
            future
        })
        .join()
        .unwrap();
        let Poll::Ready(steps) = future.as_mut().poll(&mut cx) else {
            panic!("hop finishes on its third poll");
        };
        steps
    });
    let hop = captured.one("trace_context::hop");
    assert_eq!(hop.trace_id, TRACE);
    assert_eq!(hop.parent_span_id, Some(PARENT));
    let threads: HashSet<_> = steps.iter().map(|(_, thread)| *thread).collect();
    assert_eq!(threads.len(), 2, "polled on two threads");
    for (inside, _) in &steps {
        assert_eq!(
            *inside,
            Some(SpanContext {
                trace_id: TRACE,
                span_id: hop.span_id
            })
        );
    }
    let lookups = captured.named("trace_context::lookup");
    assert_eq!(lookups.len(), 2);
    assert!(lookups
        .iter()
        .all(|e| e.trace_id == TRACE && e.parent_span_id == Some(hop.span_id)));
}

#[test]
fn scoped_tasks_keep_their_trace_across_await_on_a_multi_thread_runtime() {
    const TASKS: u64 = 8;
    let contexts: Vec<SpanContext> = (1..=TASKS)
        .map(|i| SpanContext {
            trace_id: TraceId(0xabc0 + u128::from(i)),
            span_id: SpanId(0x100 + i),
        })
        .collect();
    let (results, captured) = {
        let contexts = contexts.clone();
        capture_multi_thread(async move {
            let tasks: Vec<_> = contexts
                .iter()
                .enumerate()
                .map(|(i, &ctx)| {
                    tokio::spawn(Scoped::new(ctx, async move {
                        let result = load(i as u64 * 100).await;
                        // Still this task's context after the profiled call ends.
                        assert_eq!(context::current(), Some(ctx));
                        result
                    }))
                })
                .collect();
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.expect("task finished"));
            }
            results
        })
    };
    let loads = captured.named("trace_context::load");
    assert_eq!(loads.len(), TASKS as usize);
    for (ctx, (seen, _)) in contexts.iter().zip(&results) {
        let load = loads
            .iter()
            .find(|e| e.trace_id == ctx.trace_id)
            .unwrap_or_else(|| panic!("no load event in trace {:?}", ctx.trace_id));
        assert_eq!(load.parent_span_id, Some(ctx.span_id));
        // Inside the call, at every await point, the current span is the call itself.
        for inside in seen {
            assert_eq!(
                *inside,
                Some(SpanContext {
                    trace_id: ctx.trace_id,
                    span_id: load.span_id
                })
            );
        }
        let lookups: Vec<_> = captured
            .named("trace_context::lookup")
            .into_iter()
            .filter(|e| e.trace_id == ctx.trace_id)
            .collect();
        assert_eq!(lookups.len(), 8);
        assert!(lookups
            .iter()
            .all(|e| e.parent_span_id == Some(load.span_id)));
    }
    // Scheduling decides whether a task moves, so this is reported, not asserted; the test
    // above moves a future between threads deterministically.
    let moved = results
        .iter()
        .filter(|(_, threads)| threads.len() > 1)
        .count();
    eprintln!("{moved} of {TASKS} tasks moved between worker threads");
}

/// What an HTTP adapter adds to its events.
#[derive(Debug)]
struct Request;

impl Detail for Request {
    fn field(&self, key: &str) -> Option<Value<'_>> {
        (key == "method").then_some(Value::Str("GET"))
    }
}

/// What an HTTP layer does: time the request as a span (a child of the incoming
/// `traceparent`), run the handler under it, and record the request when it ends.
fn serve(traceparent: Option<&str>, id: u64) -> SpanContext {
    let timer =
        Timer::start(traceparent.and_then(context::parse_traceparent)).expect("a collector runs");
    let request = timer.context();
    context::scope(request, || handler(id));
    let site = Site::interned(
        &HTTP,
        "/orders/{id}",
        &[("status", "200"), ("method", "GET")],
    );
    timer.finish(site, true, false, Outcome::Returned, || Request);
    request
}

#[test]
fn an_http_span_is_the_parent_of_the_calls_inside_it() {
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (requests, captured) = capture(|| [serve(Some(header), 1), serve(None, 2)]);
    let http: Vec<_> = captured
        .events
        .iter()
        .filter(|e| e.kind() == &HTTP)
        .collect();
    assert_eq!(http.len(), 2);
    for (request, http) in requests.iter().zip(&http) {
        // The adapter's detail, then the site's labels.
        assert_eq!(http.field("method"), Some(Value::Str("GET")));
        assert_eq!(http.field("route"), Some(Value::Str("/orders/{id}")));
        assert_eq!(http.field("status"), Some(Value::Str("200")));
        assert_eq!(http.span_id, request.span_id);
        assert_eq!(http.trace_id, request.trace_id);
        // Join the log: the handler's parent is the request's span, the lookups' its own.
        let handler = captured
            .named("trace_context::handler")
            .into_iter()
            .find(|e| e.parent_span_id == Some(http.span_id))
            .expect("the handler event names the request as parent");
        assert_eq!(handler.trace_id, http.trace_id);
        let lookups = captured
            .named("trace_context::lookup")
            .into_iter()
            .filter(|e| e.parent_span_id == Some(handler.span_id))
            .count();
        assert_eq!(lookups, 2);
    }
    // The first request continues the caller's trace; the second starts its own.
    assert_eq!(http[0].trace_id, TRACE);
    assert_eq!(http[0].parent_span_id, Some(PARENT));
    assert_ne!(http[1].trace_id, TRACE);
    assert_eq!(http[1].parent_span_id, None);
}
