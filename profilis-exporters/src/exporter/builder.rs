//! [`Exporter`], the builder of everything `install_exporter()` does: every setting has a
//! method, the `PROFILIS_*` variables are defaults that code overrides.

#[cfg(feature = "listener")]
use std::net::SocketAddr;
use std::time::Duration;

use profilis_core::{
    set_global_rate, validate_rate, Buckets, Collector, CollectorConfig, DropPolicy, Kind,
    NonBlocking, Sink, StartError,
};

use super::env::{default_instance, default_service, EnvSettings};
use super::prometheus::{install_recorder, PrometheusSink};
use super::ExporterGuard;
use crate::error::Error;
use crate::labels::GlobalLabels;
#[cfg(feature = "listener")]
use crate::listener::{self, IpNet, ListenerConfig, DEFAULT_LISTEN};
use crate::metric_names;

/// Builder of the exporter: everything `install_exporter()` does, set in code.
///
/// ```no_run
/// # use profilis_exporters as profilis;
/// # fn main() -> Result<(), profilis::Error> {
/// let _profilis = profilis::Exporter::new()
///     .service("shop")
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
    #[cfg(feature = "listener")]
    listen: Option<SocketAddr>,
    /// Set by [`Exporter::without_listener`]; the listener runs by default.
    #[cfg(feature = "listener")]
    no_listener: bool,
    #[cfg(feature = "listener")]
    allow: Vec<IpNet>,
    #[cfg(feature = "listener")]
    before_scrape: Option<crate::listener::BeforeScrape>,
    #[cfg(feature = "dashboard")]
    bearer_token: Option<String>,
    buckets: Option<Vec<f64>>,
    kind_buckets: Vec<(&'static Kind, Vec<f64>)>,
    metric_buckets: Vec<(crate::MetricMatch, Vec<f64>)>,
    sample_rate: Option<f64>,
    collector: CollectorConfig,
    sinks: Vec<Box<dyn Sink>>,
    #[cfg(feature = "jsonl")]
    jsonl: Vec<crate::jsonl::JsonlConfig>,
    #[cfg(feature = "dashboard")]
    dashboard: Option<bool>,
    textfile: Option<(std::path::PathBuf, Duration)>,
    #[cfg(feature = "pushgateway")]
    pushgateway: Option<crate::pushgateway::Pushgateway>,
    process_metrics: Option<bool>,
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
    /// [`Error::Listener`] ([`ListenerError::InvalidAddr`](crate::listener::ListenerError))
    /// if `addr` is not `host:port`.
    #[cfg(feature = "listener")]
    #[cfg_attr(docsrs, doc(cfg(feature = "listener")))]
    pub fn listen(mut self, addr: &str) -> Result<Self, Error> {
        self.listen = Some(listener::parse_listen_addr(addr)?);
        Ok(self)
    }

    /// Where the built-in listener binds, as an address (port 0 picks a free port).
    #[cfg(feature = "listener")]
    #[cfg_attr(docsrs, doc(cfg(feature = "listener")))]
    pub fn listen_addr(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Runs `hook` before each `/metrics` answer of the built-in listener and awaits the
    /// future it returns, for the listener's connection timeout at most (see
    /// [`ListenerConfig::before_scrape`](crate::listener::ListenerConfig::before_scrape)): a
    /// standalone exporter refreshes its metrics there.
    ///
    /// Only the built-in listener's `/metrics` runs the hook: [`render`](crate::render) and
    /// [`render_as`](crate::render_as), the [textfile](Self::textfile), the Pushgateway and a
    /// `/metrics` route of your own (with [`without_listener`](Self::without_listener), the hook
    /// is never run) do not; call your update yourself before those.
    #[cfg(feature = "listener")]
    #[cfg_attr(docsrs, doc(cfg(feature = "listener")))]
    pub fn before_scrape<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.before_scrape = Some(std::sync::Arc::new(move || Box::pin(hook())));
        self
    }

    /// No built-in listener: serve [`render`](crate::render) from your own router instead.
    #[cfg(feature = "listener")]
    #[cfg_attr(docsrs, doc(cfg(feature = "listener")))]
    pub fn without_listener(mut self) -> Self {
        self.no_listener = true;
        self
    }

    /// Only clients in these networks (`"10.0.0.0/8,127.0.0.1"`) may use the listener; others
    /// get 403. The string must name at least one network: to let every client in, do not call
    /// this. Entries are parsed by [`listener::parse_allow_list`]. Without this call,
    /// `PROFILIS_ALLOW` (the same syntax) gives the list.
    ///
    /// # Errors
    /// [`Error::Listener`]: [`ListenerError::InvalidNetwork`](crate::listener::ListenerError)
    /// naming an entry that is not an address or network, or
    /// [`ListenerError::EmptyAllowList`](crate::listener::ListenerError) when the string names
    /// none (`""`, `" , "`).
    #[cfg(feature = "listener")]
    #[cfg_attr(docsrs, doc(cfg(feature = "listener")))]
    pub fn allow(mut self, networks: &str) -> Result<Self, Error> {
        self.allow = listener::parse_allow_list(networks)?;
        Ok(self)
    }

    /// Requests must carry `Authorization: Bearer <token>`; others get 401: those of the
    /// built-in listener (`/metrics` and the dashboard's JSON), and those of the `/metrics`
    /// and dashboard handlers mounted in a router of your own (`profilis::http`, through
    /// [`exposition::scrape_authorized`](crate::exposition::scrape_authorized)).
    ///
    /// Without this call, `PROFILIS_BEARER_TOKEN` gives the token. A token that is empty or
    /// not visible ASCII makes [`Exporter::install`] fail with [`Error::BearerToken`].
    #[cfg(feature = "dashboard")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Serve the live dashboard (`/`, `/metrics.json`, `/errors.json`, `/slowest.json`, see
    /// [`dashboard`](crate::dashboard)) or not. Default `PROFILIS_DASHBOARD` (`1`/`true`/`on`,
    /// `0`/`false`/`off`), else on only when the built-in listener binds a loopback address
    /// (so off with [`Exporter::without_listener`]: turn it on to mount the dashboard's
    /// handlers in your own router). Off, no dashboard sink is registered (calls pay nothing
    /// for it) and those paths answer 404.
    #[cfg(feature = "dashboard")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
    pub fn dashboard(mut self, on: bool) -> Self {
        self.dashboard = Some(on);
        self
    }

    /// Buckets (seconds) of the duration histogram of every kind without buckets of its own
    /// (default `PROFILIS_BUCKETS`, else [`DEFAULT_BUCKETS`](profilis_core::DEFAULT_BUCKETS)).
    ///
    /// # Errors
    /// [`Error::Config`] ([`ConfigError::Buckets`](profilis_core::ConfigError)) if empty, not
    /// finite, not positive or not increasing.
    pub fn buckets(mut self, values: &[f64]) -> Result<Self, Error> {
        self.buckets = Some(profilis_core::validate_buckets(values)?);
        Ok(self)
    }

    /// Buckets of the duration histogram of `kind` only (`&profilis::HTTP` for
    /// `profilis_http_request_duration_seconds`, say).
    ///
    /// # Errors
    /// As [`Exporter::buckets`].
    pub fn kind_buckets(mut self, kind: &'static Kind, values: &[f64]) -> Result<Self, Error> {
        // Checked now, applied at install in order: a later call for a kind wins.
        let values = profilis_core::validate_buckets(values)?;
        self.kind_buckets.push((kind, values));
        Ok(self)
    }

    /// Buckets of the application's own histograms (`metrics::histogram!`) that `matcher`
    /// matches: by full name, prefix or suffix, as `/metrics` shows the name. A histogram
    /// matched by none gets the buckets of [`Exporter::buckets`]; the kinds' duration
    /// histograms are set with [`Exporter::kind_buckets`] instead.
    ///
    /// When several match, the most specific wins: a full name, then the longest prefix or
    /// suffix, a suffix over a prefix of the same length (see [`MetricMatch`](crate::MetricMatch)).
    /// Default `PROFILIS_METRIC_BUCKETS`
    /// (`checkout_seconds=0.1,0.5,1;http_*=0.01,0.1,1;*_bytes=1000,100000`); a matcher set here
    /// replaces the same matcher there, and a later call for a matcher replaces an earlier one.
    ///
    /// ```no_run
    /// # use profilis_exporters as profilis;
    /// # fn main() -> Result<(), profilis::Error> {
    /// use profilis::{Exporter, MetricMatch};
    ///
    /// let _profilis = Exporter::new()
    ///     .metric_buckets(MetricMatch::suffix("_bytes"), &[1e3, 1e4, 1e5, 1e6])?
    ///     .metric_buckets(MetricMatch::full("checkout_seconds"), &[0.1, 0.5, 1.0, 5.0])?
    ///     .install()?;
    /// metrics::histogram!("http_response_size_bytes").record(5120.0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::MetricBuckets`]: [`MetricBucketsError::Matcher`](crate::MetricBucketsError)
    /// if `matcher` is empty or has characters a metric name cannot have (or starts a name
    /// with a digit), [`MetricBucketsError::Buckets`](crate::MetricBucketsError) if `values`
    /// are empty, not finite or not increasing (unlike duration buckets they may be zero or
    /// negative).
    pub fn metric_buckets(
        mut self,
        matcher: crate::MetricMatch,
        values: &[f64],
    ) -> Result<Self, Error> {
        matcher.validate()?;
        let values = crate::metric_buckets::validate_metric_bounds(&matcher, values)?;
        self.metric_buckets.push((matcher, values));
        Ok(self)
    }

    /// The global sample rate (default `PROFILIS_SAMPLE_RATE`, else 1.0).
    ///
    /// # Errors
    /// [`Error::Config`] ([`ConfigError::SampleRate`](profilis_core::ConfigError)) if not a
    /// number in `0..=1`.
    pub fn sample_rate(mut self, rate: f64) -> Result<Self, Error> {
        self.sample_rate = Some(validate_rate(rate)?);
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

    /// Another sink that gets every batch, beside the Prometheus one. It runs on a thread of
    /// its own ([`NonBlocking`]), as the JSONL and console sinks do: if it waits, `/metrics`
    /// and the other sinks do not.
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Events as JSON on the console: `.console(ConsoleFormat::Pretty)` for stdout, or
    /// `.console(ConsoleSink::to_writer(w))` for any writer. See
    /// [`ConsoleSink`](crate::ConsoleSink).
    #[cfg(feature = "console")]
    #[cfg_attr(docsrs, doc(cfg(feature = "console")))]
    pub fn console(self, sink: impl Into<crate::console::ConsoleSink>) -> Self {
        self.sink(sink.into())
    }

    /// Events appended to rotating JSONL files (see [`JsonlSink`](crate::JsonlSink)). The
    /// directory is created and checked by [`Exporter::install`]; dropping the guard writes
    /// the last events and rotates the active file. Each JSONL sink needs a directory of its
    /// own: two naming one directory make `install` fail with
    /// [`JsonlError::SharedDir`](crate::JsonlError::SharedDir), and a directory another sink
    /// (of any process) writes to with [`JsonlError::InUse`](crate::JsonlError::InUse).
    #[cfg(feature = "jsonl")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jsonl")))]
    pub fn jsonl(mut self, config: crate::jsonl::JsonlConfig) -> Self {
        self.jsonl.push(config);
        self
    }

    /// Writes the exposition to `path` for node_exporter's textfile collector (see
    /// [`write_textfile`](crate::write_textfile)) every `interval`, from a thread of its
    /// own: the application never waits on it. [`Exporter::install`] writes it once first (so
    /// a directory that cannot be written fails the install); dropping the guard writes it a
    /// last time, after the last flush. A failed periodic write is retried at the next
    /// interval, counted in `profilis_textfile_failures_total` and said once on stderr.
    ///
    /// The file has the page of `/metrics` without the families that are facts of the
    /// writing process, with no labels, which node_exporter would refuse as clashing with its
    /// own or with another program's file: the process metrics and profilis's own health
    /// metrics ([`metric_names`](crate::metric_names): dropped events, queue depth, failures).
    ///
    /// ```no_run
    /// # use profilis_exporters as profilis;
    /// # fn main() -> Result<(), profilis::Error> {
    /// let _profilis = profilis::Exporter::new()
    ///     .textfile("/var/lib/prometheus/node-exporter/shop.prom", std::time::Duration::from_secs(15))?
    ///     .install()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Textfile`]: [`TextfileError::NotProm`](crate::TextfileError) if the file name
    /// does not end in `.prom`, [`TextfileError::Interval`](crate::TextfileError) if
    /// `interval` is zero. A missing or unwritable directory fails [`Exporter::install`].
    pub fn textfile(
        mut self,
        path: impl Into<std::path::PathBuf>,
        interval: Duration,
    ) -> Result<Self, Error> {
        let path = path.into();
        crate::textfile::check_name(&path)?;
        if interval.is_zero() {
            return Err(crate::TextfileError::Interval { path, interval }.into());
        }
        self.textfile = Some((path, interval));
        Ok(self)
    }

    /// Push to this Pushgateway: [`ExporterGuard::push`](super::ExporterGuard::push) at any
    /// time, and when the guard drops (after the last flush) as
    /// [`Pushgateway::push_on_drop`](crate::Pushgateway::push_on_drop) says (`PUT` by
    /// default).
    #[cfg(feature = "pushgateway")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pushgateway")))]
    pub fn pushgateway(mut self, gateway: crate::pushgateway::Pushgateway) -> Self {
        self.pushgateway = Some(gateway);
        self
    }

    /// Put the process metrics on every page, or not: `process_cpu_seconds_total` (a counter),
    /// `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
    /// `process_virtual_memory_max_bytes`, `process_open_fds`, `process_max_fds`,
    /// `process_start_time_seconds` and `process_threads` (gauges), named as the Prometheus
    /// client guidelines name them (see [`metric_names`](crate::metric_names)). Default
    /// `PROFILIS_PROCESS_METRICS` (`1`/`true`/`on`, `0`/`false`/`off`), else on.
    ///
    /// They are read from the operating system when a page is rendered (a scrape, [`render`](crate::render)),
    /// not by the collector: a scrape gets the values of its own moment, and a process nobody
    /// scrapes reads nothing. A value the system does not give is left off the page.
    pub fn process_metrics(mut self, on: bool) -> Self {
        self.process_metrics = Some(on);
        self
    }

    /// Installs the recorder, starts the collector and the listener.
    ///
    /// # Errors
    /// Any [`Error`]: a bad setting or environment variable, a `metrics` recorder installed by
    /// someone else, a collector already running, the listen address in use, a JSONL
    /// directory that cannot be created or written, a textfile that cannot be written.
    pub fn install(self) -> Result<ExporterGuard, Error> {
        let env = EnvSettings::read()?;
        let env_metric_buckets = super::env::metric_buckets()?;
        self.collector.validate()?;
        #[cfg(feature = "jsonl")]
        check_jsonl_dirs(&self.jsonl)?;
        let all = self.buckets.or(env.buckets);
        let mut buckets = Buckets::new(all.as_deref().unwrap_or(&profilis_core::DEFAULT_BUCKETS))?;
        for (kind, values) in &self.kind_buckets {
            buckets = buckets.with_kind(kind, values)?;
        }
        // The environment's matchers, then the code's: the same matcher set in code replaces it.
        let mut metric_buckets = crate::metric_buckets::MetricBuckets::new(buckets.all());
        for (matcher, values) in env_metric_buckets.into_iter().chain(self.metric_buckets) {
            metric_buckets.set(matcher, &values);
        }
        for (name, setter, value) in [
            ("service", "Exporter::service", &self.service),
            ("instance", "Exporter::instance", &self.instance),
            ("worker", "Exporter::worker", &self.worker),
        ] {
            if value
                .as_deref()
                .is_some_and(|v| !crate::labels::is_label_value(v))
            {
                return Err(Error::EmptyLabel { name, setter });
            }
        }
        // Checked now, set last: a failed install leaves the process's rate as it was.
        let rate = self
            .sample_rate
            .or(env.sample_rate)
            .map(profilis_core::validate_rate)
            .transpose()?;
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
        #[cfg(feature = "listener")]
        let listen =
            (!self.no_listener).then(|| self.listen.or(env.listen).unwrap_or(DEFAULT_LISTEN));
        // A token or allow-list given in code replaces the environment's.
        #[cfg(feature = "dashboard")]
        let bearer_token = self.bearer_token.or(env.bearer_token);
        #[cfg(feature = "listener")]
        let allow = if self.allow.is_empty() {
            env.allow.unwrap_or_default()
        } else {
            self.allow
        };
        #[cfg(feature = "dashboard")]
        if bearer_token
            .as_deref()
            .is_some_and(|token| !crate::auth::valid_bearer_token(token))
        {
            // Checked even without the listener: the mounted dashboard handlers ask for it.
            return Err(Error::BearerToken);
        }
        #[cfg(feature = "dashboard")]
        let bearer_token_kept = bearer_token.clone();
        #[cfg(feature = "dashboard")]
        let dashboard = {
            #[cfg(feature = "listener")]
            let on_by_default = listen.is_some_and(|addr| addr.ip().to_canonical().is_loopback());
            #[cfg(not(feature = "listener"))]
            let on_by_default = false;
            let token = bearer_token.clone();
            self.dashboard
                .or(env.dashboard)
                .unwrap_or(on_by_default)
                .then(|| crate::dashboard::Dashboard::new(labels.clone(), token))
        };
        let installed = install_recorder(&buckets, &metric_buckets)?;
        installed.set_process_metrics(self.process_metrics.or(env.process_metrics).unwrap_or(true));
        #[cfg(feature = "jsonl")]
        let jsonl = self
            .jsonl
            .into_iter()
            .map(crate::jsonl::JsonlSink::new)
            .collect::<Result<Vec<_>, _>>()?;
        // Health metrics exist (described) from the start, not only after the first batch.
        metric_names::describe_health();
        metrics::counter!(metric_names::EVENTS_DROPPED_TOTAL).absolute(0);
        metrics::gauge!(metric_names::QUEUE_DEPTH).set(0.0);
        #[cfg(feature = "pushgateway")]
        if self.pushgateway.is_some() {
            metrics::counter!(metric_names::PUSH_FAILURES_TOTAL).absolute(0);
        }
        // Profilis's own in-memory sinks run on the collector's thread; every sink that
        // writes somewhere (the console, JSONL files, the application's) on a thread of its
        // own, so one that waits never holds up the counts Prometheus gets.
        let writers = self.sinks;
        #[cfg(feature = "jsonl")]
        let writers = writers
            .into_iter()
            .chain(jsonl.into_iter().map(|s| Box::new(s) as Box<dyn Sink>));
        let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(PrometheusSink::new(
            labels.clone(),
            installed.clone(),
        ))];
        #[cfg(feature = "dashboard")]
        if let Some(dashboard) = &dashboard {
            sinks.push(Box::new(dashboard.sink()));
        }
        for sink in writers {
            let name = sink.name().to_owned();
            let sink = NonBlocking::from_box(sink)
                .map_err(|source| StartError::SinkSpawn { sink: name, source })?
                .flush_timeout(self.collector.shutdown_timeout);
            sinks.push(Box::new(sink));
        }
        let collector = Collector::start(
            CollectorConfig {
                // Durations are filed on the calling thread in each histogram's own buckets.
                buckets,
                ..self.collector
            },
            sinks,
        )?;
        #[cfg(feature = "listener")]
        let listener = if let Some(addr) = listen {
            let render_from = installed.clone();
            let config = ListenerConfig {
                addr,
                allow,
                bearer_token,
                dashboard: dashboard.clone(),
                before_scrape: self.before_scrape,
                ..ListenerConfig::default()
            };
            // On error the collector is dropped here, which stops it.
            // Answers in the format each scrape asks for (OpenMetrics with exemplars for
            // Prometheus).
            Some(listener::start_with_formats(
                config,
                std::sync::Arc::new(move |format| render_from.render_as(format)),
            )?)
        } else {
            None
        };
        // The last step that can fail, so that a failed install leaves no file behind for
        // node_exporter to serve. On error the collector and the listener are dropped here,
        // which stops them.
        let textfile = match self.textfile {
            Some((path, interval)) => {
                let render_from = installed.clone();
                Some(crate::textfile::TextfileWriter::start(
                    path,
                    interval,
                    std::sync::Arc::new(move || render_from.render_textfile()),
                )?)
            }
            None => None,
        };
        // Nothing can fail from here on.
        if let Some(rate) = rate {
            set_global_rate(rate)?;
        }
        #[cfg(feature = "dashboard")]
        if let Some(dashboard) = &dashboard {
            crate::dashboard::install(dashboard);
        }
        // The mounted `/metrics` handlers serve this exporter's page from now on: its token.
        #[cfg(feature = "dashboard")]
        crate::auth::install_token(bearer_token_kept);
        Ok(ExporterGuard {
            collector: Some(collector),
            #[cfg(feature = "dashboard")]
            dashboard,
            #[cfg(feature = "listener")]
            listener,
            installed,
            labels,
            textfile,
            #[cfg(feature = "pushgateway")]
            pushgateway: self.pushgateway,
        })
    }
}

/// Two JSONL sinks of one exporter must not share a directory (each written twice, and lines
/// lost to each other's renames): checked before anything starts. The paths are compared made
/// absolute; the same directory reached through a link is caught by the directory's lock when
/// the second sink starts ([`JsonlError::InUse`](crate::JsonlError::InUse)).
#[cfg(feature = "jsonl")]
fn check_jsonl_dirs(configs: &[crate::jsonl::JsonlConfig]) -> Result<(), Error> {
    let mut seen: Vec<std::path::PathBuf> = Vec::with_capacity(configs.len());
    for config in configs {
        config.validate()?;
        let dir = config.absolute_dir()?;
        if let Some(first) = seen.iter().find(|seen| **seen == dir) {
            let path = first.clone();
            return Err(crate::jsonl::JsonlError::SharedDir { path }.into());
        }
        seen.push(dir);
    }
    Ok(())
}
