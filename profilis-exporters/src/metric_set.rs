//! Declared metrics: counters, gauges, histograms, info metrics and state sets that a program
//! declares up front (name, help text, label names, checked then) and sets by label values, put
//! on every page the exporter renders while the set is published. This is what a standalone
//! exporter (`profilis-exporter-kit`) serves; any application can use it too.
//!
//! A set is either **live** ([`MetricSet::new`]): what is written is on the next page; or
//! **staged** ([`MetricSet::staged`]): writes go to a pending copy that [`MetricSet::commit`]
//! shows all at once, so a scrape never sees half an update, and [`MetricSet::withdraw`] takes
//! every sample off the pages until the next commit, so values that could not be refreshed are
//! not served as if fresh. [`MetricSet::begin`] starts an update: the pending gauges, info
//! metrics and state sets are forgotten (an update sets what is true now; a series it does not
//! set is not served), counters and histograms keep their totals.
//!
//! SKELETON (lead's contract for the helpers): signatures are the contract; bodies to be written.

use std::fmt;

use crate::text_format::ExpositionFormat;
use crate::MetricError;

/// A set of declared metrics. Clones share the set. See the [module docs](self).
#[derive(Clone)]
pub struct MetricSet {
    _todo: (),
}

impl fmt::Debug for MetricSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricSet").finish_non_exhaustive()
    }
}

impl Default for MetricSet {
    fn default() -> Self {
        MetricSet::new()
    }
}

impl MetricSet {
    /// A live set: each write is on the next page.
    #[must_use]
    pub fn new() -> MetricSet {
        todo!()
    }

    /// A staged set: writes are on the pages after [`commit`](Self::commit).
    #[must_use]
    pub fn staged() -> MetricSet {
        todo!()
    }

    /// Declares a counter. `name` ends in `_total` (added if it does not).
    ///
    /// # Errors
    /// [`MetricError`] naming a bad metric or label name, a label given twice, or a name
    /// already declared in this set.
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Result<Counter, MetricError> {
        let _ = (name, help, labels);
        todo!()
    }

    /// Declares a gauge.
    ///
    /// # Errors
    /// As [`counter`](Self::counter).
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<Gauge, MetricError> {
        let _ = (name, help, labels);
        todo!()
    }

    /// Declares a histogram with these bucket upper bounds (finite, increasing; `+Inf` added).
    ///
    /// # Errors
    /// As [`counter`](Self::counter), and bad buckets; `le` is not a label name here.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<Histogram, MetricError> {
        let _ = (name, help, labels, buckets);
        todo!()
    }

    /// Declares an info metric (`name` gets `_info` added unless it ends with it): one series
    /// whose label values carry the information, value 1.
    ///
    /// # Errors
    /// As [`counter`](Self::counter).
    pub fn info(&self, name: &str, help: &str, labels: &[&str]) -> Result<Info, MetricError> {
        let _ = (name, help, labels);
        todo!()
    }

    /// Declares a state set: for each label-value combination, one series per state labelled
    /// `<name>="<state>"`, the current state 1 and the others 0.
    ///
    /// # Errors
    /// As [`counter`](Self::counter), and no states, an empty or repeated state; `name` is
    /// also the state's label name, so it is not one of `labels`.
    pub fn state_set(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        states: &[&str],
    ) -> Result<States, MetricError> {
        let _ = (name, help, labels, states);
        todo!()
    }

    /// Puts the set on every page the exporter renders (`/metrics`, [`render`](crate::render),
    /// textfile, Pushgateway) until the returned guard is dropped.
    ///
    /// # Errors
    /// [`MetricError::NameTaken`] naming a metric another published set or an info metric
    /// already has.
    pub fn publish(&self) -> Result<Published, MetricError> {
        todo!()
    }

    /// The set alone, as a page in `format`.
    #[must_use]
    pub fn render(&self, format: ExpositionFormat) -> String {
        let _ = format;
        todo!()
    }

    /// Staged sets: starts an update (see the [module docs](self)). Nothing on a live set.
    pub fn begin(&self) {
        todo!()
    }

    /// Staged sets: shows what was written since [`begin`](Self::begin), all at once. Nothing
    /// on a live set.
    pub fn commit(&self) {
        todo!()
    }

    /// Staged sets: takes every sample of the set off the pages until the next
    /// [`commit`](Self::commit). Nothing on a live set.
    pub fn withdraw(&self) {
        todo!()
    }
}

/// Keeps a [`MetricSet`] on the pages; dropping it takes the set off.
#[must_use = "the set is on the pages only while this lives"]
#[derive(Debug)]
pub struct Published {
    _todo: (),
}

/// A declared counter. Label values are given in the order of the declared label names.
#[derive(Clone, Debug)]
pub struct Counter {
    _todo: (),
}

impl Counter {
    /// Adds 1.
    ///
    /// # Errors
    /// [`MetricError`] naming the metric when the number of label values is not the number
    /// of declared labels.
    pub fn inc(&self, labels: &[&str]) -> Result<(), MetricError> {
        self.add(labels, 1.0)
    }

    /// Adds `value` (finite, not negative).
    ///
    /// # Errors
    /// As [`inc`](Self::inc), and a negative or not finite value.
    pub fn add(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        let _ = (labels, value);
        todo!()
    }

    /// Sets the total (from a source that counts itself; finite, not negative).
    ///
    /// # Errors
    /// As [`add`](Self::add).
    pub fn set_total(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        let _ = (labels, value);
        todo!()
    }
}

/// A declared gauge.
#[derive(Clone, Debug)]
pub struct Gauge {
    _todo: (),
}

impl Gauge {
    /// Sets the value.
    ///
    /// # Errors
    /// As [`Counter::inc`].
    pub fn set(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        let _ = (labels, value);
        todo!()
    }

    /// Adds `value` (negative to subtract).
    ///
    /// # Errors
    /// As [`Counter::inc`].
    pub fn add(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        let _ = (labels, value);
        todo!()
    }
}

/// A declared histogram.
#[derive(Clone, Debug)]
pub struct Histogram {
    _todo: (),
}

impl Histogram {
    /// Records one observation.
    ///
    /// # Errors
    /// As [`Counter::inc`], and a NaN.
    pub fn observe(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        let _ = (labels, value);
        todo!()
    }
}

/// A declared info metric.
#[derive(Clone, Debug)]
pub struct Info {
    _todo: (),
}

impl Info {
    /// Sets the information: the label values, replacing the previous ones.
    ///
    /// # Errors
    /// As [`Counter::inc`].
    pub fn set(&self, labels: &[&str]) -> Result<(), MetricError> {
        let _ = labels;
        todo!()
    }
}

/// A declared state set.
#[derive(Clone, Debug)]
pub struct States {
    _todo: (),
}

impl States {
    /// Sets the current state of the series with these label values.
    ///
    /// # Errors
    /// As [`Counter::inc`], and [`MetricError::UnknownState`].
    pub fn set(&self, labels: &[&str], state: &str) -> Result<(), MetricError> {
        let _ = (labels, state);
        todo!()
    }
}
