//! `install_exporter()` and its builder [`Exporter`]: installs the `metrics-exporter-prometheus`
//! recorder with bucketed histograms for the profilis families, starts the collector with the
//! facade sink (plus any extra sinks) and the built-in `/metrics` listener.
//!
//! Every setting has a builder method; the `PROFILIS_*` environment variables are defaults that
//! code overrides.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use profilis_core::metric_names as names;
use profilis_core::{
    sampler, Batch, Collector, CollectorConfig, DropPolicy, FacadeSink, GlobalLabels, Sink,
    SinkError, DEFAULT_BUCKETS,
};

use crate::console::ConsoleSink;
use crate::error::Error;
use crate::histograms::Histograms;
use crate::jsonl::{JsonlConfig, JsonlSink};
use crate::listener::{self, IpNet, Listener, ListenerConfig, DEFAULT_LISTEN};

/// Run the recorder's upkeep (which folds recorded histogram samples into buckets and frees
/// them) after this many HTTP/DB events, so memory stays bounded when nothing scrapes ...
const UPKEEP_EVENTS: u64 = 16_384;
/// ... and at least this often.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Checks histogram buckets: at least one, all finite and positive, strictly increasing.
///
/// # Errors
/// [`Error::InvalidBuckets`] naming the buckets and what is wrong.
pub fn validate_buckets(values: &[f64]) -> Result<Vec<f64>, Error> {
    Ok(profilis_core::validate_buckets(values)?)
}

/// Parses comma-separated seconds (`"0.01,0.1,1"`), as in `PROFILIS_BUCKETS`.
///
/// # Errors
/// [`Error::InvalidBuckets`] if a value is not a number or the buckets are not valid.
pub fn parse_buckets(s: &str) -> Result<Vec<f64>, Error> {
    let values: Result<Vec<f64>, _> = s
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::parse::<f64>)
        .collect();
    let values = values.map_err(|_| Error::InvalidBuckets {
        value: format!("{s:?}"),
        reason: "one is not a number",
    })?;
    validate_buckets(&values)
}

/// The `PROFILIS_*` variables, read and checked.
#[derive(Default)]
struct EnvSettings {
    listen: Option<SocketAddr>,
    service: Option<String>,
    instance: Option<String>,
    worker: Option<String>,
    sample_rate: Option<f64>,
    buckets: Option<Vec<f64>>,
}

fn env_var(name: &'static str) -> Option<String> {
    std::env::var(name).ok()
}

fn env_label(name: &'static str) -> Result<Option<String>, Error> {
    match env_var(name) {
        Some(v) if v.trim().is_empty() => Err(Error::Env {
            name,
            value: v,
            expected: "a non-empty label value",
        }),
        other => Ok(other),
    }
}

impl EnvSettings {
    fn read() -> Result<EnvSettings, Error> {
        let listen = match env_var("PROFILIS_LISTEN") {
            Some(v) => Some(listener::parse_listen_addr(&v).map_err(|_| Error::Env {
                name: "PROFILIS_LISTEN",
                value: v,
                expected: "host:port, such as 127.0.0.1:9464 or 0.0.0.0:9464",
            })?),
            None => None,
        };
        let sample_rate = match env_var("PROFILIS_SAMPLE_RATE") {
            Some(v) => match v.trim().parse::<f64>() {
                Ok(rate) if sampler::validate_rate(rate).is_ok() => Some(rate),
                _ => {
                    return Err(Error::Env {
                        name: "PROFILIS_SAMPLE_RATE",
                        value: v,
                        expected: "a number in 0..=1",
                    })
                }
            },
            None => None,
        };
        let buckets = match env_var("PROFILIS_BUCKETS") {
            Some(v) => Some(parse_buckets(&v).map_err(|_| Error::Env {
                name: "PROFILIS_BUCKETS",
                value: v,
                expected: "comma-separated finite, positive seconds in increasing order",
            })?),
            None => None,
        };
        Ok(EnvSettings {
            listen,
            service: env_label("PROFILIS_SERVICE")?,
            instance: env_label("PROFILIS_INSTANCE")?,
            worker: env_label("PROFILIS_WORKER")?,
            sample_rate,
            buckets,
        })
    }
}

/// Buckets of the three histogram families.
#[derive(Debug, Clone, PartialEq)]
struct Buckets {
    function: Vec<f64>,
    http: Vec<f64>,
    db: Vec<f64>,
}

/// profilis's recorder, once installed: it stays the global recorder for the process.
#[derive(Clone)]
struct Installed {
    handle: PrometheusHandle,
    buckets: Buckets,
    histograms: Arc<Histograms>,
}

impl Installed {
    /// The recorder's exposition text followed by the function histograms.
    fn render(&self) -> String {
        let mut text = self.handle.render();
        self.histograms.render_into(&mut text);
        text
    }
}

static RECORDER: Mutex<Option<Installed>> = Mutex::new(None);

fn install_recorder(buckets: &Buckets) -> Result<Installed, Error> {
    let mut installed = RECORDER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = installed.as_ref() {
        return if &existing.buckets == buckets {
            Ok(existing.clone())
        } else {
            Err(Error::BucketsFixed)
        };
    }
    // profilis's own histograms are rendered from bucket counts (see `histograms`), so the
    // recorder needs no bucket matchers for them; the application's histograms keep its
    // defaults.
    let builder = PrometheusBuilder::new();
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| Error::RecorderInstalled)?;
    let new = Installed {
        handle,
        buckets: buckets.clone(),
        histograms: Arc::new(Histograms::default()),
    };
    *installed = Some(new.clone());
    Ok(new)
}

/// The Prometheus exposition text of profilis's recorder, or `None` before
/// [`install_exporter`] has run. For applications that serve `/metrics` from their own router.
pub fn render() -> Option<String> {
    let installed = RECORDER.lock().unwrap_or_else(|e| e.into_inner()).clone();
    installed.map(|i| i.render())
}

/// The facade sink (counters and gauges), the duration histograms as bucket counts, and the
/// recorder's upkeep (every `UPKEEP_EVENTS` events and every `UPKEEP_INTERVAL`), which keeps
/// the application's own histograms bounded.
struct PrometheusSink {
    facade: FacadeSink,
    labels: GlobalLabels,
    installed: Installed,
    since_upkeep: u64,
    last_upkeep: Instant,
}

impl PrometheusSink {
    fn new(labels: GlobalLabels, installed: Installed) -> PrometheusSink {
        PrometheusSink {
            facade: FacadeSink::new(labels.clone()).without_histograms(),
            labels,
            installed,
            since_upkeep: 0,
            last_upkeep: Instant::now(),
        }
    }
}

impl Sink for PrometheusSink {
    fn write(&mut self, batch: &Batch<'_>) -> Result<(), SinkError> {
        let result = self.facade.write(batch);
        self.installed.histograms.add(&self.labels, batch.counts);
        self.since_upkeep += batch.events.len() as u64;
        if self.since_upkeep >= UPKEEP_EVENTS || self.last_upkeep.elapsed() >= UPKEEP_INTERVAL {
            self.installed.handle.run_upkeep();
            self.since_upkeep = 0;
            self.last_upkeep = Instant::now();
        }
        result
    }

    fn wants_events(&self) -> bool {
        self.facade.wants_events()
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.installed.handle.run_upkeep();
        Ok(())
    }

    fn name(&self) -> &str {
        "prometheus"
    }
}

/// Builder of the exporter: everything `install_exporter()` does, set in code.
///
/// ```no_run
/// # fn main() -> Result<(), profilis_exporters::Error> {
/// let _profilis = profilis_exporters::Exporter::new()
///     .service("shop")
///     .listen("127.0.0.1:9464")?
///     .buckets(&[0.001, 0.01, 0.1, 1.0])?
///     .sample_rate(0.5)?
///     .install()?;
/// # Ok(()) }
/// ```
#[derive(Default)]
#[must_use = "the exporter does nothing until installed"]
pub struct Exporter {
    service: Option<String>,
    instance: Option<String>,
    worker: Option<String>,
    listen: Option<SocketAddr>,
    /// Set by [`Exporter::without_listener`]; the listener runs by default.
    no_listener: bool,
    allow: Vec<IpNet>,
    bearer_token: Option<String>,
    buckets: Option<Vec<f64>>,
    function_buckets: Option<Vec<f64>>,
    http_buckets: Option<Vec<f64>>,
    db_buckets: Option<Vec<f64>>,
    sample_rate: Option<f64>,
    collector: CollectorConfig,
    sinks: Vec<Box<dyn Sink>>,
    jsonl: Vec<JsonlConfig>,
}

impl Exporter {
    /// An exporter with every setting at its default (or its `PROFILIS_*` variable).
    pub fn new() -> Exporter {
        Exporter::default()
    }

    /// The `service` label (default `PROFILIS_SERVICE`, else the executable's name).
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// The `instance` label (default `PROFILIS_INSTANCE`, else the host name).
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// The `worker` label (default `PROFILIS_WORKER`, else the process id).
    pub fn worker(mut self, worker: impl Into<String>) -> Self {
        self.worker = Some(worker.into());
        self
    }

    /// Where the built-in listener binds (default `PROFILIS_LISTEN`, else `127.0.0.1:9464`).
    ///
    /// # Errors
    /// [`Error::InvalidListenAddr`] if `addr` is not `host:port`.
    pub fn listen(mut self, addr: &str) -> Result<Self, Error> {
        self.listen = Some(listener::parse_listen_addr(addr)?);
        Ok(self)
    }

    /// Where the built-in listener binds, as an address (port 0 picks a free port).
    pub fn listen_addr(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// No built-in listener: serve [`render`] from your own router instead.
    pub fn without_listener(mut self) -> Self {
        self.no_listener = true;
        self
    }

    /// Only clients in these networks (`"10.0.0.0/8,127.0.0.1"`) may use the listener; others
    /// get 403.
    ///
    /// # Errors
    /// [`Error::Listener`] naming an entry that is not an address or network.
    pub fn allow(mut self, networks: &str) -> Result<Self, Error> {
        self.allow = listener::parse_allow_list(networks)?;
        Ok(self)
    }

    /// Requests must carry `Authorization: Bearer <token>`; others get 401.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Buckets (seconds) of every profilis histogram family (default `PROFILIS_BUCKETS`, else
    /// [`DEFAULT_BUCKETS`]).
    ///
    /// # Errors
    /// [`Error::InvalidBuckets`] if empty, not finite, not positive or not increasing.
    pub fn buckets(mut self, values: &[f64]) -> Result<Self, Error> {
        self.buckets = Some(validate_buckets(values)?);
        Ok(self)
    }

    /// Buckets of `profilis_function_duration_seconds` only.
    ///
    /// # Errors
    /// As [`Exporter::buckets`].
    pub fn function_buckets(mut self, values: &[f64]) -> Result<Self, Error> {
        self.function_buckets = Some(validate_buckets(values)?);
        Ok(self)
    }

    /// Buckets of `profilis_http_request_duration_seconds` only.
    ///
    /// # Errors
    /// As [`Exporter::buckets`].
    pub fn http_buckets(mut self, values: &[f64]) -> Result<Self, Error> {
        self.http_buckets = Some(validate_buckets(values)?);
        Ok(self)
    }

    /// Buckets of `profilis_db_query_duration_seconds` only.
    ///
    /// # Errors
    /// As [`Exporter::buckets`].
    pub fn db_buckets(mut self, values: &[f64]) -> Result<Self, Error> {
        self.db_buckets = Some(validate_buckets(values)?);
        Ok(self)
    }

    /// The global sample rate (default `PROFILIS_SAMPLE_RATE`, else 1.0).
    ///
    /// # Errors
    /// [`Error::SampleRate`] if not a number in `0..=1`.
    pub fn sample_rate(mut self, rate: f64) -> Result<Self, Error> {
        self.sample_rate = Some(sampler::validate_rate(rate)?);
        Ok(self)
    }

    /// Events each recording thread may have queued (default 2048).
    pub fn queue_size(mut self, events: usize) -> Self {
        self.collector.queue_size = events;
        self
    }

    /// Most events per batch (default 128).
    pub fn batch_max(mut self, events: usize) -> Self {
        self.collector.batch_max = events;
        self
    }

    /// How often the collector flushes (default 100 ms).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.collector.flush_interval = interval;
        self
    }

    /// Which event a full queue drops (default the new one).
    pub fn drop_policy(mut self, policy: DropPolicy) -> Self {
        self.collector.drop_policy = policy;
        self
    }

    /// How long dropping the guard waits for the last flush (default 5 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.collector.shutdown_timeout = timeout;
        self
    }

    /// Start with profiling on or off (default: on unless `PROFILIS_DISABLED=1`).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.collector.enabled = Some(enabled);
        self
    }

    /// Another sink that gets every batch, beside the Prometheus one.
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Events as JSON on the console: `.console(ConsoleFormat::Pretty)` for stdout, or
    /// `.console(ConsoleSink::to_writer(w))` for any writer. See [`crate::console`].
    pub fn console(self, sink: impl Into<ConsoleSink>) -> Self {
        self.sink(sink.into())
    }

    /// Events appended to rotating JSONL files (see [`crate::jsonl`]). The directory is
    /// created and checked by [`Exporter::install`]; dropping the guard writes the last events
    /// and rotates the active file.
    pub fn jsonl(mut self, config: JsonlConfig) -> Self {
        self.jsonl.push(config);
        self
    }

    /// Installs the recorder, starts the collector and the listener.
    ///
    /// # Errors
    /// Any [`Error`]: a bad setting or environment variable, a `metrics` recorder installed by
    /// someone else, a collector already running, the listen address in use, a JSONL
    /// directory that cannot be created or written.
    pub fn install(self) -> Result<ExporterGuard, Error> {
        let env = EnvSettings::read()?;
        self.collector.validate()?;
        let all = match self.buckets.or(env.buckets) {
            Some(b) => b,
            None => DEFAULT_BUCKETS.to_vec(),
        };
        let buckets = Buckets {
            function: self.function_buckets.unwrap_or_else(|| all.clone()),
            http: self.http_buckets.unwrap_or_else(|| all.clone()),
            db: self.db_buckets.unwrap_or(all),
        };
        let labels = GlobalLabels {
            service: self.service.or(env.service).unwrap_or_else(default_service),
            instance: self
                .instance
                .or(env.instance)
                .unwrap_or_else(default_instance),
            worker: self
                .worker
                .or(env.worker)
                .unwrap_or_else(|| std::process::id().to_string()),
        };
        let installed = install_recorder(&buckets)?;
        let jsonl = self
            .jsonl
            .into_iter()
            .map(JsonlSink::new)
            .collect::<Result<Vec<_>, _>>()?;
        // Health metrics exist from the start, not only after the first batch.
        metrics::counter!(names::EVENTS_DROPPED_TOTAL).absolute(0);
        metrics::gauge!(names::QUEUE_DEPTH).set(0.0);
        if let Some(rate) = self.sample_rate.or(env.sample_rate) {
            sampler::set_global_rate(rate)?;
        }
        let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(PrometheusSink::new(
            labels.clone(),
            installed.clone(),
        ))];
        sinks.extend(self.sinks);
        sinks.extend(jsonl.into_iter().map(|s| Box::new(s) as Box<dyn Sink>));
        let mut collector = self.collector;
        // Durations are filed on the calling thread in each histogram's own buckets.
        collector.function_buckets = buckets.function.clone();
        collector.http_buckets = buckets.http.clone();
        collector.db_buckets = buckets.db.clone();
        let collector = Collector::start(collector, sinks)?;
        let listener = if !self.no_listener {
            let render_from = installed.clone();
            let config = ListenerConfig {
                addr: self.listen.or(env.listen).unwrap_or(DEFAULT_LISTEN),
                allow: self.allow,
                bearer_token: self.bearer_token,
                ..ListenerConfig::default()
            };
            // On error the collector is dropped here, which stops it.
            Some(listener::start(
                config,
                Arc::new(move || render_from.render()),
            )?)
        } else {
            None
        };
        Ok(ExporterGuard {
            collector: Some(collector),
            listener,
            installed,
            labels,
        })
    }
}

fn default_service() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn default_instance() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    if host.is_empty() {
        "localhost".to_owned()
    } else {
        host
    }
}

/// Reads the `PROFILIS_*` variables and installs everything: the recorder, the collector with
/// the facade sink, and the built-in listener. Keep the guard alive; dropping it flushes.
///
/// ```no_run
/// fn main() -> Result<(), profilis_exporters::Error> {
///     let _profilis = profilis_exporters::install_exporter()?;
///     // ... run the service; Prometheus scrapes http://127.0.0.1:9464/metrics
///     Ok(())
/// }
/// ```
///
/// # Errors
/// As [`Exporter::install`].
pub fn install_exporter() -> Result<ExporterGuard, Error> {
    Exporter::new().install()
}

/// What [`install_exporter`] started. Dropping it drains every queued event into the recorder
/// (and the other sinks), then stops the listener. The recorder stays installed.
#[must_use = "dropping the guard stops profiling"]
pub struct ExporterGuard {
    collector: Option<Collector>,
    listener: Option<Listener>,
    installed: Installed,
    labels: GlobalLabels,
}

impl ExporterGuard {
    /// The Prometheus exposition text now.
    pub fn render(&self) -> String {
        self.installed.render()
    }

    /// Where the built-in listener listens (`None` without one).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().map(Listener::local_addr)
    }

    /// The service, instance and worker labels in use.
    pub fn labels(&self) -> &GlobalLabels {
        &self.labels
    }

    /// Flushes and stops; returns whether the flush finished within the shutdown timeout.
    pub fn shutdown(mut self) -> bool {
        self.stop()
    }

    fn stop(&mut self) -> bool {
        let flushed = self.collector.take().is_none_or(Collector::shutdown);
        if let Some(listener) = self.listener.take() {
            listener.shutdown();
        }
        flushed
    }
}

impl Drop for ExporterGuard {
    fn drop(&mut self) {
        self.stop();
    }
}
