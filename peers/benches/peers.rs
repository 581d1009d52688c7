//! What one call costs with profilis and with what a user would pick instead, each on the same
//! empty `#[inline(never)]` function, with one thread and with two threads calling it.
//!
//! ```sh
//! cargo bench -p profilis-peers --bench peers -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Several peers install something only one of them can have per process (the global `metrics`
//! recorder, a tracing subscriber, a fastrace reporter), so this binary runs each peer in a
//! child process of its own: itself again, with `PROFILIS_PEERS_PROCESS` naming the peer and the
//! same criterion arguments. Each peer gets the exporter or subscriber its users would install.
//! When every child is done the parent prints one table, from the estimates criterion saved in
//! this run: ns per call and the ratio of each to `#[profiled]`. Figures go to BENCHMARKS.md.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime};

use criterion::Criterion;

#[macro_use]
mod common {
    #[macro_use]
    pub mod peer_work;
}

// `PROCESS_VAR`, `work`, `profiled_work`, `autometrics_work`, `metrics_cached_work`: shared with
// `benches/peers_memory.rs`, defined here at the root.
peer_work!();

/// The rows of the table, in order: (process, bench id, what is measured).
const CASES: &[(&str, &str, &str)] = &[
    ("baseline", "bare", "bare function"),
    (
        "baseline",
        "two_instant_now",
        "two `Instant::now()` around it (reference)",
    ),
    ("profilis", "profiled", "`#[profiled]`, sampled in"),
    (
        "profilis",
        "profiled_sampled_out",
        "`#[profiled]`, sampled out (`sample = 0.0`)",
    ),
    (
        "profilis",
        "profiled_disabled",
        "`#[profiled]`, profiling switched off",
    ),
    (
        "autometrics",
        "autometrics",
        "autometrics 3 (`metrics` backend)",
    ),
    (
        "metrics",
        "metrics_lookup",
        "`metrics` `counter!` + `histogram!`, looked up per call, + clock",
    ),
    (
        "metrics",
        "metrics_cached",
        "`metrics` cached handles + clock",
    ),
    (
        "tracing",
        "tracing_instrument",
        "`tracing::instrument` + registry + duration layer",
    ),
    ("fastrace", "fastrace_trace", "`fastrace::trace` + reporter"),
];

/// The row the ratios are taken against.
const REFERENCE: &str = "profiled";

/// How often the scraper thread renders the exposition text of the peers that export to
/// Prometheus (see `start_scraper`).
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// The functions only this bench measures (the shared ones are in `common/peer_work.rs`).

#[profilis::profiled(sample = 0.0)]
#[inline(never)]
fn profiled_sampled_out_work() {
    black_box(());
}

#[tracing::instrument]
#[inline(never)]
fn tracing_work() {
    black_box(());
}

#[fastrace::trace]
#[inline(never)]
fn fastrace_work() {
    black_box(());
}

/// Hand-written `metrics` calls, the handles looked up in the recorder on every call.
#[inline(never)]
fn metrics_lookup_work() {
    let start = Instant::now();
    work();
    let seconds = start.elapsed().as_secs_f64();
    metrics::counter!("work_calls_total", "function" => "peers::work").increment(1);
    metrics::histogram!("work_duration_seconds", "function" => "peers::work").record(seconds);
}

// ---------------------------------------------------------------------------------------------
// Runners: `n` calls on the current thread. Most are closures `|n| repeat(n, some_work)` given to
// `Measure::case` in the set-ups below; fastrace needs root spans around its calls.

/// `n` calls of `f`. Always inlined into the runner that calls it, where `f` is a function item
/// or a closure: each call is a direct call, as in a hand-written loop.
#[inline(always)]
fn repeat(n: u64, f: impl Fn()) {
    for _ in 0..n {
        f();
    }
}

/// Calls per fastrace root span. `#[fastrace::trace]` records a span only under a local parent,
/// and a thread collects at most 10,240 spans per root, so the calls run in traces of this many
/// (the root's own cost, shared by them, is under 1 ns a call).
const FASTRACE_CALLS_PER_ROOT: u64 = 1000;

fn run_fastrace(n: u64) {
    let mut left = n;
    while left > 0 {
        let calls = left.min(FASTRACE_CALLS_PER_ROOT);
        let root = fastrace::Span::root("request", fastrace::collector::SpanContext::random());
        let _parent = root.set_local_parent();
        repeat(calls, fastrace_work);
        left -= calls;
    }
}

/// Runs `run(iters)` on each of `threads` threads at once; the time of the slowest thread.
fn on_threads(threads: usize, iters: u64, run: fn(u64)) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    run(iters);
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    })
}

/// Benches `run` as `peers_<id>/1_thread` and `peers_<id>/2_threads`.
fn bench(c: &mut Criterion, id: &str, run: fn(u64)) {
    let mut group = c.benchmark_group(format!("peers_{id}"));
    group.bench_function("1_thread", |b| {
        b.iter_custom(|iters| on_threads(1, iters, run))
    });
    group.bench_function("2_threads", |b| {
        b.iter_custom(|iters| on_threads(2, iters, run))
    });
    group.finish();
}

/// How a child measures each case: with criterion, or by running `PEERS_CALLS` calls of the
/// case `PEERS_ONLY` once on this thread, for `scripts/peers_callgrind.sh` to count the
/// instructions of `measured`.
enum Measure {
    Criterion(Box<Criterion>),
    Calls { calls: u64, only: String },
}

impl Measure {
    fn case(&mut self, id: &str, run: fn(u64)) {
        match self {
            Measure::Criterion(c) => bench(c, id, run),
            Measure::Calls { calls, only } if only == id => measured(run, *calls),
            Measure::Calls { .. } => {}
        }
    }
}

/// The calls callgrind counts (`--toggle-collect`).
#[inline(never)]
fn measured(run: fn(u64), calls: u64) {
    run(calls);
}

/// A thread that renders the exposition text every `SCRAPE_EVERY`, as Prometheus would (every
/// 15 s, typically). The `metrics-exporter-prometheus` recorder keeps every histogram sample
/// until a render (or its upkeep) folds them into buckets; without this, a run of hand-written
/// `metrics` calls would hold gigabytes of samples. Folding costs the same per sample whatever
/// the interval.
fn start_scraper(render: impl Fn() -> usize + Send + 'static) {
    std::thread::Builder::new()
        .name("scraper".into())
        .spawn(move || loop {
            std::thread::sleep(SCRAPE_EVERY);
            black_box(render());
        })
        .expect("scraper thread");
}

// ---------------------------------------------------------------------------------------------
// The peers' set-ups, one per process.

fn baseline(m: &mut Measure) {
    m.case("bare", |n| repeat(n, work));
    m.case("two_instant_now", |n| {
        repeat(n, || {
            let start = Instant::now();
            work();
            black_box(start.elapsed());
        })
    });
}

fn profilis(m: &mut Measure) {
    let exporter = profilis::Exporter::new()
        .without_listener()
        .enabled(true)
        .install()
        .expect("the profilis exporter installs");
    start_scraper(|| profilis::render().map_or(0, |t| t.len()));
    let run_profiled: fn(u64) = |n| repeat(n, profiled_work);
    m.case("profiled", run_profiled);
    m.case("profiled_sampled_out", |n| {
        repeat(n, profiled_sampled_out_work)
    });
    profilis::set_enabled(false);
    m.case("profiled_disabled", run_profiled);
    profilis::set_enabled(true);
    let report = exporter.shutdown();
    assert!(report.is_clean(), "the collector flushed: {report}");
    print_counts("profilis", &profilis::render().unwrap_or_default());
}

fn autometrics(m: &mut Measure) {
    // Its own Prometheus exporter: metrics-exporter-prometheus 0.17 with autometrics' buckets,
    // installed as the global `metrics` recorder.
    autometrics::prometheus_exporter::try_init().expect("autometrics' exporter installs");
    start_scraper(|| autometrics::prometheus_exporter::encode_to_string().map_or(0, |t| t.len()));
    m.case("autometrics", |n| repeat(n, autometrics_work));
    let text = autometrics::prometheus_exporter::encode_to_string().unwrap_or_default();
    print_counts("autometrics", &text);
}

fn metrics(m: &mut Measure) {
    // What a user of the `metrics` facade installs: metrics-exporter-prometheus, here with
    // profilis's default buckets so that the histogram is a bucketed one as profilis's is.
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&profilis::DEFAULT_BUCKETS)
        .expect("buckets")
        .install_recorder()
        .expect("the Prometheus recorder installs");
    let scraped = handle.clone();
    start_scraper(move || scraped.render().len());
    m.case("metrics_lookup", |n| repeat(n, metrics_lookup_work));
    m.case("metrics_cached", |n| repeat(n, metrics_cached_work));
    print_counts("metrics", &handle.render());
}

/// Prints the `_count` lines of the histograms in `text`: every call a peer recorded.
fn print_counts(peer: &str, text: &str) {
    for line in text.lines().filter(|l| l.contains("_count{")) {
        eprintln!("{peer}: {line}");
    }
}

/// A layer that times every span from creation to close and adds the durations up: the least a
/// subscriber that records span durations does (a real one also finds the span's histogram).
struct SpanDurations;

static TRACING_SPANS: AtomicU64 = AtomicU64::new(0);
static TRACING_NS: AtomicU64 = AtomicU64::new(0);

/// When a span was created, kept in its extensions.
struct Opened(Instant);

impl<S> tracing_subscriber::Layer<S> for SpanDurations
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        _attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Opened(Instant::now()));
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let opened = span.extensions().get::<Opened>().map(|o| o.0);
        if let Some(start) = opened {
            TRACING_SPANS.fetch_add(1, Ordering::Relaxed);
            TRACING_NS.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }
}

fn tracing(m: &mut Measure) {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(SpanDurations);
    tracing::subscriber::set_global_default(subscriber).expect("the subscriber installs");
    m.case("tracing_instrument", |n| repeat(n, tracing_work));
    eprintln!(
        "tracing: the layer timed {} spans",
        TRACING_SPANS.load(Ordering::Relaxed)
    );
}

/// A fastrace reporter that counts the spans it gets (a real one would send them somewhere).
struct CountingReporter;

static FASTRACE_SPANS: AtomicU64 = AtomicU64::new(0);

impl fastrace::collector::Reporter for CountingReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        FASTRACE_SPANS.fetch_add(spans.len() as u64, Ordering::Relaxed);
    }
}

fn fastrace(m: &mut Measure) {
    fastrace::set_reporter(CountingReporter, fastrace::collector::Config::default());
    m.case("fastrace_trace", run_fastrace);
    fastrace::flush();
    eprintln!(
        "fastrace: the reporter got {} spans",
        FASTRACE_SPANS.load(Ordering::Relaxed)
    );
}

// ---------------------------------------------------------------------------------------------
// The parent: one child per peer, then the table.

fn main() {
    match std::env::var(PROCESS_VAR) {
        Ok(process) => run_child(&process),
        Err(_) => run_parent(),
    }
}

fn run_child(process: &str) {
    let mut m = match std::env::var("PEERS_CALLS") {
        Ok(calls) => Measure::Calls {
            calls: calls.parse().expect("PEERS_CALLS is a number of calls"),
            only: std::env::var("PEERS_ONLY").expect("PEERS_ONLY names the case"),
        },
        Err(_) => Measure::Criterion(Box::new(Criterion::default().configure_from_args())),
    };
    match process {
        "baseline" => baseline(&mut m),
        "profilis" => profilis(&mut m),
        "autometrics" => autometrics(&mut m),
        "metrics" => metrics(&mut m),
        "tracing" => tracing(&mut m),
        "fastrace" => fastrace(&mut m),
        other => panic!("{PROCESS_VAR}={other}: not a peer of this bench"),
    }
    if let Measure::Criterion(c) = m {
        c.final_summary();
    }
}

/// Where criterion saves its estimates: `CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else the workspace's `target/criterion` (this package is a member in `peers/`). Set for the
/// children, so that they save where the parent reads.
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion")
}

fn run_parent() {
    let started = SystemTime::now();
    let home = criterion_home();
    let exe = std::env::current_exe().expect("the bench's own path");
    let mut processes: Vec<&str> = CASES.iter().map(|(p, _, _)| *p).collect();
    processes.dedup();
    for process in processes {
        let status = Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env(PROCESS_VAR, process)
            .env("CRITERION_HOME", &home)
            .status()
            .expect("the bench runs itself");
        assert!(status.success(), "the {process} peers failed: {status}");
    }
    print_table(&home, started);
}

/// Nanoseconds per call of `peers_<id>/<threads>`, if criterion measured it in this run.
fn estimate(home: &Path, id: &str, threads: &str, since: SystemTime) -> Option<f64> {
    let path = home
        .join(format!("peers_{id}"))
        .join(threads)
        .join("new")
        .join("estimates.json");
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if modified < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let point = |name: &str| json.get(name)?.get("point_estimate")?.as_f64();
    point("slope").or_else(|| point("mean"))
}

fn print_table(home: &Path, since: SystemTime) {
    let ns = |id: &str, threads: &str| estimate(home, id, threads, since);
    let threads = ["1_thread", "2_threads"];
    if CASES
        .iter()
        .all(|(_, id, _)| threads.iter().all(|t| ns(id, t).is_none()))
    {
        return; // nothing measured: a test run, or a filter that matched nothing
    }
    let cell = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.2}"));
    let ratio = |v: Option<f64>, reference: Option<f64>| match (v, reference) {
        (Some(v), Some(r)) if r > 0.0 => format!("{:.2}×", v / r),
        _ => "—".to_owned(),
    };
    println!();
    println!(
        "| case | ns/call, 1 thread | vs `#[profiled]` | ns/call, 2 threads | vs `#[profiled]` |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (_, id, label) in CASES {
        let one = ns(id, threads[0]);
        let two = ns(id, threads[1]);
        println!(
            "| {label} | {} | {} | {} | {} |",
            cell(one),
            ratio(one, ns(REFERENCE, threads[0])),
            cell(two),
            ratio(two, ns(REFERENCE, threads[1])),
        );
    }
    println!();
    for t in threads {
        let profiled = ns(REFERENCE, t);
        let check = |peer: &str, times: f64, name: &str| match (ns(peer, t), profiled) {
            (Some(p), Some(r)) if r > 0.0 => {
                let x = p / r;
                let met = if x >= times { "met" } else { "NOT met" };
                println!(
                    "{t}: `#[profiled]` is {x:.1}× cheaper than {name} (target ≥ {times}×: {met})"
                );
            }
            _ => {}
        };
        check("autometrics", 10.0, "autometrics");
        check("metrics_cached", 2.0, "cached `metrics` handles + clock");
    }
}
