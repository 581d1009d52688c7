//! The functions `benches/peers.rs` and `benches/peers_memory.rs` both measure, as a macro each
//! bench invokes at its root rather than as items of this module: `#[profiled]` and autometrics
//! label every call with `module_path!()`, and autometrics looks its series up by those labels
//! on every call, so the functions must stay in each bench's root module (`peers`,
//! `peers_memory`) for the labels and the cost of those look-ups to stay what they were. Paths
//! are written in full: the invoking file has its own `use` lines.

/// Defines `PROCESS_VAR`, `work`, `profiled_work`, `autometrics_work` and `metrics_cached_work`
/// where it is invoked.
macro_rules! peer_work {
    () => {
        /// Names the peer a child process measures.
        const PROCESS_VAR: &str = "PROFILIS_PEERS_PROCESS";

        /// The function every peer instruments: empty, never inlined.
        #[inline(never)]
        fn work() {
            std::hint::black_box(());
        }

        #[profilis::profiled]
        #[inline(never)]
        fn profiled_work() {
            std::hint::black_box(());
        }

        #[autometrics::autometrics]
        #[inline(never)]
        fn autometrics_work() {
            std::hint::black_box(());
        }

        /// The handles of `metrics_cached_work`, registered once.
        struct Handles {
            calls: metrics::Counter,
            duration: metrics::Histogram,
        }

        static HANDLES: std::sync::OnceLock<Handles> = std::sync::OnceLock::new();

        /// Hand-written `metrics` calls through handles registered once (after the recorder).
        #[inline(never)]
        fn metrics_cached_work() {
            // Braces, not parentheses: rustfmt leaves this whole macro unformatted when a call in
            // it has arguments that are not expressions (`=>`) between parentheses.
            let handles = HANDLES.get_or_init(|| Handles {
                calls: metrics::counter! { "work_calls_total", "function" => "peers::work" },
                duration: metrics::histogram! {
                    "work_duration_seconds", "function" => "peers::work"
                },
            });
            let start = std::time::Instant::now();
            work();
            let seconds = start.elapsed().as_secs_f64();
            handles.calls.increment(1);
            handles.duration.record(seconds);
        }
    };
}
