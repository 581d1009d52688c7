//! The one error type of `install_exporter()` and its builder. Each variant wraps the error of
//! the part that failed, whose message names the value at fault and what is allowed.

use profilis_core::{ConfigError, StartError};

/// Why profilis could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting or `PROFILIS_*` variable that is not allowed (a sample rate, buckets, a
    /// collector setting).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The collector could not start: one is already running, or its thread could not be
    /// started. (Its settings are checked first: a bad one is [`Error::Config`].)
    #[error(transparent)]
    Collector(StartError),
    /// A `service`, `instance` or `worker` label given in code is empty (or only whitespace):
    /// Prometheus reads an empty label as no label, and the series of the processes it
    /// should tell apart would be one. (From the environment, such a value is
    /// [`Error::Config`].)
    #[error("the `{name}` label ({setter}) must not be empty: Prometheus reads an empty label as none, and would merge the series it tells apart")]
    EmptyLabel {
        /// `service`, `instance` or `worker`.
        name: &'static str,
        /// The builder method that set it.
        setter: &'static str,
    },
    /// Some other code installed a global `metrics` recorder first.
    #[error("a global `metrics` recorder is already installed in this process: profilis must install its own (or record into yours with FacadeSink)")]
    RecorderInstalled,
    /// profilis's recorder was installed earlier with other buckets (of the kinds' durations
    /// or of the application's histograms); they cannot change.
    #[error("profilis's recorder is already installed with other buckets; buckets can only be set by the first install in a process")]
    BucketsFixed,
    /// Per-metric buckets of the application's histograms
    /// ([`Exporter::metric_buckets`](crate::Exporter::metric_buckets)) that cannot be used.
    #[error(transparent)]
    MetricBuckets(#[from] crate::MetricBucketsError),
    /// `PROFILIS_METRIC_BUCKETS` has a value that cannot be used; `source` says which part and
    /// what is allowed.
    #[error("environment variable {name}={value:?} is not allowed: {source}")]
    EnvMetricBuckets {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        source: crate::MetricBucketsError,
    },
    /// The built-in listener could not be configured or started (the listen address is in
    /// use, say).
    #[cfg(feature = "listener")]
    #[cfg_attr(docsrs, doc(cfg(feature = "listener")))]
    #[error(transparent)]
    Listener(#[from] crate::listener::ListenerError),
    /// The bearer token ([`Exporter::bearer_token`](crate::Exporter::bearer_token)) is empty
    /// or not visible ASCII.
    #[cfg(feature = "dashboard")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
    #[error("the bearer token (`Exporter::bearer_token` or `PROFILIS_BEARER_TOKEN`) must be visible ASCII characters without spaces, and not empty (the token itself is not shown)")]
    BearerToken,
    /// An info metric or a state set could not be published ([`info`](crate::info),
    /// [`StateSet`](crate::StateSet)): a name the format does not allow, say.
    #[error(transparent)]
    Metric(#[from] crate::info::MetricError),
    /// A JSONL sink could not start: a setting, a directory that cannot be created or
    /// written, or one another JSONL sink writes to.
    #[cfg(feature = "jsonl")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jsonl")))]
    #[error(transparent)]
    Jsonl(#[from] crate::jsonl::JsonlError),
    /// The textfile ([`Exporter::textfile`](crate::Exporter::textfile)) has a bad name or
    /// interval, or its first write failed (a missing directory, one that cannot be written).
    #[error(transparent)]
    Textfile(#[from] crate::textfile::TextfileError),
    /// A Pushgateway setting, or a push, failed (for `?` in code that also installs).
    #[cfg(feature = "pushgateway")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pushgateway")))]
    #[error(transparent)]
    Push(#[from] crate::pushgateway::PushError),
}

impl From<StartError> for Error {
    /// A collector setting is a configuration error, whichever part checked it.
    fn from(e: StartError) -> Error {
        match e {
            StartError::Config(e) => Error::Config(e),
            other => Error::Collector(other),
        }
    }
}
