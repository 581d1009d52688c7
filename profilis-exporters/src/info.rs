//! Info metrics (`app_info{version="1.2.3"} 1`) and state sets (`app_health{app_health="healthy"} 1`
//! and a 0 for each other state), published by the application and put on every page the
//! exporter renders. They live in this process-wide registry, not in the `metrics` recorder, so
//! they can be published before or after the exporter is installed, an info can be replaced
//! and a state changed without leaving old series behind.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::text_format::{self, is_label_key, is_metric_name, reserved_label, Page, Sample};

/// What the names given to [`info`] must look like.
const METRIC_NAME: &str =
    "an info metric's name is [a-zA-Z_:][a-zA-Z0-9_:]*, not empty (`_info` is added if it does not end with it)";
/// What the name of a [`StateSet`] must look like: it is also its label's name.
const STATE_SET_NAME: &str =
    "a state set's name is also its label's name: [a-zA-Z_][a-zA-Z0-9_]*, not starting with __";

/// Why an info metric or a state set could not be published: each variant names the value at
/// fault and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricError {
    /// A metric name with characters the format does not allow, or empty.
    #[error("{name:?} is not allowed as a metric name: {allowed}")]
    MetricName {
        /// The name as given.
        name: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// A label name with characters the format does not allow, or reserved (`__...`).
    #[error("{label:?} is not allowed as a label name of {metric}: a label name is [a-zA-Z_][a-zA-Z0-9_]*, not starting with __")]
    LabelName {
        /// The metric.
        metric: String,
        /// The label name as given.
        label: String,
    },
    /// The same label name twice.
    #[error("label {label:?} is given twice for {metric}; each label name once")]
    DuplicateLabel {
        /// The metric.
        metric: String,
        /// The label name.
        label: String,
    },
    /// A state set without states.
    #[error("state set {name} has no states; give at least one")]
    NoStates {
        /// The state set.
        name: String,
    },
    /// An empty state (Prometheus reads a label with an empty value as no label).
    #[error("state set {name} has an empty state; each state must be a non-empty text")]
    EmptyState {
        /// The state set.
        name: String,
    },
    /// The same state twice.
    #[error("state {state:?} is given twice for state set {name}; each state once")]
    DuplicateState {
        /// The state set.
        name: String,
        /// The state.
        state: String,
    },
    /// [`StateSet::set`] with a state the set does not have.
    #[error("{state:?} is not a state of state set {name}; its states are {states:?}")]
    UnknownState {
        /// The state set.
        name: String,
        /// The state asked for.
        state: String,
        /// The states it has.
        states: Vec<String>,
    },
    /// The name is already published as something else: an info metric, or a state set with
    /// other states, or a metric of a published [`MetricSet`](crate::metric_set::MetricSet);
    /// or declared twice in one set.
    #[error("{name} is already published as {existing}; one name, one metric")]
    NameTaken {
        /// The metric name.
        name: String,
        /// What has it.
        existing: String,
    },
    /// A name a declared metric would write beside its own (a counter's OpenMetrics family,
    /// its name without `_total`; a histogram's `_bucket`, `_count` and `_sum` samples) that
    /// another metric already has or writes.
    #[error("{metric} would write {name}, which is already published as {existing}; one name, one metric")]
    NameClash {
        /// The metric being declared or published.
        metric: String,
        /// The name it would write that is taken.
        name: String,
        /// What has it.
        existing: String,
    },
    /// A name a declared metric would write that the exporter keeps for its own families: the
    /// process metrics it renders (`process_open_fds`, ...) and profilis's own namespace,
    /// `profilis_*`.
    #[error(
        "{metric} is not allowed: it would write {name}, which is {owner}; choose another name"
    )]
    Reserved {
        /// The metric being declared.
        metric: String,
        /// The reserved name it would write.
        name: String,
        /// Whose the name is.
        owner: &'static str,
    },
    /// A write to a declared metric with another number of label values than it has label
    /// names.
    #[error("{metric} has labels {labels:?}: give {} label values in that order, not {given}", labels.len())]
    LabelValues {
        /// The metric.
        metric: String,
        /// Its declared label names.
        labels: Vec<String>,
        /// How many values were given.
        given: usize,
    },
    /// A value a metric cannot take: a counter's negative or not finite amount, a NaN
    /// observation.
    #[error("{value} is not allowed for {metric}: {allowed}")]
    Value {
        /// The metric.
        metric: String,
        /// The value, as written by `{}`.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// A histogram's buckets that cannot be used.
    #[error("buckets {value} of histogram {metric} are not allowed: {reason}; expected finite numbers in increasing order (`+Inf` is added)")]
    Buckets {
        /// The histogram.
        metric: String,
        /// The buckets, as given.
        value: String,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// A label name kept for something else: `le` (histogram buckets) and `quantile` (summary
    /// quantiles) on any declared metric, a state set's own name (the label of its states).
    #[error("{label:?} is not allowed as a label name of {metric}: {why}")]
    ReservedLabel {
        /// The metric.
        metric: String,
        /// The label name.
        label: String,
        /// Why it is kept.
        why: &'static str,
    },
}

/// The label names of metric `metric`, checked: each allowed by the format, none kept by
/// Prometheus ([`reserved_label`]), none twice.
pub(crate) fn check_label_names(metric: &str, labels: &[&str]) -> Result<(), MetricError> {
    for (i, label) in labels.iter().enumerate() {
        if !is_label_key(label) {
            return Err(MetricError::LabelName {
                metric: metric.to_owned(),
                label: (*label).to_owned(),
            });
        }
        if let Some(why) = reserved_label(label) {
            return Err(MetricError::ReservedLabel {
                metric: metric.to_owned(),
                label: (*label).to_owned(),
                why,
            });
        }
        if labels[..i].contains(label) {
            return Err(MetricError::DuplicateLabel {
                metric: metric.to_owned(),
                label: (*label).to_owned(),
            });
        }
    }
    Ok(())
}

/// The states of state set `name`, checked: at least one, none empty, none twice.
pub(crate) fn check_states(name: &str, states: &[&str]) -> Result<Box<[String]>, MetricError> {
    if states.is_empty() {
        return Err(MetricError::NoStates {
            name: name.to_owned(),
        });
    }
    for (i, state) in states.iter().enumerate() {
        if state.is_empty() {
            return Err(MetricError::EmptyState {
                name: name.to_owned(),
            });
        }
        if states[..i].contains(state) {
            return Err(MetricError::DuplicateState {
                name: name.to_owned(),
                state: (*state).to_owned(),
            });
        }
    }
    Ok(states.iter().map(|s| (*s).to_owned()).collect())
}

/// Publishes an info metric: a gauge of 1 whose labels carry the information, as
/// `app_info{version="1.2.3",commit="abc1234"} 1`. `name` gets `_info` added unless it ends with
/// it already. Publishing the same name again replaces its labels (one series per name).
///
/// The help text is a default one unless the application gives its own with
/// `metrics::describe_gauge!("app_info", "...")`. The series carries no `service`, `instance`
/// or `worker` labels (Prometheus adds the target's own). It is on every page rendered by the
/// exporter ([`render`](crate::render), `/metrics`), whether published before or after
/// [`install_exporter`](crate::install_exporter).
///
/// ```
/// # use profilis_exporters as profilis;
/// # fn main() -> Result<(), profilis::MetricError> {
/// profilis::info("shop", &[("version", "1.2.3"), ("region", "eu-west")])?;
/// // shop_info{version="1.2.3",region="eu-west"} 1
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`MetricError::MetricName`] or [`MetricError::LabelName`] naming a name the format does not
/// allow, [`MetricError::DuplicateLabel`], [`MetricError::Reserved`] for a name of the
/// exporter's own (`process_*`, `profilis_*`), or [`MetricError::NameTaken`] if a state set has
/// the name.
pub fn info(name: &str, labels: &[(&str, &str)]) -> Result<(), MetricError> {
    let info = Info::new(name, labels)?;
    crate::metric_set::reserved(&info.name, std::slice::from_ref(&info.name))?;
    // The published sets' lock first, then this registry's (the order `MetricSet::publish`
    // takes them in).
    let sets = crate::metric_set::published_sets();
    if let Some(existing) = sets.owner_of(&info.name) {
        return Err(MetricError::NameTaken {
            name: info.name,
            existing,
        });
    }
    let result = registry().publish_info(info);
    drop(sets);
    result
}

/// A state set: one series per possible state, labelled with the set's own name, the current
/// state's 1 and the others' 0, as the polling-exporter tutorial renders a health:
///
/// ```text
/// # TYPE app_health gauge
/// app_health{app_health="healthy"} 1
/// app_health{app_health="unhealthy"} 0
/// ```
///
/// A new set is in its first state. [`StateSet::set`] changes the state without blocking
/// (an atomic store); clones share the state. [`StateSet::new`] with a name already published
/// with the same states returns a handle on that set, in its current state, so two parts of a
/// program agree. Like [`info`], the set is on every page the exporter renders, and its help
/// text is replaced by `metrics::describe_gauge!`.
///
/// ```
/// # use profilis_exporters as profilis;
/// # fn main() -> Result<(), profilis::MetricError> {
/// use profilis::StateSet;
///
/// let health = StateSet::new("app_health", &["healthy", "unhealthy"])?;
/// assert_eq!(health.state(), "healthy");
/// health.set("unhealthy")?;
/// assert!(health.set("sleepy").is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StateSet {
    inner: Arc<StateSetInner>,
}

struct StateSetInner {
    name: String,
    states: Box<[String]>,
    /// The index of the current state in `states`.
    current: AtomicUsize,
}

impl StateSet {
    /// Publishes state set `name` with its possible `states`, the first of them current.
    ///
    /// # Errors
    /// [`MetricError::MetricName`] if `name` is not a valid label name (it is the label's
    /// name too), [`MetricError::NoStates`], [`MetricError::EmptyState`],
    /// [`MetricError::DuplicateState`], [`MetricError::Reserved`] for a name of the exporter's
    /// own (`process_*`, `profilis_*`), or
    /// [`MetricError::NameTaken`] if an info metric, or a state set with other states, has the
    /// name.
    pub fn new(name: &str, states: &[&str]) -> Result<StateSet, MetricError> {
        let set = StateSet::unpublished(name, states)?;
        crate::metric_set::reserved(set.name(), &[set.name().to_owned()])?;
        let sets = crate::metric_set::published_sets();
        if let Some(existing) = sets.owner_of(set.name()) {
            return Err(MetricError::NameTaken {
                name: set.name().to_owned(),
                existing,
            });
        }
        let result = registry().publish_state_set(set);
        drop(sets);
        result
    }

    fn unpublished(name: &str, states: &[&str]) -> Result<StateSet, MetricError> {
        if !is_label_key(name) {
            return Err(MetricError::MetricName {
                name: name.to_owned(),
                allowed: STATE_SET_NAME,
            });
        }
        // Its name is also the label of its states.
        if let Some(why) = reserved_label(name) {
            return Err(MetricError::ReservedLabel {
                metric: name.to_owned(),
                label: name.to_owned(),
                why,
            });
        }
        let states = check_states(name, states)?;
        Ok(StateSet {
            inner: Arc::new(StateSetInner {
                name: name.to_owned(),
                states,
                current: AtomicUsize::new(0),
            }),
        })
    }

    /// Makes `state` the current state: its series 1, every other 0.
    ///
    /// # Errors
    /// [`MetricError::UnknownState`] naming `state` and the set's states; the current state
    /// stays.
    pub fn set(&self, state: &str) -> Result<(), MetricError> {
        let inner = &*self.inner;
        let Some(index) = inner.states.iter().position(|s| s == state) else {
            return Err(MetricError::UnknownState {
                name: inner.name.clone(),
                state: state.to_owned(),
                states: inner.states.to_vec(),
            });
        };
        inner.current.store(index, Ordering::Release);
        Ok(())
    }

    /// The current state.
    pub fn state(&self) -> &str {
        let inner = &*self.inner;
        &inner.states[inner.current.load(Ordering::Acquire)]
    }

    /// The set's name (also its label's name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The possible states, in the order given.
    pub fn states(&self) -> impl Iterator<Item = &str> {
        self.inner.states.iter().map(String::as_str)
    }
}

impl fmt::Debug for StateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateSet")
            .field("name", &self.inner.name)
            .field("states", &self.inner.states)
            .field("state", &self.state())
            .finish()
    }
}

/// An info metric, checked: its full name and its rendered label set.
struct Info {
    name: String,
    labels: String,
}

impl Info {
    fn new(given: &str, labels: &[(&str, &str)]) -> Result<Info, MetricError> {
        let name = crate::metric_set::with_suffix(given, "_info");
        if given.is_empty() || !is_metric_name(&name) {
            return Err(MetricError::MetricName {
                name: given.to_owned(),
                allowed: METRIC_NAME,
            });
        }
        let keys: Vec<&str> = labels.iter().map(|(key, _)| *key).collect();
        check_label_names(&name, &keys)?;
        let labels = text_format::label_set(labels.iter().copied());
        Ok(Info { name, labels })
    }
}

enum Published {
    Info(String),
    StateSet(StateSet),
}

/// What is published, by metric name.
#[derive(Default)]
struct Registry {
    entries: BTreeMap<String, Published>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    entries: BTreeMap::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // Nothing under this lock can panic halfway through a change.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Puts every published info metric and state set on `page`.
pub(crate) fn add_to(page: &mut Page) {
    registry().add_to(page);
}

/// What has metric name `name` here, if anything: "an info metric" or "a state set with
/// states [...]".
pub(crate) fn owner_of(name: &str) -> Option<String> {
    match registry().entries.get(name)? {
        Published::Info(_) => Some("an info metric".to_owned()),
        Published::StateSet(set) => Some(describe_set(set)),
    }
}

impl Registry {
    fn publish_info(&mut self, info: Info) -> Result<(), MetricError> {
        if let Some(Published::StateSet(set)) = self.entries.get(&info.name) {
            return Err(MetricError::NameTaken {
                name: info.name,
                existing: describe_set(set),
            });
        }
        self.entries.insert(info.name, Published::Info(info.labels));
        Ok(())
    }

    fn publish_state_set(&mut self, set: StateSet) -> Result<StateSet, MetricError> {
        match self.entries.get(set.name()) {
            None => {
                self.entries
                    .insert(set.name().to_owned(), Published::StateSet(set.clone()));
                Ok(set)
            }
            Some(Published::StateSet(existing)) if existing.inner.states == set.inner.states => {
                Ok(existing.clone())
            }
            Some(Published::StateSet(existing)) => Err(MetricError::NameTaken {
                name: set.inner.name.clone(),
                existing: describe_set(existing),
            }),
            Some(Published::Info(_)) => Err(MetricError::NameTaken {
                name: set.inner.name.clone(),
                existing: "an info metric".to_owned(),
            }),
        }
    }

    fn add_to(&self, page: &mut Page) {
        for (name, published) in &self.entries {
            match published {
                Published::Info(labels) => {
                    page.add(name, labels.clone(), Sample::Gauge(1.0));
                    let about = name.strip_suffix("_info").unwrap_or(name);
                    page.default_help(
                        name,
                        &format!("Information about {about}, in its labels; always 1."),
                    );
                }
                Published::StateSet(set) => {
                    let current = set.state();
                    for state in set.states() {
                        let labels = text_format::label_set([(name.as_str(), state)]);
                        let value = if state == current { 1.0 } else { 0.0 };
                        page.add(name, labels, Sample::Gauge(value));
                    }
                    page.default_help(
                        name,
                        &format!("State of {name}: 1 for the current state, 0 for the others."),
                    );
                }
            }
        }
    }
}

fn describe_set(set: &StateSet) -> String {
    format!("a state set with states {:?}", set.inner.states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exporters_own_names_are_refused() {
        // An info metric's name ends in `_info`, which no process metric does.
        let error = info("profilis_app", &[]).unwrap_err();
        assert!(matches!(&error, MetricError::Reserved { .. }), "{error:?}");
        for name in ["process_threads", "profilis_app"] {
            let error = StateSet::new(name, &["a", "b"]).unwrap_err();
            assert!(
                matches!(&error, MetricError::Reserved { .. }),
                "{name}: {error:?}"
            );
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    fn rendered(registry: &Registry) -> String {
        let mut page = Page::default();
        registry.add_to(&mut page);
        page.render()
    }

    #[test]
    fn infos_and_state_sets_render_as_the_tutorial_shows() {
        let mut registry = Registry::default();
        registry
            .publish_info(
                Info::new(
                    "python",
                    &[("implementation", "CPython"), ("version", "3.10.0")],
                )
                .unwrap(),
            )
            .unwrap();
        let health = registry
            .publish_state_set(
                StateSet::unpublished("app_health", &["healthy", "unhealthy"]).unwrap(),
            )
            .unwrap();
        assert_eq!(
            rendered(&registry),
            "# HELP app_health State of app_health: 1 for the current state, 0 for the others.\n\
             # TYPE app_health gauge\n\
             app_health{app_health=\"healthy\"} 1\n\
             app_health{app_health=\"unhealthy\"} 0\n\
             \n\
             # HELP python_info Information about python, in its labels; always 1.\n\
             # TYPE python_info gauge\n\
             python_info{implementation=\"CPython\",version=\"3.10.0\"} 1\n\n"
        );
        health.set("unhealthy").unwrap();
        let text = rendered(&registry);
        assert!(
            text.contains("app_health{app_health=\"healthy\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("app_health{app_health=\"unhealthy\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn an_info_published_again_replaces_its_labels() {
        let mut registry = Registry::default();
        for version in ["1.0.0", "1.1.0"] {
            let info = Info::new("app_info", &[("version", version)]).unwrap();
            registry.publish_info(info).unwrap();
        }
        let text = rendered(&registry);
        assert!(text.contains("\napp_info{version=\"1.1.0\"} 1\n"), "{text}");
        assert!(!text.contains("1.0.0"), "{text}");
        assert!(!text.contains("app_info_info"), "{text}");
    }

    #[test]
    fn one_name_is_one_metric() {
        let mut registry = Registry::default();
        let set = |states: &[&str]| StateSet::unpublished("mode_info", states).unwrap();
        let first = registry.publish_state_set(set(&["a", "b"])).unwrap();
        first.set("b").unwrap();
        // The same states: a handle on the same set, in its current state.
        let again = registry.publish_state_set(set(&["a", "b"])).unwrap();
        assert_eq!(again.state(), "b");
        match registry.publish_state_set(set(&["a", "c"])) {
            Err(MetricError::NameTaken { name, existing }) => {
                assert_eq!(name, "mode_info");
                assert!(existing.contains("\"b\""), "{existing}");
            }
            other => panic!("expected NameTaken, got {other:?}"),
        }
        let info = Info::new("mode", &[]).unwrap();
        assert!(matches!(
            registry.publish_info(info),
            Err(MetricError::NameTaken { .. })
        ));
        let mut registry = Registry::default();
        registry.publish_info(Info::new("x", &[]).unwrap()).unwrap();
        let taken = registry.publish_state_set(StateSet::unpublished("x_info", &["a"]).unwrap());
        assert_eq!(
            taken.err(),
            Some(MetricError::NameTaken {
                name: "x_info".into(),
                existing: "an info metric".into()
            })
        );
    }

    #[test]
    fn bad_names_are_errors_naming_them() {
        for name in ["", "1app", "app-name", "app name", "äpp"] {
            match Info::new(name, &[]) {
                Err(MetricError::MetricName { name: got, .. }) => {
                    assert_eq!(got, name);
                }
                other => panic!("{name:?}: expected MetricName, got {:?}", other.err()),
            }
        }
        assert!(
            Info::new("ns:app", &[]).is_ok(),
            "colons are allowed in metric names"
        );
        for label in ["", "1a", "a-b", "a:b", "__reserved", "é"] {
            let err = Info::new("app", &[("version", "1"), (label, "x")]).err();
            assert_eq!(
                err,
                Some(MetricError::LabelName {
                    metric: "app_info".into(),
                    label: label.into()
                }),
                "{label:?}"
            );
        }
        // Prometheus keeps `le` and `quantile` for histograms and summaries.
        for label in ["le", "quantile"] {
            let err = Info::new("app", &[(label, "x")]).err();
            assert!(
                matches!(&err, Some(MetricError::ReservedLabel { metric, label: got, .. })
                    if metric == "app_info" && got == label),
                "{label:?}: {err:?}"
            );
            let err = StateSet::unpublished(label, &["up"]).err();
            assert!(
                matches!(&err, Some(MetricError::ReservedLabel { metric, label: got, .. })
                    if metric == label && got == label),
                "{label:?}: {err:?}"
            );
        }
        let err = Info::new("app", &[("v", "1"), ("v", "2")]).err().unwrap();
        assert_eq!(
            err.to_string(),
            "label \"v\" is given twice for app_info; each label name once"
        );
        for name in ["", "ns:health", "9", "a-b", "__x"] {
            let err = StateSet::unpublished(name, &["up"]).err();
            assert!(
                matches!(&err, Some(MetricError::MetricName { name: got, .. }) if got == name),
                "{name:?}: {err:?}"
            );
        }
        assert_eq!(
            StateSet::unpublished("health", &[]).err(),
            Some(MetricError::NoStates {
                name: "health".into()
            })
        );
        assert_eq!(
            StateSet::unpublished("health", &["up", ""]).err(),
            Some(MetricError::EmptyState {
                name: "health".into()
            })
        );
        assert_eq!(
            StateSet::unpublished("health", &["up", "down", "up"]).err(),
            Some(MetricError::DuplicateState {
                name: "health".into(),
                state: "up".into()
            })
        );
    }

    #[test]
    fn an_unknown_state_is_an_error_and_the_state_stays() {
        let set = StateSet::unpublished("health", &["up", "down"]).unwrap();
        set.set("down").unwrap();
        let err = set.set("sideways").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"sideways\" is not a state of state set health; its states are [\"up\", \"down\"]"
        );
        assert_eq!(set.state(), "down");
    }

    #[test]
    fn label_values_are_escaped_and_states_may_be_any_text() {
        let mut registry = Registry::default();
        let info = Info::new("app", &[("path", "C:\\x \"q\"\nz")]).unwrap();
        registry.publish_info(info).unwrap();
        let set = StateSet::unpublished("phase", &["a\"b", "ü \\"]).unwrap();
        registry.publish_state_set(set).unwrap();
        let text = rendered(&registry);
        let page = profilis_test_support::parse_exposition(&text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let info: Vec<_> = page.named("app_info").collect();
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].label("path"), Some("C:\\x \"q\"\nz"));
        let phases: Vec<_> = page.named("phase").collect();
        assert_eq!(phases.len(), 2, "{text}");
        assert!(phases
            .iter()
            .any(|s| s.label("phase") == Some("a\"b") && s.value == 1.0));
        assert!(phases
            .iter()
            .any(|s| s.label("phase") == Some("ü \\") && s.value == 0.0));
    }
}
