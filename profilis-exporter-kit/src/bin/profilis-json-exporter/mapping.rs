//! From a status document to values: each mapped field is read by its JSON Pointer and written
//! to its declared metric (entries of one name to the series of their label values of one
//! metric). A field that is missing, of the wrong type, a number beyond `f64`,
//! or a string that is not one of its states gives no value in that poll (the others are
//! served): a gauge or a state set is not served, a counter keeps its last total (still true;
//! it does not go back to 0). The log says so once when the problem starts or changes kind (a
//! state set's value changing each poll is one kind, logged once), and again when the field is
//! back.

use std::sync::Mutex;

use crate::config::{MetricSpec, MetricType};
use crate::document::{Document, Field, Pointers};
use profilis_exporter_kit::{Counter, Gauge, MetricError, MetricSet, States};

/// What a field holds, read for its metric.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A gauge's or counter's value (a boolean is 1 or 0).
    Number(f64),
    /// A state set's current state.
    State(String),
}

/// Why a field gives no value in this document.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// Nothing at the pointer.
    #[error("no field at {pointer} in the document")]
    Missing {
        /// The pointer.
        pointer: String,
    },
    /// A value of a type the metric cannot take.
    #[error("the field at {pointer} is {found}; a {kind} takes {wanted}")]
    WrongType {
        /// The pointer.
        pointer: String,
        /// What was found (`a string`, `null`, ...).
        found: &'static str,
        /// The metric type.
        kind: &'static str,
        /// What it takes.
        wanted: &'static str,
    },
    /// A string that is not one of the state set's states.
    #[error("the field at {pointer} is {value:?}, not one of the states {states:?}")]
    UnknownState {
        /// The pointer.
        pointer: String,
        /// The value.
        value: String,
        /// The known states.
        states: Vec<String>,
    },
    /// A number beyond the range of `f64`.
    #[error(
        "the field at {pointer} is {number}, a number beyond the range of f64 (about ±1.8e308)"
    )]
    OutOfRange {
        /// The pointer.
        pointer: String,
        /// The number as written.
        number: String,
    },
    /// A counter's value below 0 (or not finite).
    #[error("the field at {pointer} is {value}; a counter's total is a number of at least 0")]
    BadTotal {
        /// The pointer.
        pointer: String,
        /// The value.
        value: f64,
    },
}

/// What a problem is, without its values: the log says a problem once per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProblemKind {
    Missing,
    WrongType(&'static str),
    UnknownState,
    OutOfRange,
    BadTotal,
}

impl Problem {
    fn kind(&self) -> ProblemKind {
        match self {
            Problem::Missing { .. } => ProblemKind::Missing,
            Problem::WrongType { found, .. } => ProblemKind::WrongType(found),
            Problem::UnknownState { .. } => ProblemKind::UnknownState,
            Problem::OutOfRange { .. } => ProblemKind::OutOfRange,
            Problem::BadTotal { .. } => ProblemKind::BadTotal,
        }
    }
}

/// Reads `spec`'s value from its `field` in the document (`None`: nothing there).
///
/// # Errors
/// [`Problem`] when the document gives the metric no value.
pub fn read(field: Option<&Field>, spec: &MetricSpec) -> Result<Reading, Problem> {
    let pointer = || spec.pointer.clone();
    let field = field.ok_or_else(|| Problem::Missing { pointer: pointer() })?;
    let wrong = |kind: &'static str, wanted: &'static str| Problem::WrongType {
        pointer: pointer(),
        found: describe(field),
        kind,
        wanted,
    };
    match spec.kind {
        MetricType::Gauge | MetricType::Counter => {
            let value = match field {
                Field::Number(n) => *n,
                Field::Bool(b) => f64::from(u8::from(*b)),
                Field::OutOfRange(number) => {
                    return Err(Problem::OutOfRange {
                        pointer: pointer(),
                        number: number.clone(),
                    })
                }
                _ => {
                    return Err(if spec.kind == MetricType::Gauge {
                        wrong("gauge", "a number or a boolean (1/0)")
                    } else {
                        wrong("counter", "a number or a boolean (1/0)")
                    })
                }
            };
            if spec.kind == MetricType::Counter && !(value.is_finite() && value >= 0.0) {
                return Err(Problem::BadTotal {
                    pointer: pointer(),
                    value,
                });
            }
            Ok(Reading::Number(value))
        }
        MetricType::StateSet => {
            let Field::String(value) = field else {
                return Err(wrong("state_set", "a string among its states"));
            };
            let states = spec.states.as_deref().unwrap_or_default();
            if states.iter().any(|s| s == value) {
                Ok(Reading::State(value.clone()))
            } else {
                Err(Problem::UnknownState {
                    pointer: pointer(),
                    value: value.clone(),
                    states: states.to_vec(),
                })
            }
        }
    }
}

fn describe(field: &Field) -> &'static str {
    match field {
        Field::Null => "null",
        Field::Bool(_) => "a boolean",
        Field::Number(_) | Field::OutOfRange(_) => "a number",
        Field::String(_) => "a string",
        Field::Array => "an array",
        Field::Object => "an object",
    }
}

#[derive(Clone)]
enum Handle {
    Gauge(Gauge),
    Counter(Counter),
    States(States),
}

struct Mapped {
    spec: MetricSpec,
    handle: Handle,
    labels: Vec<String>,
    /// The kind of problem last logged, so a field missing from every poll (or a state set's
    /// unknown value changing each poll) is logged once.
    last_problem: Mutex<Option<ProblemKind>>,
}

/// The declared metrics of a mapping, written from each document.
pub struct Mapping {
    metrics: Vec<Mapped>,
    pointers: Pointers,
}

/// Declares `spec`'s metric on `set`.
fn declare(spec: &MetricSpec, set: &MetricSet) -> Result<Handle, MetricError> {
    let names: Vec<&str> = spec.labels.keys().map(String::as_str).collect();
    match spec.kind {
        MetricType::Gauge => set.gauge(&spec.name, &spec.help, &names).map(Handle::Gauge),
        MetricType::Counter => set
            .counter(&spec.name, &spec.help, &names)
            .map(Handle::Counter),
        MetricType::StateSet => {
            let states: Vec<&str> = spec.states.iter().flatten().map(String::as_str).collect();
            set.state_set(&spec.name, &spec.help, &names, &states)
                .map(Handle::States)
        }
    }
}

/// Whether `later` can be another series of `first`'s metric: what differs, if anything.
fn same_metric(first: &MetricSpec, later: &MetricSpec) -> Result<(), String> {
    if first.kind != later.kind {
        return Err(format!("it is a {}, another type", type_name(later.kind)));
    }
    if first.help != later.help {
        return Err(format!("its help {:?} is another", later.help));
    }
    if !first.labels.keys().eq(later.labels.keys()) {
        let names: Vec<&str> = later.labels.keys().map(String::as_str).collect();
        return Err(format!("its label names {names:?} are others"));
    }
    if first.states != later.states {
        return Err(format!(
            "its states {:?} are others",
            later.states.as_deref().unwrap_or_default()
        ));
    }
    Ok(())
}

/// A metric type as the mapping file writes it.
fn type_name(kind: MetricType) -> &'static str {
    match kind {
        MetricType::Gauge => "gauge",
        MetricType::Counter => "counter",
        MetricType::StateSet => "state_set",
    }
}

impl Mapping {
    /// Declares each spec's metric on `set`; `source` names the mapping in errors (the file,
    /// or the built-in one). Entries of one name are series of one metric: they must agree on
    /// its type, help, label names and states, and differ in their label values.
    ///
    /// # Errors
    /// A message naming the source, the entry and the metric set's complaint (a bad metric or
    /// label name, a name taken), or what an entry of a name already given does not agree on.
    pub fn declare(
        specs: Vec<MetricSpec>,
        set: &MetricSet,
        source: &str,
    ) -> Result<Mapping, String> {
        let mut metrics: Vec<Mapped> = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            let entry = |e: String| format!("{source}, metric #{} ({}): {e}", index + 1, spec.name);
            // Entries of one name are series of one metric: the first declares it, the others
            // write their own label values to it.
            let first = metrics.iter().position(|m| m.spec.name == spec.name);
            let handle = match first {
                Some(first) => {
                    same_metric(&metrics[first].spec, &spec)
                        .map_err(|e| entry(format!("{e} than metric #{}, of the same name; entries of one name are series of one metric, with the same type, help, label names and states", first + 1)))?;
                    if let Some(twin) = metrics
                        .iter()
                        .position(|m| m.spec.name == spec.name && m.spec.labels == spec.labels)
                    {
                        return Err(entry(format!(
                            "it writes the same series as metric #{} (the same name and label values); give each entry of one name its own label values",
                            twin + 1
                        )));
                    }
                    metrics[first].handle.clone()
                }
                // The set checks the name rules and the clashes with the entries before it, the
                // kit's own metrics and `rust_build_info` (published before `configure`), the
                // process metrics and `profilis_*`.
                None => declare(&spec, set).map_err(|e| entry(e.to_string()))?,
            };
            metrics.push(Mapped {
                labels: spec.labels.values().cloned().collect(),
                spec,
                handle,
                last_problem: Mutex::new(None),
            });
        }
        let pointers = Pointers::new(metrics.iter().map(|m| m.spec.pointer.as_str()));
        Ok(Mapping { metrics, pointers })
    }

    /// The pointers of the mapped fields, in the order of the metrics: what a document is read
    /// for.
    pub fn pointers(&self) -> &Pointers {
        &self.pointers
    }

    /// Writes each field of `doc` to its metric; returns how many were written. A field that
    /// gives no value is skipped and logged (see the [module docs](self)).
    pub fn apply(&self, doc: &Document) -> usize {
        let mut written = 0;
        for (index, mapped) in self.metrics.iter().enumerate() {
            let outcome =
                read(doc.field(index), &mapped.spec).and_then(|reading| mapped.write(reading));
            let mut last = mapped
                .last_problem
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match outcome {
                Ok(()) => {
                    written += 1;
                    if last.take().is_some() {
                        tracing::info!(
                            metric = %mapped.spec.name,
                            "the field at {} is back; {}",
                            mapped.spec.pointer,
                            mapped.back()
                        );
                    }
                }
                Err(problem) => {
                    if *last != Some(problem.kind()) {
                        tracing::warn!(
                            metric = %mapped.spec.name,
                            "{problem}; {}",
                            mapped.meanwhile()
                        );
                        *last = Some(problem.kind());
                    }
                }
            }
        }
        written
    }
}

impl Mapped {
    /// What happens to the metric while its field gives no value.
    fn meanwhile(&self) -> String {
        let name = self.series();
        match self.spec.kind {
            MetricType::Counter => {
                format!("the counter {name} keeps its last total until it is back")
            }
            MetricType::Gauge | MetricType::StateSet => {
                format!("{name} is not served until it is back")
            }
        }
    }

    /// The metric's name, with its label values when it has some (`app_queue_depth{queue="mail"}`):
    /// entries of one name are its series.
    fn series(&self) -> String {
        if self.spec.labels.is_empty() {
            return self.spec.name.clone();
        }
        let labels: Vec<String> = self
            .spec
            .labels
            .iter()
            .map(|(key, value)| format!("{key}={value:?}"))
            .collect();
        format!("{}{{{}}}", self.spec.name, labels.join(","))
    }

    /// What happens when the field is back.
    fn back(&self) -> String {
        let name = self.series();
        match self.spec.kind {
            MetricType::Counter => format!("the counter {name} follows it again"),
            MetricType::Gauge | MetricType::StateSet => format!("{name} is served again"),
        }
    }

    fn write(&self, reading: Reading) -> Result<(), Problem> {
        let labels: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        // The values were checked by `read` and the label count by `declare`, so the set
        // refusing one is a bug of ours; it is logged rather than panicking in a poll.
        let written = match (&self.handle, reading) {
            (Handle::Gauge(gauge), Reading::Number(value)) => gauge.set(&labels, value),
            (Handle::Counter(counter), Reading::Number(value)) => counter.set_total(&labels, value),
            (Handle::States(states), Reading::State(state)) => states.set(&labels, &state),
            _ => return Ok(()),
        };
        if let Err(e) = written {
            tracing::error!(metric = %self.spec.name, "cannot write the value: {e}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Reads `spec`'s field from the document `doc`.
    fn read_in(doc: &str, spec: &MetricSpec) -> Result<Reading, Problem> {
        let document = Pointers::new([spec.pointer.as_str()])
            .read(doc.as_bytes())
            .unwrap();
        read(document.field(0), spec)
    }

    fn spec(pointer: &str, kind: MetricType, states: Option<&[&str]>) -> MetricSpec {
        MetricSpec {
            pointer: pointer.into(),
            name: "m".into(),
            kind,
            help: "M".into(),
            labels: BTreeMap::new(),
            states: states.map(|s| s.iter().map(|&s| s.to_owned()).collect()),
        }
    }

    #[test]
    fn the_tutorials_document() {
        let doc = r#"{"current_requests": 10, "pending_requests": 2,
                      "total_uptime": 25.99274135, "health": "healthy"}"#;
        let readings: Vec<_> = MetricSpec::tutorial()
            .iter()
            .map(|s| read_in(doc, s).unwrap())
            .collect();
        assert_eq!(
            readings,
            [
                Reading::Number(10.0),
                Reading::Number(2.0),
                Reading::Number(25.99274135),
                Reading::State("healthy".into()),
            ]
        );
    }

    #[test]
    fn nested_fields_booleans_and_escapes() {
        let doc = r#"{"db": {"pools": [{"open": 4}], "up": true, "a/b": false, "t~": 7}}"#;
        let gauge = |p| read_in(doc, &spec(p, MetricType::Gauge, None));
        assert_eq!(gauge("/db/pools/0/open"), Ok(Reading::Number(4.0)));
        assert_eq!(gauge("/db/up"), Ok(Reading::Number(1.0)));
        assert_eq!(gauge("/db/a~1b"), Ok(Reading::Number(0.0)));
        assert_eq!(gauge("/db/t~0"), Ok(Reading::Number(7.0)));
        assert_eq!(
            read_in(doc, &spec("/db/pools/0/open", MetricType::Counter, None)),
            Ok(Reading::Number(4.0))
        );
    }

    #[test]
    fn fields_that_give_no_value() {
        let doc = r#"{"n": null, "s": "ok", "o": {}, "neg": -1, "state": "sick", "flag": true,
                      "big": -1e400}"#;
        let problem = |p, kind, states| {
            read_in(doc, &spec(p, kind, states))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            problem("/gone", MetricType::Gauge, None),
            "no field at /gone in the document"
        );
        assert!(problem("/n", MetricType::Gauge, None).contains("is null; a gauge takes a number"));
        assert!(problem("/s", MetricType::Gauge, None).contains("is a string"));
        assert!(problem("/o", MetricType::Counter, None).contains("is an object; a counter"));
        assert!(problem("/neg", MetricType::Counter, None).contains("is -1; a counter's total"));
        let states = Some(&["healthy", "unhealthy"][..]);
        assert!(problem("/state", MetricType::StateSet, states)
            .contains("is \"sick\", not one of the states [\"healthy\", \"unhealthy\"]"));
        assert!(problem("/flag", MetricType::StateSet, states)
            .contains("is a boolean; a state_set takes a string"));
        assert_eq!(
            problem("/big", MetricType::Gauge, None),
            "the field at /big is -1e400, a number beyond the range of f64 (about ±1.8e308)"
        );
    }

    fn labelled(
        pointer: &str,
        name: &str,
        kind: MetricType,
        labels: &[(&str, &str)],
    ) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            labels: labels
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..spec(pointer, kind, None)
        }
    }

    /// Several fields as the series of one metric (the depths of several queues) were refused
    /// as a name taken twice, so `labels` could only decorate a metric's one series.
    #[test]
    fn entries_of_one_name_are_series_of_one_metric() {
        let set = MetricSet::staged();
        let specs = vec![
            labelled("/q/mail", "depth", MetricType::Gauge, &[("queue", "mail")]),
            labelled("/q/sms", "depth", MetricType::Gauge, &[("queue", "sms")]),
            labelled(
                "/sent/mail",
                "sent",
                MetricType::Counter,
                &[("queue", "mail")],
            ),
            labelled(
                "/sent/sms",
                "sent",
                MetricType::Counter,
                &[("queue", "sms")],
            ),
        ];
        let mapping = Mapping::declare(specs, &set, "the test's mapping").unwrap();
        let doc = mapping
            .pointers()
            .read(br#"{"q": {"mail": 3, "sms": 5}, "sent": {"mail": 10}}"#)
            .unwrap();
        set.begin();
        assert_eq!(mapping.apply(&doc), 3);
        set.commit();
        let page = set.render(profilis_exporters::ExpositionFormat::Text);
        assert_eq!(page.matches("# TYPE depth gauge").count(), 1, "{page}");
        assert!(page.contains("\ndepth{queue=\"mail\"} 3\n"), "{page}");
        assert!(page.contains("\ndepth{queue=\"sms\"} 5\n"), "{page}");
        assert!(page.contains("\nsent_total{queue=\"mail\"} 10\n"), "{page}");
        assert!(!page.contains("queue=\"sms\"} 10"), "{page}");
        assert!(!page.contains("sent_total{queue=\"sms\"}"), "{page}");
    }

    #[test]
    fn entries_of_one_name_that_do_not_make_one_metric_are_refused() {
        let gauge = |labels: &[(&str, &str)]| labelled("/x", "depth", MetricType::Gauge, labels);
        let other_help = MetricSpec {
            help: "Another".into(),
            ..gauge(&[("queue", "sms")])
        };
        let states = |states: &[&str]| MetricSpec {
            states: Some(states.iter().map(|&s| s.to_owned()).collect()),
            ..labelled("/h", "health", MetricType::StateSet, &[("node", "a")])
        };
        for (second, says) in [
            (
                labelled("/y", "depth", MetricType::Counter, &[("queue", "sms")]),
                "metric #2 (depth): it is a counter, another type than metric #1",
            ),
            (other_help, "its help \"Another\" is another than metric #1"),
            (
                gauge(&[("region", "eu")]),
                "its label names [\"region\"] are others than metric #1",
            ),
            (
                gauge(&[("queue", "mail")]),
                "metric #2 (depth): it writes the same series as metric #1",
            ),
        ] {
            let specs = vec![gauge(&[("queue", "mail")]), second];
            let error = Mapping::declare(specs, &MetricSet::staged(), "map.toml")
                .err()
                .unwrap();
            assert!(error.starts_with("map.toml, "), "{error}");
            assert!(error.contains(says), "{says:?} is not in: {error}");
        }
        let mut other_node = states(&["ok", "down"]);
        other_node.labels.insert("node".into(), "b".into());
        let specs = vec![states(&["ok", "down"]), other_node.clone()];
        assert!(Mapping::declare(specs, &MetricSet::staged(), "map.toml").is_ok());
        other_node.states = Some(vec!["ok".into()]);
        let specs = vec![states(&["ok", "down"]), other_node];
        let error = Mapping::declare(specs, &MetricSet::staged(), "map.toml")
            .err()
            .unwrap();
        assert!(error.contains("its states [\"ok\"] are others"), "{error}");
    }

    #[test]
    fn a_problem_is_logged_once_per_kind_not_per_value() {
        let states = Some(&["healthy", "unhealthy"][..]);
        let kind = |doc: &str| {
            read_in(doc, &spec("/h", MetricType::StateSet, states))
                .unwrap_err()
                .kind()
        };
        assert_eq!(kind(r#"{"h": "sick"}"#), kind(r#"{"h": "rebooting"}"#));
        assert_ne!(kind(r#"{"h": "sick"}"#), kind(r#"{}"#));
        assert_ne!(kind(r#"{"h": null}"#), kind(r#"{"h": 1}"#));
        let gauge = spec("/n", MetricType::Gauge, None);
        assert_eq!(
            read_in(r#"{"n": 1e400}"#, &gauge).unwrap_err().kind(),
            read_in(r#"{"n": 1e999}"#, &gauge).unwrap_err().kind()
        );
    }
}
