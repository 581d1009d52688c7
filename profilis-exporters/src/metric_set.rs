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
//! Every name, help text and label name is checked when the metric is declared; a write with
//! the wrong number of label values, or a value the metric cannot take, is a [`MetricError`]
//! naming the metric and the value, never a panic. Writes take a short lock of the set only.
//! A series can be forgotten ([`Gauge::remove`] and the other handles' `remove`,
//! [`Info::clear`], [`MetricSet::clear`] for every series); of a staged set, the pending copy
//! forgets it and the next commit shows it gone.
//!
//! One name is one metric: every name a metric writes on a page (a counter `x`'s samples
//! `x_total` and its OpenMetrics family `x`; a histogram `h`'s `h`, `h_bucket`, `h_count` and
//! `h_sum`; a gauge's, an info metric's (`<name>_info`) or a state set's name) must not be
//! written by another metric of the set ([`MetricError::NameTaken`] when it is the metric's
//! own name, [`MetricError::NameClash`] when it is another it writes), nor, once the set is
//! published, by another published set, an [info metric](crate::info) or a
//! [state set](crate::StateSet). Names the exporter writes itself are refused whether
//! published or not ([`MetricError::Reserved`]): the process metrics (`process_open_fds`,
//! `process_cpu_seconds_total`, ...) and profilis's own namespace, `profilis_*`.
//!
//! The page (as [`MetricSet::render`] writes it, and as every page of the exporter carries it
//! while [`MetricSet::publish`]'s guard lives) has, per declared metric that has at least one
//! series: counters as `counter` families named `<name>_total` (OpenMetrics: the family
//! `<name>`, samples `<name>_total`); gauges; histograms with `_bucket` (cumulative, `+Inf`
//! last), `_sum` and `_count`; info metrics as gauges `<name>_info{...} 1`; state sets as gauges
//! with one series per state, `app_health{app_health="healthy"} 1`, the other states 0.
//!
//! ```
//! # use profilis_exporters as profilis;
//! use profilis::metric_set::MetricSet;
//! use profilis::ExpositionFormat;
//!
//! # fn main() -> Result<(), profilis::MetricError> {
//! let set = MetricSet::staged();
//! let current = set.gauge("app_requests_current", "Requests being served.", &[])?;
//! let health = set.state_set("app_health", "The app's health.", &[], &["healthy", "unhealthy"])?;
//! let polls = set.counter("app_polls", "Polls of the app.", &["outcome"])?;
//!
//! // One update: nothing of it is on a page before `commit`.
//! set.begin();
//! current.set(&[], 12.0)?;
//! health.set(&[], "healthy")?;
//! polls.inc(&["ok"])?;
//! assert_eq!(set.render(ExpositionFormat::Text), "");
//! set.commit();
//!
//! let page = set.render(ExpositionFormat::Text);
//! assert!(page.contains("\napp_requests_current 12\n"));
//! assert!(page.contains("\napp_health{app_health=\"healthy\"} 1\n"));
//! assert!(page.contains("\napp_polls_total{outcome=\"ok\"} 1\n"));
//! assert!(polls.inc(&[]).is_err()); // one label value expected
//!
//! // The next update failed: serve nothing rather than old values.
//! set.withdraw();
//! assert_eq!(set.render(ExpositionFormat::Text), "");
//!
//! // On every page of the exporter (`render`, `/metrics`) while `published` lives.
//! let published = set.publish()?;
//! drop(published);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::metric_buckets::{validate_metric_bounds, MetricBucketsError, MetricMatch};
use crate::text_format::{
    is_label_key, is_metric_name, label_set, ExpositionFormat, HistogramSample, Page, Sample,
};
use crate::MetricError;

/// What a metric name must look like.
const METRIC_NAME: &str = "a metric name is [a-zA-Z_:][a-zA-Z0-9_:]*, not empty";
/// What a counter's name must look like.
const COUNTER_NAME: &str =
    "a counter's name is [a-zA-Z_:][a-zA-Z0-9_:]*, not empty (`_total` is added if it does not end with it)";
/// What an info metric's name must look like.
const INFO_NAME: &str =
    "an info metric's name is [a-zA-Z_:][a-zA-Z0-9_:]*, not empty (`_info` is added if it does not end with it)";
/// What a state set's name must look like: it is also its label's name.
const STATE_SET_NAME: &str =
    "a state set's name is also its label's name: [a-zA-Z_][a-zA-Z0-9_]*, not starting with __";
/// What a counter takes.
const COUNTER_VALUE: &str = "a counter takes finite numbers, not negative";
/// What a histogram takes.
const OBSERVATION: &str = "a histogram observes numbers, not NaN";

/// A set of declared metrics. Clones share the set. See the [module docs](self).
#[derive(Clone)]
pub struct MetricSet {
    inner: Arc<Inner>,
}

/// The set's declarations and values.
struct Inner {
    /// Tells published sets apart.
    id: u64,
    staged: bool,
    state: Mutex<State>,
}

/// One metric's declaration.
struct Decl {
    /// The full name (`_total`, `_info` added).
    name: String,
    help: String,
    labels: Box<[String]>,
    kind: Kind,
}

enum Kind {
    Counter,
    Gauge,
    /// The upper bounds, `+Inf` last.
    Histogram(Box<[f64]>),
    Info,
    /// The states, in the order given.
    StateSet(Box<[String]>),
}

impl Kind {
    fn describe(&self) -> &'static str {
        match self {
            Kind::Counter => "a counter",
            Kind::Gauge => "a gauge",
            Kind::Histogram(_) => "a histogram",
            Kind::Info => "an info metric",
            Kind::StateSet(_) => "a state set",
        }
    }
}

/// One series' value.
#[derive(Clone)]
enum Value {
    /// A counter's total or a gauge's value.
    Number(f64),
    /// Observations per bucket (not cumulative) and their sum.
    Histogram { counts: Box<[u64]>, sum: f64 },
    /// An info metric's series: its labels are the information.
    Present,
    /// A state set's current state, by index.
    State(usize),
}

/// Each metric's series, by label values, in the order of the declarations.
type Values = Vec<BTreeMap<Box<[String]>, Value>>;

struct State {
    decls: Vec<Arc<Decl>>,
    /// What is written: on the pages of a live set; of a staged set, its next commit.
    pending: Values,
    /// A staged set's last commit, `None` when withdrawn (or never committed).
    committed: Option<Values>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl fmt::Debug for MetricSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        let names: Vec<&str> = state.decls.iter().map(|d| d.name.as_str()).collect();
        f.debug_struct("MetricSet")
            .field("staged", &self.inner.staged)
            .field("metrics", &names)
            .finish_non_exhaustive()
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
        MetricSet::with_staging(false)
    }

    /// A staged set: writes are on the pages after [`commit`](Self::commit).
    #[must_use]
    pub fn staged() -> MetricSet {
        MetricSet::with_staging(true)
    }

    fn with_staging(staged: bool) -> MetricSet {
        MetricSet {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                staged,
                state: Mutex::new(State {
                    decls: Vec::new(),
                    pending: Vec::new(),
                    committed: None,
                }),
            }),
        }
    }

    /// Declares a counter. `name` ends in `_total` (added if it does not).
    ///
    /// # Errors
    /// [`MetricError`] naming a bad metric or label name, a label given twice, a name another
    /// metric of the set (or, the set published, another published one) writes
    /// ([`NameTaken`](MetricError::NameTaken), [`NameClash`](MetricError::NameClash)), or one
    /// the exporter keeps ([`Reserved`](MetricError::Reserved)); see the [module docs](self).
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Result<Counter, MetricError> {
        let full = with_suffix(name, "_total");
        if name.is_empty() || !is_metric_name(&full) {
            return Err(MetricError::MetricName {
                name: name.to_owned(),
                allowed: COUNTER_NAME,
            });
        }
        let handle = self.declare(full, help, labels, Kind::Counter)?;
        Ok(Counter { handle })
    }

    /// Declares a gauge.
    ///
    /// # Errors
    /// As [`counter`](Self::counter).
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<Gauge, MetricError> {
        check_metric_name(name)?;
        let handle = self.declare(name.to_owned(), help, labels, Kind::Gauge)?;
        Ok(Gauge { handle })
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
        check_metric_name(name)?;
        let mut bounds = validate_metric_bounds(&MetricMatch::full(name), buckets).map_err(
            |error| match error {
                MetricBucketsError::Buckets { value, reason, .. } => MetricError::Buckets {
                    metric: name.to_owned(),
                    value,
                    reason,
                },
                // The bounds' check has no other error.
                _ => MetricError::Buckets {
                    metric: name.to_owned(),
                    value: format!("{buckets:?}"),
                    reason: "they cannot be used",
                },
            },
        )?;
        if labels.contains(&"le") {
            return Err(MetricError::ReservedLabel {
                metric: name.to_owned(),
                label: "le".to_owned(),
                why: "a histogram's buckets are labelled `le`",
            });
        }
        bounds.push(f64::INFINITY);
        let kind = Kind::Histogram(bounds.into_boxed_slice());
        let handle = self.declare(name.to_owned(), help, labels, kind)?;
        Ok(Histogram { handle })
    }

    /// Declares an info metric (`name` gets `_info` added unless it ends with it): one series
    /// whose label values carry the information, value 1.
    ///
    /// # Errors
    /// As [`counter`](Self::counter).
    pub fn info(&self, name: &str, help: &str, labels: &[&str]) -> Result<Info, MetricError> {
        let full = with_suffix(name, "_info");
        if name.is_empty() || !is_metric_name(&full) {
            return Err(MetricError::MetricName {
                name: name.to_owned(),
                allowed: INFO_NAME,
            });
        }
        let handle = self.declare(full, help, labels, Kind::Info)?;
        Ok(Info { handle })
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
        if !is_label_key(name) {
            return Err(MetricError::MetricName {
                name: name.to_owned(),
                allowed: STATE_SET_NAME,
            });
        }
        if labels.contains(&name) {
            return Err(MetricError::ReservedLabel {
                metric: name.to_owned(),
                label: name.to_owned(),
                why: "a state set's own name is the label of its states",
            });
        }
        let states = crate::info::check_states(name, states)?;
        let handle = self.declare(name.to_owned(), help, labels, Kind::StateSet(states))?;
        Ok(States { handle })
    }

    /// Checks the label names; the names the metric would write against the exporter's own
    /// ([`reserved`]), the set's other metrics and, once the set is published, every other
    /// published set and info metric; then adds the declaration.
    fn declare(
        &self,
        name: String,
        help: &str,
        labels: &[&str],
        kind: Kind,
    ) -> Result<Handle, MetricError> {
        crate::info::check_label_names(&name, labels)?;
        let written = kind.written_names(&name);
        reserved(&name, &written)?;
        // The published sets' lock first, as everywhere (see `published_sets`).
        let sets = published_sets();
        let state = self.inner.lock();
        if let Some((taken, holder)) = holder_among(&state.decls, &written) {
            let existing = holder.describe(&taken, "of the same metric set");
            return Err(taken_error(name, taken, existing));
        }
        drop(state);
        if sets.is_published(self.inner.id) {
            if let Some((taken, existing)) = others_holder(&sets, &written, Some(self.inner.id)) {
                return Err(taken_error(name, taken, existing));
            }
        }
        let mut state = self.inner.lock();
        let decl = Arc::new(Decl {
            name,
            help: help.to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            kind,
        });
        let index = state.decls.len();
        state.decls.push(Arc::clone(&decl));
        state.pending.push(BTreeMap::new());
        drop(state);
        drop(sets);
        Ok(Handle {
            set: Arc::clone(&self.inner),
            index,
            decl,
        })
    }

    /// Puts the set on every page the exporter renders (`/metrics`, [`render`](crate::render),
    /// textfile, Pushgateway) until the returned guard is dropped.
    ///
    /// Publishing the same set again is allowed: it stays on the pages until every guard is
    /// dropped.
    ///
    /// # Errors
    /// [`MetricError::NameTaken`] or [`MetricError::NameClash`] naming a name one of the set's
    /// metrics writes that another published set, an info metric or a state set already has.
    pub fn publish(&self) -> Result<Published, MetricError> {
        let mut sets = published_sets();
        let id = self.inner.id;
        if let Some(entry) = sets.sets.iter_mut().find(|e| e.set.id == id) {
            entry.guards += 1;
            return Ok(Published { id });
        }
        let decls = self.inner.lock().decls.clone();
        for decl in decls {
            let written = decl.written_names();
            if let Some((taken, existing)) = others_holder(&sets, &written, None) {
                return Err(taken_error(decl.name.clone(), taken, existing));
            }
        }
        sets.sets.push(PublishedSet {
            set: Arc::clone(&self.inner),
            guards: 1,
        });
        Ok(Published { id })
    }

    /// The set alone, as a page in `format`.
    #[must_use]
    pub fn render(&self, format: ExpositionFormat) -> String {
        let mut page = Page::default();
        self.inner.add_to(&mut page);
        page.render_as(format)
    }

    /// Staged sets: starts an update (see the [module docs](self)). Nothing on a live set.
    pub fn begin(&self) {
        if !self.inner.staged {
            return;
        }
        let mut state = self.inner.lock();
        let state = &mut *state;
        for (decl, series) in state.decls.iter().zip(state.pending.iter_mut()) {
            match decl.kind {
                Kind::Gauge | Kind::Info | Kind::StateSet(_) => series.clear(),
                Kind::Counter | Kind::Histogram(_) => {}
            }
        }
    }

    /// Staged sets: shows what was written since [`begin`](Self::begin), all at once. Nothing
    /// on a live set.
    pub fn commit(&self) {
        if !self.inner.staged {
            return;
        }
        let mut state = self.inner.lock();
        state.committed = Some(state.pending.clone());
    }

    /// Staged sets: takes every sample of the set off the pages until the next
    /// [`commit`](Self::commit). Nothing on a live set.
    pub fn withdraw(&self) {
        if !self.inner.staged {
            return;
        }
        self.inner.lock().committed = None;
    }

    /// Forgets every series of every metric, counters' and histograms' totals too (the
    /// declarations stay): nothing of the set is on the pages until written again (of a
    /// staged set, from the next [`commit`](Self::commit); until then the last commit stays).
    pub fn clear(&self) {
        let mut state = self.inner.lock();
        for series in &mut state.pending {
            series.clear();
        }
    }

    /// Whether writes wait for [`commit`](Self::commit).
    #[must_use]
    pub fn is_staged(&self) -> bool {
        self.inner.staged
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock panics halfway through a change.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts the set's visible series on `page`, with the declared help texts.
    fn add_to(&self, page: &mut Page) {
        let state = self.lock();
        let values = if self.staged {
            match &state.committed {
                Some(values) => values,
                None => return,
            }
        } else {
            &state.pending
        };
        for (decl, series) in state.decls.iter().zip(values) {
            if series.is_empty() {
                continue;
            }
            let name = decl.name.as_str();
            let labels_of = |values: &[String]| label_set(decl.labels.iter().zip(values.iter()));
            for (values, value) in series {
                match (&decl.kind, value) {
                    (Kind::Counter, Value::Number(v)) => {
                        page.add(name, labels_of(values), Sample::FloatCounter(*v));
                    }
                    (Kind::Gauge, Value::Number(v)) => {
                        page.add(name, labels_of(values), Sample::Gauge(*v));
                    }
                    (Kind::Histogram(bounds), Value::Histogram { counts, sum }) => {
                        let buckets = bounds.iter().copied().zip(counts.iter().copied());
                        let sample = HistogramSample {
                            buckets: buckets.collect(),
                            sum: *sum,
                        };
                        page.add(name, labels_of(values), Sample::Histogram(sample));
                    }
                    (Kind::Info, Value::Present) => {
                        page.add(name, labels_of(values), Sample::Gauge(1.0));
                    }
                    (Kind::StateSet(states), Value::State(current)) => {
                        for (i, state) in states.iter().enumerate() {
                            let pairs = decl
                                .labels
                                .iter()
                                .map(String::as_str)
                                .zip(values.iter().map(String::as_str));
                            let labels =
                                label_set(pairs.chain(std::iter::once((name, state.as_str()))));
                            let value = if i == *current { 1.0 } else { 0.0 };
                            page.add(name, labels, Sample::Gauge(value));
                        }
                    }
                    // A value is only ever written as its metric's kind.
                    _ => {}
                }
            }
            if !decl.help.is_empty() {
                page.help(name, &decl.help);
            }
        }
    }
}

impl Kind {
    /// Every name a metric of this kind named `name` (its full name) puts on a page: its family
    /// in both formats and its samples' names. The page writes no `_created` samples.
    fn written_names(&self, name: &str) -> Vec<String> {
        match self {
            // `x_total` is the text format's family and the samples; OpenMetrics' family is `x`.
            Kind::Counter => {
                let mut names = vec![name.to_owned()];
                if let Some(base) = name.strip_suffix("_total").filter(|b| !b.is_empty()) {
                    names.push(base.to_owned());
                }
                names
            }
            Kind::Histogram(_) => ["", "_bucket", "_count", "_sum"]
                .iter()
                .map(|suffix| format!("{name}{suffix}"))
                .collect(),
            // Info metrics are written as gauges named `<name>_info`; a state set's series all
            // have its name.
            Kind::Gauge | Kind::Info | Kind::StateSet(_) => vec![name.to_owned()],
        }
    }
}

impl Decl {
    fn written_names(&self) -> Vec<String> {
        self.kind.written_names(&self.name)
    }

    /// What holds `taken` (one of the names this metric writes), `place` saying where it is:
    /// "a gauge of the same metric set", or "a histogram of ... (h writes h_count)".
    fn describe(&self, taken: &str, place: &str) -> String {
        let kind = self.kind.describe();
        if self.name == taken {
            format!("{kind} {place}")
        } else {
            format!("{kind} {place} ({} writes {taken})", self.name)
        }
    }
}

/// The first name of `names` one of `decls` writes too, and that declaration.
fn holder_among<'a>(decls: &'a [Arc<Decl>], names: &[String]) -> Option<(String, &'a Decl)> {
    decls.iter().find_map(|decl| {
        let written = decl.written_names();
        names
            .iter()
            .find(|name| written.contains(name))
            .map(|name| (name.clone(), &**decl))
    })
}

/// The first name of `names` a published set (other than `except`) or an info metric or state
/// set of [`crate::info`] writes, and a description of what does.
fn others_holder(
    sets: &PublishedSets,
    names: &[String],
    except: Option<u64>,
) -> Option<(String, String)> {
    sets.holder_except(names, except).or_else(|| {
        names
            .iter()
            .find_map(|name| crate::info::owner_of(name).map(|owner| (name.clone(), owner)))
    })
}

/// The error for metric `metric` whose name `taken` is held by `existing`: the metric's own
/// name is [`MetricError::NameTaken`], another it would write [`MetricError::NameClash`].
fn taken_error(metric: String, taken: String, existing: String) -> MetricError {
    if metric == taken {
        MetricError::NameTaken {
            name: taken,
            existing,
        }
    } else {
        MetricError::NameClash {
            metric,
            name: taken,
            existing,
        }
    }
}

/// What a page of the exporter may hold beside the declared metrics: the process metrics
/// ([`crate::process::FAMILIES`]) and profilis's own namespace (`profilis_*`, see
/// [`crate::metric_names`]). An error for the first of `written` (the names metric `metric`
/// writes) that is one of them.
pub(crate) fn reserved(metric: &str, written: &[String]) -> Result<(), MetricError> {
    for name in written {
        let owner = if crate::process::writes(name) {
            "one of the exporter's process metrics"
        } else if name.starts_with(PROFILIS_PREFIX) {
            "in profilis's own namespace (profilis_*)"
        } else {
            continue;
        };
        return Err(MetricError::Reserved {
            metric: metric.to_owned(),
            name: name.clone(),
            owner,
        });
    }
    Ok(())
}

/// The prefix of every metric profilis names itself (the kinds' metrics, the collector's
/// health, the sinks' failures).
const PROFILIS_PREFIX: &str = "profilis_";

/// `name` ending in `suffix`, added if it does not.
pub(crate) fn with_suffix(name: &str, suffix: &str) -> String {
    if name.ends_with(suffix) {
        name.to_owned()
    } else {
        format!("{name}{suffix}")
    }
}

fn check_metric_name(name: &str) -> Result<(), MetricError> {
    if is_metric_name(name) {
        Ok(())
    } else {
        Err(MetricError::MetricName {
            name: name.to_owned(),
            allowed: METRIC_NAME,
        })
    }
}

/// The published sets, each with its count of live [`Published`] guards.
pub(crate) struct PublishedSets {
    sets: Vec<PublishedSet>,
}

struct PublishedSet {
    set: Arc<Inner>,
    guards: usize,
}

static PUBLISHED: Mutex<PublishedSets> = Mutex::new(PublishedSets { sets: Vec::new() });

/// The published sets, locked. Lock order, everywhere: this lock, then the info registry's or
/// a set's own (never two sets' own locks at once without this one).
pub(crate) fn published_sets() -> MutexGuard<'static, PublishedSets> {
    PUBLISHED.lock().unwrap_or_else(|e| e.into_inner())
}

impl PublishedSets {
    /// What writes metric name `name` among the published sets, if anything.
    pub(crate) fn owner_of(&self, name: &str) -> Option<String> {
        self.holder_except(&[name.to_owned()], None)
            .map(|(_, existing)| existing)
    }

    /// The first of `names` a published set other than `except` writes, and what writes it.
    fn holder_except(&self, names: &[String], except: Option<u64>) -> Option<(String, String)> {
        self.sets
            .iter()
            .filter(|p| Some(p.set.id) != except)
            .find_map(|p| {
                let state = p.set.lock();
                holder_among(&state.decls, names).map(|(taken, decl)| {
                    (
                        taken.clone(),
                        decl.describe(&taken, "of a published metric set"),
                    )
                })
            })
    }

    fn is_published(&self, id: u64) -> bool {
        self.sets.iter().any(|p| p.set.id == id)
    }
}

/// Puts every published set on `page`.
pub(crate) fn add_to(page: &mut Page) {
    let sets = published_sets();
    for published in &sets.sets {
        published.set.add_to(page);
    }
}

/// Keeps a [`MetricSet`] on the pages; dropping it takes the set off.
#[must_use = "the set is on the pages only while this lives"]
#[derive(Debug)]
pub struct Published {
    id: u64,
}

impl Drop for Published {
    fn drop(&mut self) {
        let mut sets = published_sets();
        if let Some(i) = sets.sets.iter().position(|p| p.set.id == self.id) {
            sets.sets[i].guards -= 1;
            if sets.sets[i].guards == 0 {
                sets.sets.remove(i);
            }
        }
    }
}

/// What every handle holds: its set and its declaration.
#[derive(Clone)]
struct Handle {
    set: Arc<Inner>,
    index: usize,
    decl: Arc<Decl>,
}

impl Handle {
    /// Checks the number of label values, then applies `change` to the series of the pending
    /// values (created by `new` if missing) under the set's lock.
    fn write(
        &self,
        labels: &[&str],
        new: impl FnOnce() -> Value,
        change: impl FnOnce(&mut Value),
    ) -> Result<(), MetricError> {
        let key = self.key(labels)?;
        let mut state = self.set.lock();
        if let Some(series) = state.pending.get_mut(self.index) {
            change(series.entry(key).or_insert_with(new));
        }
        Ok(())
    }

    /// Forgets the series with these label values, if it is there; whether it was.
    fn remove(&self, labels: &[&str]) -> Result<bool, MetricError> {
        let key = self.key(labels)?;
        let mut state = self.set.lock();
        Ok(state
            .pending
            .get_mut(self.index)
            .is_some_and(|series| series.remove(&key).is_some()))
    }

    fn key(&self, labels: &[&str]) -> Result<Box<[String]>, MetricError> {
        if labels.len() != self.decl.labels.len() {
            return Err(MetricError::LabelValues {
                metric: self.decl.name.clone(),
                labels: self.decl.labels.to_vec(),
                given: labels.len(),
            });
        }
        Ok(labels.iter().map(|l| (*l).to_owned()).collect())
    }

    fn bad_value(&self, value: f64, allowed: &'static str) -> MetricError {
        MetricError::Value {
            metric: self.decl.name.clone(),
            value: value.to_string(),
            allowed,
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metric")
            .field("name", &self.decl.name)
            .field("labels", &self.decl.labels)
            .finish()
    }
}

/// A declared counter. Label values are given in the order of the declared label names.
#[derive(Clone, Debug)]
pub struct Counter {
    handle: Handle,
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
        if !value.is_finite() || value < 0.0 {
            return Err(self.handle.bad_value(value, COUNTER_VALUE));
        }
        self.handle.write(
            labels,
            || Value::Number(0.0),
            |v| {
                if let Value::Number(total) = v {
                    *total += value;
                }
            },
        )
    }

    /// Sets the total (from a source that counts itself; finite, not negative).
    ///
    /// # Errors
    /// As [`add`](Self::add).
    pub fn set_total(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        if !value.is_finite() || value < 0.0 {
            return Err(self.handle.bad_value(value, COUNTER_VALUE));
        }
        self.handle.write(
            labels,
            || Value::Number(value),
            |v| *v = Value::Number(value),
        )
    }

    /// Forgets the series with these label values and its total (written again, it starts from 0): it is off the pages (of a staged
    /// set, from the next [`commit`](MetricSet::commit)) until written again. Returns whether
    /// there was such a series.
    ///
    /// # Errors
    /// As [`Counter::inc`].
    pub fn remove(&self, labels: &[&str]) -> Result<bool, MetricError> {
        self.handle.remove(labels)
    }
}

/// A declared gauge.
#[derive(Clone, Debug)]
pub struct Gauge {
    handle: Handle,
}

impl Gauge {
    /// Sets the value.
    ///
    /// # Errors
    /// As [`Counter::inc`].
    pub fn set(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        self.handle.write(
            labels,
            || Value::Number(value),
            |v| *v = Value::Number(value),
        )
    }

    /// Adds `value` (negative to subtract).
    ///
    /// # Errors
    /// As [`Counter::inc`].
    pub fn add(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        self.handle.write(
            labels,
            || Value::Number(0.0),
            |v| {
                if let Value::Number(current) = v {
                    *current += value;
                }
            },
        )
    }

    /// Forgets the series with these label values: it is off the pages (of a staged
    /// set, from the next [`commit`](MetricSet::commit)) until written again. Returns whether
    /// there was such a series.
    ///
    /// # Errors
    /// As [`Counter::inc`].
    pub fn remove(&self, labels: &[&str]) -> Result<bool, MetricError> {
        self.handle.remove(labels)
    }
}

/// A declared histogram.
#[derive(Clone, Debug)]
pub struct Histogram {
    handle: Handle,
}

impl Histogram {
    /// Records one observation.
    ///
    /// # Errors
    /// As [`Counter::inc`], and a NaN.
    pub fn observe(&self, labels: &[&str], value: f64) -> Result<(), MetricError> {
        if value.is_nan() {
            return Err(self.handle.bad_value(value, OBSERVATION));
        }
        let Kind::Histogram(bounds) = &self.handle.decl.kind else {
            return Ok(());
        };
        // `+Inf` is the last bound: every observation that is not NaN has a bucket.
        let bucket = bounds.iter().position(|&le| value <= le);
        let new = || Value::Histogram {
            counts: vec![0; bounds.len()].into_boxed_slice(),
            sum: 0.0,
        };
        self.handle.write(labels, new, |v| {
            if let Value::Histogram { counts, sum } = v {
                if let Some(count) = bucket.and_then(|i| counts.get_mut(i)) {
                    *count = count.saturating_add(1);
                }
                *sum += value;
            }
        })
    }

    /// Forgets the series with these label values and its observations: it is off the pages (of a staged
    /// set, from the next [`commit`](MetricSet::commit)) until written again. Returns whether
    /// there was such a series.
    ///
    /// # Errors
    /// As [`Counter::inc`].
    pub fn remove(&self, labels: &[&str]) -> Result<bool, MetricError> {
        self.handle.remove(labels)
    }
}

/// A declared info metric.
#[derive(Clone, Debug)]
pub struct Info {
    handle: Handle,
}

impl Info {
    /// Sets the information: the label values, replacing the previous ones.
    ///
    /// # Errors
    /// As [`Counter::inc`].
    pub fn set(&self, labels: &[&str]) -> Result<(), MetricError> {
        let key = self.handle.key(labels)?;
        let mut state = self.handle.set.lock();
        if let Some(series) = state.pending.get_mut(self.handle.index) {
            series.clear();
            series.insert(key, Value::Present);
        }
        Ok(())
    }

    /// Forgets the information: the metric is off the pages (of a staged set, from the next
    /// [`commit`](MetricSet::commit)) until [`set`](Self::set) again.
    pub fn clear(&self) {
        let mut state = self.handle.set.lock();
        if let Some(series) = state.pending.get_mut(self.handle.index) {
            series.clear();
        }
    }
}

/// A declared state set.
#[derive(Clone, Debug)]
pub struct States {
    handle: Handle,
}

impl States {
    /// Sets the current state of the series with these label values.
    ///
    /// # Errors
    /// As [`Counter::inc`], and [`MetricError::UnknownState`].
    pub fn set(&self, labels: &[&str], state: &str) -> Result<(), MetricError> {
        let Kind::StateSet(states) = &self.handle.decl.kind else {
            return Ok(());
        };
        let Some(index) = states.iter().position(|s| s == state) else {
            return Err(MetricError::UnknownState {
                name: self.handle.decl.name.clone(),
                state: state.to_owned(),
                states: states.to_vec(),
            });
        };
        self.handle
            .write(labels, || Value::State(index), |v| *v = Value::State(index))
    }

    /// Forgets the series with these label values (all of its states): it is off the pages (of a staged
    /// set, from the next [`commit`](MetricSet::commit)) until written again. Returns whether
    /// there was such a series.
    ///
    /// # Errors
    /// As [`Counter::inc`].
    pub fn remove(&self, labels: &[&str]) -> Result<bool, MetricError> {
        self.handle.remove(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use profilis_test_support::{parse_exposition, parse_openmetrics};

    fn text(set: &MetricSet) -> String {
        set.render(ExpositionFormat::Text)
    }

    #[test]
    fn bad_names_and_labels_are_errors_naming_them() {
        let set = MetricSet::new();
        for name in ["", "1x", "a-b", "a b", "é"] {
            let errors = [
                set.counter(name, "", &[]).err(),
                set.gauge(name, "", &[]).err(),
                set.histogram(name, "", &[], &[1.0]).err(),
                set.info(name, "", &[]).err(),
                set.state_set(name, "", &[], &["a"]).err(),
            ];
            for error in errors {
                assert!(
                    matches!(&error, Some(MetricError::MetricName { name: got, .. }) if got == name),
                    "{name:?}: {error:?}"
                );
            }
        }
        // A state set's name is a label name too: no colons.
        assert!(set.state_set("ns:health", "", &[], &["a"]).is_err());
        for label in ["", "1a", "a-b", "a:b", "__x"] {
            let error = set.gauge("g", "", &["ok", label]).unwrap_err();
            assert_eq!(
                error,
                MetricError::LabelName {
                    metric: "g".into(),
                    label: label.into()
                }
            );
            assert!(error.to_string().contains(&format!("{label:?}")), "{error}");
        }
        let error = set.counter("c", "", &["a", "a"]).unwrap_err();
        assert_eq!(
            error,
            MetricError::DuplicateLabel {
                metric: "c_total".into(),
                label: "a".into()
            }
        );
        for kind in ["gauge", "counter", "info", "state set", "histogram"] {
            for label in ["le", "quantile"] {
                let labels = ["a", label];
                let error = match kind {
                    "gauge" => set.gauge("g_reserved", "", &labels).err(),
                    "counter" => set.counter("c_reserved", "", &labels).err(),
                    "info" => set.info("i_reserved", "", &labels).err(),
                    "state set" => set.state_set("s_reserved", "", &labels, &["x"]).err(),
                    _ => set.histogram("h_reserved", "", &labels, &[1.0]).err(),
                };
                assert!(
                    matches!(&error, Some(MetricError::ReservedLabel { label: l, .. }) if l == label),
                    "{kind} with {label}: {error:?}"
                );
            }
        }
        let error = set.histogram("h", "", &["le"], &[1.0]).unwrap_err();
        assert!(
            matches!(&error, MetricError::ReservedLabel { metric, label, .. } if metric == "h" && label == "le"),
            "{error:?}"
        );
        let error = set
            .state_set("health", "", &["health"], &["up"])
            .unwrap_err();
        assert!(
            matches!(&error, MetricError::ReservedLabel { label, .. } if label == "health"),
            "{error:?}"
        );
        assert!(matches!(
            set.state_set("s", "", &[], &[]),
            Err(MetricError::NoStates { .. })
        ));
        assert!(matches!(
            set.state_set("s", "", &[], &["a", ""]),
            Err(MetricError::EmptyState { .. })
        ));
        assert!(matches!(
            set.state_set("s", "", &[], &["a", "a"]),
            Err(MetricError::DuplicateState { state, .. }) if state == "a"
        ));
        // None of the refused declarations took a name.
        set.gauge("g", "", &[]).unwrap();
        set.counter("c", "", &[]).unwrap();
    }

    #[test]
    fn bad_buckets_name_the_histogram_and_the_buckets() {
        let set = MetricSet::new();
        for (buckets, reason) in [
            (&[][..], "there are none"),
            (&[1.0, f64::NAN][..], "one is not a finite number"),
            (&[1.0, f64::INFINITY][..], "one is not a finite number"),
            (&[2.0, 1.0][..], "they are not in increasing order"),
            (&[1.0, 1.0][..], "they are not in increasing order"),
        ] {
            let error = set.histogram("latency", "", &[], buckets).unwrap_err();
            assert_eq!(
                error,
                MetricError::Buckets {
                    metric: "latency".into(),
                    value: format!("{buckets:?}"),
                    reason
                }
            );
            assert!(error.to_string().contains("latency"), "{error}");
        }
        // Zero and negative bounds are fine: a histogram may measure anything.
        set.histogram("delta", "", &[], &[-1.0, 0.0, 1.0]).unwrap();
    }

    #[test]
    fn names_get_their_suffixes_and_one_name_is_one_metric() {
        let set = MetricSet::new();
        set.counter("jobs", "", &[]).unwrap();
        let error = set.counter("jobs_total", "", &[]).unwrap_err();
        assert_eq!(
            error,
            MetricError::NameTaken {
                name: "jobs_total".into(),
                existing: "a counter of the same metric set".into()
            }
        );
        assert!(matches!(
            set.gauge("jobs_total", "", &[]),
            Err(MetricError::NameTaken { .. })
        ));
        set.info("build", "", &["version"]).unwrap();
        assert!(matches!(
            set.gauge("build_info", "", &[]),
            Err(MetricError::NameTaken { name, .. }) if name == "build_info"
        ));
    }

    #[test]
    fn writes_with_wrong_label_counts_or_values_are_errors_naming_them() {
        let set = MetricSet::new();
        let counter = set.counter("polls", "", &["target", "outcome"]).unwrap();
        let error = counter.inc(&["a"]).unwrap_err();
        assert_eq!(
            error,
            MetricError::LabelValues {
                metric: "polls_total".into(),
                labels: vec!["target".into(), "outcome".into()],
                given: 1
            }
        );
        assert_eq!(
            error.to_string(),
            "polls_total has labels [\"target\", \"outcome\"]: give 2 label values in that order, not 1"
        );
        for value in [-1.0, f64::NAN, f64::INFINITY] {
            let error = counter.add(&["a", "ok"], value).unwrap_err();
            assert!(
                matches!(&error, MetricError::Value { metric, value: got, .. } if metric == "polls_total" && *got == value.to_string()),
                "{error:?}"
            );
            assert!(counter.set_total(&["a", "ok"], value).is_err());
        }
        let histogram = set.histogram("size", "", &[], &[1.0]).unwrap();
        let error = histogram.observe(&[], f64::NAN).unwrap_err();
        assert_eq!(
            error.to_string(),
            "NaN is not allowed for size: a histogram observes numbers, not NaN"
        );
        let states = set.state_set("mode", "", &[], &["on", "off"]).unwrap();
        assert!(matches!(
            states.set(&[], "sideways"),
            Err(MetricError::UnknownState { state, .. }) if state == "sideways"
        ));
        assert!(set.info("app", "", &["version"]).unwrap().set(&[]).is_err());
        // Nothing refused was written.
        assert_eq!(text(&set), "");
    }

    #[test]
    fn every_type_renders_in_the_text_format() {
        let set = MetricSet::new();
        let counter = set.counter("polls", "Polls made.", &["outcome"]).unwrap();
        let gauge = set
            .gauge("app_requests_current", "Requests now.", &[])
            .unwrap();
        let histogram = set
            .histogram("poll_seconds", "Poll time.", &["target"], &[0.1, 1.0])
            .unwrap();
        let info = set.info("target", "The target.", &["version"]).unwrap();
        let health = set
            .state_set("app_health", "Health.", &[], &["healthy", "unhealthy"])
            .unwrap();
        set.gauge("never_set", "Left off.", &[]).unwrap();
        counter.inc(&["ok"]).unwrap();
        counter.add(&["ok"], 2.5).unwrap();
        counter.set_total(&["failed"], 7.0).unwrap();
        gauge.set(&[], 3.0).unwrap();
        gauge.add(&[], -1.0).unwrap();
        for value in [0.05, 0.5, 0.5, 3.0] {
            histogram.observe(&["a\"b"], value).unwrap();
        }
        info.set(&["1.0"]).unwrap();
        info.set(&["1.1"]).unwrap();
        health.set(&[], "unhealthy").unwrap();
        assert_eq!(
            text(&set),
            "# HELP app_health Health.\n\
             # TYPE app_health gauge\n\
             app_health{app_health=\"healthy\"} 0\n\
             app_health{app_health=\"unhealthy\"} 1\n\
             \n\
             # HELP app_requests_current Requests now.\n\
             # TYPE app_requests_current gauge\n\
             app_requests_current 2\n\
             \n\
             # HELP poll_seconds Poll time.\n\
             # TYPE poll_seconds histogram\n\
             poll_seconds_bucket{target=\"a\\\"b\",le=\"0.1\"} 1\n\
             poll_seconds_bucket{target=\"a\\\"b\",le=\"1\"} 3\n\
             poll_seconds_bucket{target=\"a\\\"b\",le=\"+Inf\"} 4\n\
             poll_seconds_sum{target=\"a\\\"b\"} 4.05\n\
             poll_seconds_count{target=\"a\\\"b\"} 4\n\
             \n\
             # HELP polls_total Polls made.\n\
             # TYPE polls_total counter\n\
             polls_total{outcome=\"failed\"} 7\n\
             polls_total{outcome=\"ok\"} 3.5\n\
             \n\
             # HELP target_info The target.\n\
             # TYPE target_info gauge\n\
             target_info{version=\"1.1\"} 1\n\
             \n"
        );
        parse_exposition(&text(&set)).unwrap();
    }

    #[test]
    fn every_type_renders_in_openmetrics() {
        let set = MetricSet::new();
        set.counter("polls", "Polls.", &[])
            .unwrap()
            .inc(&[])
            .unwrap();
        set.gauge("level", "", &[]).unwrap().set(&[], 0.5).unwrap();
        let h = set.histogram("size", "Sizes.", &[], &[10.0]).unwrap();
        h.observe(&[], 3.0).unwrap();
        set.info("app", "", &["v"]).unwrap().set(&["2"]).unwrap();
        let states = set
            .state_set("mode", "", &["part"], &["on", "off"])
            .unwrap();
        states.set(&["x"], "off").unwrap();
        let page = set.render(ExpositionFormat::OpenMetrics);
        assert_eq!(
            page,
            "# TYPE app_info gauge\n\
             app_info{v=\"2\"} 1\n\
             # TYPE level gauge\n\
             level 0.5\n\
             # TYPE mode gauge\n\
             mode{part=\"x\",mode=\"off\"} 1\n\
             mode{part=\"x\",mode=\"on\"} 0\n\
             # TYPE polls counter\n\
             # HELP polls Polls.\n\
             polls_total 1\n\
             # TYPE size histogram\n\
             # HELP size Sizes.\n\
             size_bucket{le=\"10\"} 1\n\
             size_bucket{le=\"+Inf\"} 1\n\
             size_count 1\n\
             size_sum 3\n\
             # EOF\n"
        );
        parse_openmetrics(&page).unwrap();
    }

    #[test]
    fn a_live_set_shows_writes_at_once_and_ignores_staging() {
        let set = MetricSet::new();
        let gauge = set.gauge("g", "", &[]).unwrap();
        gauge.set(&[], 1.0).unwrap();
        set.begin();
        set.withdraw();
        assert_eq!(text(&set), "# TYPE g gauge\ng 1\n\n");
        gauge.set(&[], 2.0).unwrap();
        assert_eq!(text(&set), "# TYPE g gauge\ng 2\n\n");
    }

    #[test]
    fn a_staged_set_shows_only_commits_and_counters_keep_totals() {
        let set = MetricSet::staged();
        let gauge = set.gauge("g", "", &["k"]).unwrap();
        let counter = set.counter("c", "", &[]).unwrap();
        let histogram = set.histogram("h", "", &[], &[1.0]).unwrap();
        let states = set.state_set("s", "", &[], &["a", "b"]).unwrap();
        let info = set.info("i", "", &["v"]).unwrap();
        set.begin();
        gauge.set(&["x"], 1.0).unwrap();
        gauge.set(&["y"], 2.0).unwrap();
        counter.add(&[], 2.0).unwrap();
        histogram.observe(&[], 0.5).unwrap();
        states.set(&[], "b").unwrap();
        info.set(&["1"]).unwrap();
        assert_eq!(text(&set), "", "nothing before the first commit");
        set.commit();
        let first = text(&set);
        assert!(
            first.contains("g{k=\"x\"} 1\n") && first.contains("g{k=\"y\"} 2\n"),
            "{first}"
        );
        assert!(
            first.contains("s{s=\"b\"} 1\n") && first.contains("i_info{v=\"1\"} 1\n"),
            "{first}"
        );

        // An update under way: the page is the last commit's, whole.
        set.begin();
        gauge.set(&["x"], 10.0).unwrap();
        counter.add(&[], 1.0).unwrap();
        assert_eq!(text(&set), first);
        set.commit();
        let second = text(&set);
        // Gauges, infos and state sets not set in the update are gone; counters and
        // histograms keep their totals.
        assert!(second.contains("g{k=\"x\"} 10\n"), "{second}");
        assert!(!second.contains("k=\"y\""), "{second}");
        assert!(
            !second.contains("\ns{") && !second.contains("i_info"),
            "{second}"
        );
        assert!(second.contains("\nc_total 3\n"), "{second}");
        assert!(second.contains("\nh_count 1\n"), "{second}");

        // Withdrawn: no sample until the next commit, which has the counter's total.
        set.withdraw();
        assert_eq!(text(&set), "");
        set.begin();
        counter.inc(&[]).unwrap();
        assert_eq!(text(&set), "");
        set.commit();
        assert_eq!(
            text(&set),
            "# TYPE c_total counter\nc_total 4\n\n\
             # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n\n"
        );
    }

    #[test]
    fn a_render_during_updates_never_sees_half_of_one() {
        // Each update sets `a` and `b` to the same value; a page must never show them apart.
        // The writer goes on until the reader has seen several commits, so the two overlap.
        use std::collections::BTreeSet;
        use std::sync::atomic::AtomicBool;
        use std::time::{Duration, Instant};

        const COMMITS_SEEN: usize = 5;
        let set = MetricSet::staged();
        let a = set.gauge("a", "", &[]).unwrap();
        let b = set.gauge("b", "", &[]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + Duration::from_secs(60);
        let writer = {
            let (set, stop) = (set.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    set.begin();
                    a.set(&[], f64::from(i)).unwrap();
                    b.set(&[], f64::from(i)).unwrap();
                    set.commit();
                    i += 1;
                }
            })
        };
        let mut seen = BTreeSet::new();
        while seen.len() < COMMITS_SEEN && Instant::now() < deadline {
            let page = text(&set);
            let value = |name| profilis_test_support::sample(&page, name, &[]);
            assert_eq!(value("a"), value("b"), "{page}");
            if let Some(a) = value("a") {
                seen.insert(a.to_bits());
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(
            seen.len() >= COMMITS_SEEN,
            "the reader saw {} distinct commits, not {COMMITS_SEEN}",
            seen.len()
        );
    }

    #[test]
    fn names_a_metric_writes_beside_its_own_clash_too() {
        // A counter `x` writes `x_total`, and its OpenMetrics family is `x`.
        let set = MetricSet::new();
        set.counter("app_x", "", &[]).unwrap();
        assert_eq!(
            set.gauge("app_x", "", &[]).unwrap_err(),
            MetricError::NameTaken {
                name: "app_x".into(),
                existing: "a counter of the same metric set (app_x_total writes app_x)".into()
            }
        );
        let set = MetricSet::new();
        set.gauge("app_x", "", &[]).unwrap();
        let error = set.counter("app_x", "", &[]).unwrap_err();
        assert_eq!(
            error,
            MetricError::NameClash {
                metric: "app_x_total".into(),
                name: "app_x".into(),
                existing: "a gauge of the same metric set".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "app_x_total would write app_x, which is already published as a gauge of the same \
             metric set; one name, one metric"
        );
        // A histogram `h` writes `h_bucket`, `h_count` and `h_sum`, whichever comes first.
        for sample in ["h_bucket", "h_count", "h_sum"] {
            let set = MetricSet::new();
            set.histogram("h", "", &[], &[1.0]).unwrap();
            assert_eq!(
                set.gauge(sample, "", &[]).unwrap_err(),
                MetricError::NameTaken {
                    name: sample.into(),
                    existing: format!("a histogram of the same metric set (h writes {sample})")
                }
            );
            let set = MetricSet::new();
            set.state_set(sample, "", &[], &["a"]).unwrap();
            assert_eq!(
                set.histogram("h", "", &[], &[1.0]).unwrap_err(),
                MetricError::NameClash {
                    metric: "h".into(),
                    name: sample.into(),
                    existing: "a state set of the same metric set".into()
                }
            );
        }
        // A counter named as a histogram's sample, and a histogram over a counter's family.
        let set = MetricSet::new();
        set.histogram("h", "", &[], &[1.0]).unwrap();
        assert!(matches!(
            set.counter("h_count", "", &[]),
            Err(MetricError::NameClash { name, .. }) if name == "h_count"
        ));
        assert!(matches!(
            set.counter("h", "", &[]),
            Err(MetricError::NameClash { metric, name, .. }) if metric == "h_total" && name == "h"
        ));
        set.counter("c", "", &[]).unwrap();
        assert!(matches!(
            set.histogram("c", "", &[], &[1.0]),
            Err(MetricError::NameTaken { name, .. }) if name == "c"
        ));
        // An info metric is the gauge `<name>_info`: the base name stays free.
        set.info("build", "", &["version"]).unwrap();
        set.gauge("build", "", &[]).unwrap();
        // Names that only look alike are fine.
        set.gauge("h_counts", "", &[]).unwrap();
        set.gauge("c_totals", "", &[]).unwrap();
    }

    #[test]
    fn the_exporters_own_names_are_reserved() {
        let set = MetricSet::new();
        for name in crate::process::FAMILIES {
            let error = set.gauge(name, "", &[]).unwrap_err();
            assert_eq!(
                error,
                MetricError::Reserved {
                    metric: name.into(),
                    name: name.into(),
                    owner: "one of the exporter's process metrics"
                }
            );
            assert!(error.to_string().contains(name), "{error}");
        }
        // The process counter's OpenMetrics family, and a histogram writing a process name.
        assert!(matches!(
            set.state_set("process_cpu_seconds", "", &[], &["a"]),
            Err(MetricError::Reserved { name, .. }) if name == "process_cpu_seconds"
        ));
        assert!(matches!(
            set.counter("process_cpu_seconds", "", &[]),
            Err(MetricError::Reserved { metric, .. }) if metric == "process_cpu_seconds_total"
        ));
        assert_eq!(
            set.histogram("process_threads", "", &[], &[1.0])
                .unwrap_err()
                .to_string(),
            "process_threads is not allowed: it would write process_threads, which is one of \
             the exporter's process metrics; choose another name"
        );
        // profilis's own namespace, whatever the type.
        for error in [
            set.gauge("profilis_queue_depth", "", &[]).err(),
            set.counter("profilis_mine", "", &[]).err(),
            set.info("profilis_app", "", &[]).err(),
            set.histogram("profilis_h", "", &[], &[1.0]).err(),
            set.state_set("profilis_state", "", &[], &["a"]).err(),
        ] {
            assert!(
                matches!(&error, Some(MetricError::Reserved { name, owner, .. }) if name.starts_with("profilis_") && owner.contains("profilis_*")),
                "{error:?}"
            );
        }
        // Nothing refused was declared; other `process_` names are the application's.
        set.gauge("process_queue_depth", "", &[]).unwrap();
        assert_eq!(text(&set), "");
    }

    #[test]
    fn publishing_checks_every_name_written_against_other_sets_and_info_metrics() {
        let first = MetricSet::new();
        first
            .histogram("metric_set_test_h", "", &[], &[1.0])
            .unwrap();
        let _first = first.publish().unwrap();
        let second = MetricSet::new();
        second.gauge("metric_set_test_h_sum", "", &[]).unwrap();
        assert_eq!(
            second.publish().unwrap_err(),
            MetricError::NameTaken {
                name: "metric_set_test_h_sum".into(),
                existing: "a histogram of a published metric set (metric_set_test_h writes metric_set_test_h_sum)".into()
            }
        );
        // A published set declaring a clashing name is refused at once.
        assert!(matches!(
            first.counter("metric_set_test_h", "", &[]),
            Err(MetricError::NameClash { name, .. }) if name == "metric_set_test_h"
        ));
        // State sets and info metrics of `crate::info` refuse a name a published set writes.
        assert!(matches!(
            crate::StateSet::new("metric_set_test_h_count", &["a"]),
            Err(MetricError::NameTaken { existing, .. }) if existing.contains("metric_set_test_h writes")
        ));
        let _state = crate::StateSet::new("metric_set_test_state", &["a"]).unwrap();
        let third = MetricSet::new();
        third.counter("metric_set_test_state", "", &[]).unwrap();
        assert_eq!(
            third.publish().unwrap_err(),
            MetricError::NameClash {
                metric: "metric_set_test_state_total".into(),
                name: "metric_set_test_state".into(),
                existing: "a state set with states [\"a\"]".into()
            }
        );
    }

    #[test]
    fn series_can_be_removed_and_the_set_cleared() {
        let set = MetricSet::new();
        let counter = set.counter("c", "", &["k"]).unwrap();
        let gauge = set.gauge("g", "", &["k"]).unwrap();
        let histogram = set.histogram("h", "", &["k"], &[1.0]).unwrap();
        let info = set.info("i", "", &["v"]).unwrap();
        let states = set.state_set("s", "", &["k"], &["a", "b"]).unwrap();
        for k in ["x", "y"] {
            counter.add(&[k], 2.0).unwrap();
            gauge.set(&[k], 1.0).unwrap();
            histogram.observe(&[k], 0.5).unwrap();
            states.set(&[k], "b").unwrap();
        }
        info.set(&["1"]).unwrap();
        assert!(counter.remove(&["x"]).unwrap());
        assert!(gauge.remove(&["x"]).unwrap());
        assert!(histogram.remove(&["x"]).unwrap());
        assert!(states.remove(&["x"]).unwrap());
        assert!(!gauge.remove(&["x"]).unwrap(), "already gone");
        assert!(!gauge.remove(&["never"]).unwrap());
        assert!(matches!(
            gauge.remove(&[]),
            Err(MetricError::LabelValues { given: 0, .. })
        ));
        info.clear();
        let page = text(&set);
        assert!(!page.contains("k=\"x\""), "{page}");
        assert!(!page.contains("i_info"), "{page}");
        for line in [
            "c_total{k=\"y\"} 2\n",
            "g{k=\"y\"} 1\n",
            "h_count{k=\"y\"} 1\n",
            "s{k=\"y\",s=\"b\"} 1\n",
        ] {
            assert!(page.contains(line), "{line}: {page}");
        }
        // A removed counter starts again from 0.
        counter.inc(&["x"]).unwrap();
        assert!(text(&set).contains("c_total{k=\"x\"} 1\n"));
        set.clear();
        assert_eq!(text(&set), "");
        gauge.set(&["z"], 3.0).unwrap();
        assert_eq!(text(&set), "# TYPE g gauge\ng{k=\"z\"} 3\n\n");
    }

    #[test]
    fn removals_of_a_staged_set_wait_for_the_commit() {
        let set = MetricSet::staged();
        let counter = set.counter("c", "", &["k"]).unwrap();
        let info = set.info("i", "", &["v"]).unwrap();
        set.begin();
        counter.inc(&["x"]).unwrap();
        counter.inc(&["y"]).unwrap();
        info.set(&["1"]).unwrap();
        set.commit();
        let committed = text(&set);
        assert!(committed.contains("c_total{k=\"x\"} 1\n"), "{committed}");

        set.begin();
        counter.remove(&["x"]).unwrap();
        info.clear();
        assert_eq!(text(&set), committed, "not before the commit");
        set.commit();
        assert_eq!(text(&set), "# TYPE c_total counter\nc_total{k=\"y\"} 1\n\n");

        set.begin();
        set.clear();
        assert_eq!(text(&set), "# TYPE c_total counter\nc_total{k=\"y\"} 1\n\n");
        set.commit();
        assert_eq!(text(&set), "", "counters' totals are forgotten too");
        // Counters keep totals across updates, so a cleared one starts from 0.
        set.begin();
        counter.inc(&["y"]).unwrap();
        set.commit();
        assert_eq!(text(&set), "# TYPE c_total counter\nc_total{k=\"y\"} 1\n\n");
    }

    #[test]
    fn publishing_puts_the_set_on_pages_and_refuses_taken_names() {
        let first = MetricSet::new();
        first
            .gauge("metric_set_test_shared", "", &[])
            .unwrap()
            .set(&[], 4.0)
            .unwrap();
        let guard = first.publish().unwrap();
        let mut page = Page::default();
        add_to(&mut page);
        assert!(page.render().contains("\nmetric_set_test_shared 4\n"));

        let second = MetricSet::new();
        second.counter("metric_set_test_calls", "", &[]).unwrap();
        second.gauge("metric_set_test_shared", "", &[]).unwrap();
        assert_eq!(
            second.publish().unwrap_err(),
            MetricError::NameTaken {
                name: "metric_set_test_shared".into(),
                existing: "a gauge of a published metric set".into()
            }
        );
        // An unpublished set may declare a published name (it is checked when published);
        // a published set declaring a new name is checked at once.
        second.gauge("metric_set_test_other", "", &[]).unwrap();
        first.gauge("metric_set_test_other", "", &[]).unwrap();
        crate::info("metric_set_test_shared_info", &[]).unwrap();
        assert_eq!(
            first.info("metric_set_test_shared", "", &[]).unwrap_err(),
            MetricError::NameTaken {
                name: "metric_set_test_shared_info".into(),
                existing: "an info metric".into()
            }
        );
        // Info metrics and state sets refuse the published set's names.
        assert_eq!(
            crate::StateSet::new("metric_set_test_other", &["a"]).unwrap_err(),
            MetricError::NameTaken {
                name: "metric_set_test_other".into(),
                existing: "a gauge of a published metric set".into()
            }
        );
        assert!(matches!(
            crate::info("metric_set_test_other_info", &[]),
            Ok(())
        ));
        // Off the pages when the guard goes; then the other set may have the name.
        drop(guard);
        let mut page = Page::default();
        add_to(&mut page);
        assert!(!page.render().contains("metric_set_test_shared "));
        let _second = second.publish().unwrap();
        let again = first.publish().unwrap_err();
        assert!(
            matches!(&again, MetricError::NameTaken { name, .. } if name.starts_with("metric_set_test_")),
            "{again:?}"
        );
    }

    #[test]
    fn a_set_published_twice_stays_until_both_guards_go() {
        let set = MetricSet::new();
        let gauge = set.gauge("metric_set_test_twice", "", &[]).unwrap();
        gauge.set(&[], 1.0).unwrap();
        let on_pages = || {
            let mut page = Page::default();
            add_to(&mut page);
            page.render().contains("\nmetric_set_test_twice 1\n")
        };
        let one = set.publish().unwrap();
        let two = set.publish().unwrap();
        drop(one);
        assert!(on_pages());
        drop(two);
        assert!(!on_pages());
    }
}
