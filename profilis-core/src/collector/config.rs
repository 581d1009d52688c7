//! Settings of the collector, and the histogram buckets durations are filed in, per kind.

use std::time::Duration;

use crate::error::ConfigError;
use crate::kind::Kind;
use crate::local::Bounds;
use crate::ring::DropPolicy;

/// The largest queue size (and batch size) accepted.
pub(crate) const MAX_QUEUE_SIZE: usize = 1 << 24;

/// Default histogram buckets, in seconds (the same as Python profilis).
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Checks histogram buckets: at least one, all finite and positive, strictly increasing.
///
/// # Errors
/// [`ConfigError::Buckets`] naming the buckets and what is wrong.
pub fn validate_buckets(values: &[f64]) -> Result<Vec<f64>, ConfigError> {
    let bad = |reason| ConfigError::Buckets {
        value: format!("{values:?}"),
        reason,
    };
    if values.is_empty() {
        return Err(bad("there are none"));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(bad("one is not a finite number"));
    }
    if values.iter().any(|&v| v <= 0.0) {
        return Err(bad("one is not positive"));
    }
    if values.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad("they are not in increasing order"));
    }
    Ok(values.to_vec())
}

/// The upper bounds (seconds) of the duration buckets, per kind: one set for every kind, and
/// the sets of the kinds that have their own. Two are equal when they give every kind the same
/// bounds, however they were built.
#[derive(Debug, Clone)]
pub struct Buckets {
    all: Vec<f64>,
    by_kind: Vec<(&'static Kind, Vec<f64>)>,
}

impl Default for Buckets {
    /// [`DEFAULT_BUCKETS`] for every kind.
    fn default() -> Buckets {
        Buckets {
            all: DEFAULT_BUCKETS.to_vec(),
            by_kind: Vec::new(),
        }
    }
}

impl PartialEq for Buckets {
    fn eq(&self, other: &Buckets) -> bool {
        self.all == other.all
            && self
                .by_kind
                .iter()
                .chain(&other.by_kind)
                .all(|(kind, _)| self.of(kind) == other.of(kind))
    }
}

impl Buckets {
    /// `bounds` for every kind.
    ///
    /// # Errors
    /// [`ConfigError::Buckets`] if they are empty, not finite, not positive or not increasing.
    pub fn new(bounds: &[f64]) -> Result<Buckets, ConfigError> {
        Ok(Buckets {
            all: validate_buckets(bounds)?,
            by_kind: Vec::new(),
        })
    }

    /// `bounds` for calls of `kind` (replacing any it had).
    ///
    /// # Errors
    /// As [`Buckets::new`].
    pub fn with_kind(
        mut self,
        kind: &'static Kind,
        bounds: &[f64],
    ) -> Result<Buckets, ConfigError> {
        let bounds = validate_buckets(bounds)?;
        kind.id(); // known to the collector from now on
        self.by_kind.retain(|(k, _)| *k != kind);
        self.by_kind.push((kind, bounds));
        Ok(self)
    }

    /// The bounds of `kind`: its own, else those of every kind.
    pub fn of(&self, kind: &Kind) -> &[f64] {
        self.by_kind
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(&self.all, |(_, bounds)| bounds)
    }

    /// The bounds of the kinds without their own.
    pub fn all(&self) -> &[f64] {
        &self.all
    }

    /// The bounds of `kinds` (every kind known, by id) as the per-thread counters and the
    /// collector keep them, each bound converted by `convert` (to clock ticks, say).
    pub(crate) fn bounds<T: Copy>(
        &self,
        kinds: &[&'static Kind],
        convert: impl Fn(f64) -> T,
    ) -> Bounds<T> {
        let convert = |bounds: &[f64]| bounds.iter().map(|&s| convert(s)).collect();
        Bounds::new(
            kinds.iter().map(|k| convert(self.of(k))).collect(),
            convert(&self.all),
            convert(&[f64::INFINITY])[0],
        )
    }

    fn validate(&self) -> Result<(), ConfigError> {
        validate_buckets(&self.all)?;
        for (_, bounds) in &self.by_kind {
            validate_buckets(bounds)?;
        }
        Ok(())
    }
}

/// Settings of the collector.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// Events each recording thread may have queued (default 2048). Memory is bounded by
    /// At most `queue_size` events queued per thread that records; beyond it, events are
    /// dropped and counted. A thread's queue starts small (64 events) and grows toward this
    /// only when it fills, so the memory it takes follows what the thread records.
    pub queue_size: usize,
    /// Most events in one batch handed to the sinks (default 128). A thread that has queued a
    /// full batch wakes the collector early.
    pub batch_max: usize,
    /// How often the collector drains the queues and flushes (default 100 ms).
    pub flush_interval: Duration,
    /// Which event to drop when a queue is full (default: the new one).
    pub drop_policy: DropPolicy,
    /// How long dropping the [`Collector`](crate::Collector) may wait for the last flush
    /// (default 5 s).
    pub shutdown_timeout: Duration,
    /// `Some(false)` starts with profiling switched off, `Some(true)` on; `None` reads
    /// `PROFILIS_DISABLED` (`1`/`true` switches it off).
    pub enabled: Option<bool>,
    /// The buckets durations are filed in on the calling thread, per kind (default
    /// [`DEFAULT_BUCKETS`] for every kind). Sinks get them in
    /// [`CallCount::durations`](crate::CallCount::durations).
    pub buckets: Buckets,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            queue_size: 2048,
            batch_max: 128,
            flush_interval: Duration::from_millis(100),
            drop_policy: DropPolicy::Newest,
            shutdown_timeout: Duration::from_secs(5),
            enabled: None,
            buckets: Buckets::default(),
        }
    }
}

impl CollectorConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// The first value that is out of range, named with what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.queue_size == 0 || self.queue_size > MAX_QUEUE_SIZE {
            return Err(ConfigError::QueueSize {
                value: self.queue_size,
                max: MAX_QUEUE_SIZE,
            });
        }
        if self.batch_max == 0 || self.batch_max > MAX_QUEUE_SIZE {
            return Err(ConfigError::BatchMax {
                value: self.batch_max,
                max: MAX_QUEUE_SIZE,
            });
        }
        self.buckets.validate()?;
        if self.flush_interval.is_zero() {
            return Err(ConfigError::FlushInterval {
                value: self.flush_interval,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::{DB, FUNCTION, HTTP};

    #[test]
    fn buckets_of_a_kind_are_its_own_else_everyones() {
        let buckets = Buckets::new(&[0.1, 1.0])
            .unwrap()
            .with_kind(&HTTP, &[0.5])
            .unwrap()
            .with_kind(&HTTP, &[0.25, 2.0])
            .unwrap();
        assert_eq!(buckets.of(&FUNCTION), [0.1, 1.0]);
        assert_eq!(buckets.of(&DB), [0.1, 1.0]);
        assert_eq!(buckets.of(&HTTP), [0.25, 2.0]);
        let err = Buckets::default().with_kind(&DB, &[1.0, 0.5]).unwrap_err();
        assert!(err.to_string().contains("increasing"), "{err}");
        assert_eq!(Buckets::default().of(&DB), DEFAULT_BUCKETS);
    }

    #[test]
    fn buckets_are_equal_when_every_kind_gets_the_same_bounds() {
        let a = Buckets::new(&[0.1, 1.0]).unwrap();
        let http_then_db = a
            .clone()
            .with_kind(&HTTP, &[0.5])
            .unwrap()
            .with_kind(&DB, &[2.0])
            .unwrap();
        let db_then_http = a
            .clone()
            .with_kind(&DB, &[2.0])
            .unwrap()
            .with_kind(&HTTP, &[0.5])
            .unwrap();
        assert_eq!(http_then_db, db_then_http);
        assert_eq!(a, a.clone().with_kind(&FUNCTION, &[0.1, 1.0]).unwrap());
        assert_ne!(a, http_then_db);
        assert_ne!(http_then_db, a);
        assert_ne!(a, Buckets::new(&[0.1]).unwrap());
    }
}
