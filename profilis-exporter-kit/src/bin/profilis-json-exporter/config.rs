//! The mapping file (`--config`, `EXPORTER_CONFIG`): which fields of the status document become
//! which metrics. Without one, the tutorial's four fields ([`MetricSpec::tutorial`]).
//!
//! ```toml
//! [[metric]]
//! pointer = "/queue/depth"          # RFC 6901 JSON Pointer into the document
//! name = "app_queue_depth"
//! type = "gauge"                    # gauge | counter | state_set
//! help = "Jobs waiting"
//! labels = { queue = "mail" }       # optional constant labels
//!
//! [[metric]]                       # the same name: another series of app_queue_depth
//! pointer = "/queue/sms_depth"
//! name = "app_queue_depth"
//! type = "gauge"
//! help = "Jobs waiting"
//! labels = { queue = "sms" }
//!
//! [[metric]]
//! pointer = "/health"
//! name = "app_health"
//! type = "state_set"
//! help = "Health"
//! states = ["healthy", "unhealthy"] # required for state_set only
//! ```
//!
//! Entries of one name are series of one metric: they give the same type, help, label names
//! (and states), and each its own label values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::document::MAX_POINTER_TOKENS;

/// The kind of metric a field becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// A number or boolean (1/0), served as it is now.
    Gauge,
    /// A number the target counts itself (a total), served with `_total`.
    Counter,
    /// A string among known states: one series per state, the current one 1.
    StateSet,
}

/// One entry of the file: a field and the metric it becomes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// Where the field is in the document (JSON Pointer).
    pub pointer: String,
    /// The metric's name (a counter is served with `_total` added unless it ends with it).
    pub name: String,
    /// What it becomes.
    #[serde(rename = "type")]
    pub kind: MetricType,
    /// The help text.
    pub help: String,
    /// Constant labels on its series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The known states of a state set.
    #[serde(default)]
    pub states: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    metric: Vec<MetricSpec>,
}

/// A mapping file that cannot be used, naming the file and the entry.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the mapping file {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("the mapping file {} is larger than {limit} bytes, the most read; is it the right file?", file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// Not TOML of the expected shape (an unknown key, a missing one, a wrong type).
    #[error("the mapping file {} is not valid: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The TOML reader's message, with the line.
        message: String,
    },
    /// The file declares no metrics.
    #[error("the mapping file {} has no [[metric]] entries; give at least one", file.display())]
    Empty {
        /// The file.
        file: PathBuf,
    },
    /// One entry is wrong.
    #[error("the mapping file {}, metric #{number} ({name}): {problem}", file.display())]
    Entry {
        /// The file.
        file: PathBuf,
        /// The entry's position, from 1.
        number: usize,
        /// The entry's name.
        name: String,
        /// What is wrong, and what is allowed.
        problem: String,
    },
}

impl MetricSpec {
    /// The tutorial's status document: `current_requests`, `pending_requests`, `total_uptime`
    /// (gauges) and `health` (a state set of `healthy` and `unhealthy`).
    pub fn tutorial() -> Vec<MetricSpec> {
        let gauge = |pointer: &str, name: &str, help: &str| MetricSpec {
            pointer: pointer.into(),
            name: name.into(),
            kind: MetricType::Gauge,
            help: help.into(),
            labels: BTreeMap::new(),
            states: None,
        };
        vec![
            gauge(
                "/current_requests",
                "app_requests_current",
                "Current requests",
            ),
            gauge(
                "/pending_requests",
                "app_requests_pending",
                "Pending requests",
            ),
            gauge("/total_uptime", "app_uptime", "Uptime"),
            MetricSpec {
                kind: MetricType::StateSet,
                states: Some(vec!["healthy".into(), "unhealthy".into()]),
                ..gauge("/health", "app_health", "Health")
            },
        ]
    }
}

/// Reads and checks a mapping file. Metric and label names, names taken (the exporter's own),
/// and entries of one name that do not make one metric are checked when they are declared
/// ([`Mapping::declare`](crate::mapping::Mapping::declare)).
///
/// # Errors
/// [`ConfigError`] naming the file and, for an entry, its number and name.
pub fn read(file: &Path) -> Result<Vec<MetricSpec>, ConfigError> {
    use std::io::Read;
    let error = |source| ConfigError::Read {
        file: file.to_owned(),
        source,
    };
    // At most one byte past the limit: `/dev/zero` or a log file given by mistake is an
    // error, not all the memory there is. Read as bytes: the cut may fall inside a character.
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .map_err(error)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            file: file.to_owned(),
            limit: MAX_FILE_BYTES,
        });
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    parse(file, &text)
}

/// The largest mapping file read: 1 MiB (thousands of entries).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Checks the text of a mapping file; `file` names it in errors.
///
/// # Errors
/// As [`read`].
pub fn parse(file: &Path, text: &str) -> Result<Vec<MetricSpec>, ConfigError> {
    let parsed: File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    if parsed.metric.is_empty() {
        return Err(ConfigError::Empty {
            file: file.to_owned(),
        });
    }
    for (index, spec) in parsed.metric.iter().enumerate() {
        let entry = |problem: String| ConfigError::Entry {
            file: file.to_owned(),
            number: index + 1,
            name: spec.name.clone(),
            problem,
        };
        check_pointer(&spec.pointer).map_err(entry)?;
        match (spec.kind, &spec.states) {
            (MetricType::StateSet, None) => {
                return Err(entry(
                    "a state_set needs `states`, the list of the field's known values".into(),
                ))
            }
            (MetricType::StateSet, Some(states)) if states.is_empty() => {
                return Err(entry(
                    "`states` is empty; list the field's known values".into(),
                ))
            }
            (MetricType::Gauge | MetricType::Counter, Some(_)) => {
                return Err(entry(
                    "`states` is for a state_set only; remove it or make the type state_set".into(),
                ))
            }
            _ => {}
        }
    }
    Ok(parsed.metric)
}

/// A JSON Pointer (RFC 6901): empty tokens allowed, each starting with `/`, `~` only as `~0`
/// or `~1`; at most [`MAX_POINTER_TOKENS`] tokens.
fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.starts_with('/') {
        return Err(format!(
            "pointer {pointer:?} does not start with '/'; a JSON Pointer such as /health or \
             /queues/0/depth"
        ));
    }
    let tokens = pointer.matches('/').count();
    if tokens > MAX_POINTER_TOKENS {
        return Err(format!(
            "pointer {pointer:?} has {tokens} tokens; at most {MAX_POINTER_TOKENS}"
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "pointer {pointer:?} has a '~' not followed by 0 or 1; write ~0 for '~' and ~1 \
                 for '/' in a key"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Vec<MetricSpec>, String> {
        parse(Path::new("map.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_file_with_every_type() {
        let specs = parse_text(
            r#"
            [[metric]]
            pointer = "/queue/depth"
            name = "app_queue_depth"
            type = "gauge"
            help = "Jobs waiting"
            labels = { queue = "mail" }

            [[metric]]
            pointer = "/served"
            name = "app_served"
            type = "counter"
            help = "Requests served"

            [[metric]]
            pointer = "/a~1b/~0c"
            name = "app_health"
            type = "state_set"
            help = "Health"
            states = ["ok", "degraded"]
            "#,
        )
        .unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].labels["queue"], "mail");
        assert_eq!(specs[1].kind, MetricType::Counter);
        assert_eq!(specs[2].states.as_deref().unwrap(), ["ok", "degraded"]);
    }

    #[test]
    fn the_tutorials_mapping() {
        let specs = MetricSpec::tutorial();
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "app_requests_current",
                "app_requests_pending",
                "app_uptime",
                "app_health"
            ]
        );
        assert_eq!(specs[3].kind, MetricType::StateSet);
    }

    const GOOD: &str = "pointer = \"/x\"\nname = \"app_x\"\ntype = \"gauge\"\nhelp = \"X\"\n";

    #[test]
    fn bad_files_name_the_file_and_the_entry() {
        let two = |second: &str| format!("[[metric]]\n{GOOD}\n[[metric]]\n{second}");
        for (text, says) in [
            ("[[metric]\n".to_owned(), "map.toml is not valid"),
            (format!("[[metric]]\n{GOOD}colour = \"red\"\n"), "unknown field `colour`"),
            ("metric = []\n".into(), "has no [[metric]] entries"),
            ("metrics = 1\n".into(), "unknown field `metrics`"),
            ("[[metric]]\npointer = \"/x\"\nname = \"x\"\ntype = \"summary\"\nhelp = \"X\"\n".into(), "unknown variant `summary`"),
            ("[[metric]]\nname = \"x\"\ntype = \"gauge\"\nhelp = \"X\"\n".into(), "missing field `pointer`"),
            (two("pointer = \"y\"\nname = \"app_y\"\ntype = \"gauge\"\nhelp = \"Y\"\n"),
             "metric #2 (app_y): pointer \"y\" does not start with '/'"),
            (two(&format!("pointer = \"{}\"\nname = \"app_y\"\ntype = \"gauge\"\nhelp = \"Y\"\n", "/a".repeat(129))),
             "metric #2 (app_y): pointer \"/a/a/a"),
            (two(&format!("pointer = \"{}\"\nname = \"app_y\"\ntype = \"gauge\"\nhelp = \"Y\"\n", "/a".repeat(129))),
             "has 129 tokens; at most 128"),
            (two("pointer = \"/y~2\"\nname = \"app_y\"\ntype = \"gauge\"\nhelp = \"Y\"\n"),
             "metric #2 (app_y): pointer \"/y~2\" has a '~'"),
            (two("pointer = \"/y\"\nname = \"app_y\"\ntype = \"state_set\"\nhelp = \"Y\"\n"),
             "metric #2 (app_y): a state_set needs `states`"),
            (two("pointer = \"/y\"\nname = \"app_y\"\ntype = \"state_set\"\nhelp = \"Y\"\nstates = []\n"),
             "metric #2 (app_y): `states` is empty"),
            (two("pointer = \"/y\"\nname = \"app_y\"\ntype = \"gauge\"\nhelp = \"Y\"\nstates = [\"a\"]\n"),
             "metric #2 (app_y): `states` is for a state_set only"),
        ] {
            let err = parse_text(&text).unwrap_err();
            assert!(err.contains("map.toml"), "{text}: {err}");
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    /// The file was read whole whatever its size: `--config /dev/zero` took all the memory
    /// there was before failing.
    #[test]
    fn a_file_larger_than_the_limit_is_refused_unread() {
        let big = std::env::temp_dir().join(format!("big-map-{}.toml", std::process::id()));
        let padding = "# a comment\n".repeat(MAX_FILE_BYTES as usize / 12 + 1);
        std::fs::write(&big, format!("[[metric]]\n{GOOD}{padding}")).unwrap();
        let err = read(&big).unwrap_err().to_string();
        let _ = std::fs::remove_file(&big);
        assert!(err.contains(&big.display().to_string()), "{err}");
        assert!(err.contains("is larger than 1048576 bytes"), "{err}");
        #[cfg(unix)]
        {
            let err = read(Path::new("/dev/zero")).unwrap_err().to_string();
            assert!(err.contains("is larger than"), "{err}");
        }
        // Cut inside a character at the limit: still too large, not "invalid UTF-8".
        let wide = "é".repeat(MAX_FILE_BYTES as usize / 2 + 1);
        std::fs::write(&big, format!("# {wide}\n")).unwrap();
        let err = read(&big).unwrap_err().to_string();
        let _ = std::fs::remove_file(&big);
        assert!(err.contains("is larger than 1048576 bytes"), "{err}");
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let missing = std::env::temp_dir().join(format!("no-such-map-{}.toml", std::process::id()));
        let err = read(&missing).unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        assert!(err.starts_with("cannot read the mapping file"), "{err}");
    }
}
