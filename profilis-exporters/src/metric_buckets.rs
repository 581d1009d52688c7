//! Buckets of the application's own histograms (those recorded with `metrics::histogram!`),
//! per metric: matched by full name, prefix or suffix, the most specific match winning.
//!
//! A histogram gets its bounds once, when its series is first registered; recording into it
//! then only counts in its buckets, so neither matching nor memory depends on how many
//! observations it takes.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Which histograms a set of buckets is for ([`Exporter::metric_buckets`](crate::Exporter::metric_buckets)).
///
/// Names are matched as `/metrics` shows them: a name given to `metrics::histogram!` with
/// characters the format does not allow (`checkout.seconds`) is matched as it renders
/// (`checkout_seconds`).
///
/// When several match a histogram, the most specific wins:
/// 1. a [`Full`](MetricMatch::Full) name, over any prefix or suffix;
/// 2. then the longest prefix or suffix;
/// 3. a prefix and a suffix of the same length: the **suffix** wins, because by Prometheus's
///    naming conventions the suffix is the unit (`_seconds`, `_bytes`), and the unit decides
///    the scale of the buckets.
///
/// Written as text (in `PROFILIS_METRIC_BUCKETS`, or parsed with [`str::parse`]): `name`,
/// `prefix*` or `*suffix`.
///
/// ```
/// # use profilis_exporters as profilis;
/// use profilis::MetricMatch;
///
/// assert_eq!("http_*".parse(), Ok(MetricMatch::prefix("http_")));
/// assert_eq!("*_bytes".parse(), Ok(MetricMatch::suffix("_bytes")));
/// assert_eq!(MetricMatch::full("checkout_seconds").to_string(), "checkout_seconds");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetricMatch {
    /// The histogram named exactly this.
    Full(String),
    /// Every histogram whose name starts with this.
    Prefix(String),
    /// Every histogram whose name ends with this.
    Suffix(String),
}

impl MetricMatch {
    /// The histogram named `name`.
    pub fn full(name: impl Into<String>) -> MetricMatch {
        MetricMatch::Full(name.into())
    }

    /// Every histogram whose name starts with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> MetricMatch {
        MetricMatch::Prefix(prefix.into())
    }

    /// Every histogram whose name ends with `suffix`.
    pub fn suffix(suffix: impl Into<String>) -> MetricMatch {
        MetricMatch::Suffix(suffix.into())
    }

    fn text(&self) -> &str {
        match self {
            MetricMatch::Full(s) | MetricMatch::Prefix(s) | MetricMatch::Suffix(s) => s,
        }
    }

    /// Checks the text: not empty, only the characters of a metric name, and no digit first
    /// where it would start the name (a full name or a prefix).
    pub(crate) fn validate(&self) -> Result<(), MetricBucketsError> {
        let bad = |reason| {
            Err(MetricBucketsError::Matcher {
                matcher: self.to_string(),
                reason,
            })
        };
        let text = self.text();
        if text.is_empty() {
            return bad("it is empty (to set the buckets of every histogram, use Exporter::buckets or PROFILIS_BUCKETS)");
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return bad("it has a character a metric name cannot have (`.` and `-` render as `_`: match the name as /metrics shows it)");
        }
        let starts_name = !matches!(self, MetricMatch::Suffix(_));
        if starts_name && text.starts_with(|c: char| c.is_ascii_digit()) {
            return bad("a metric name cannot start with a digit");
        }
        Ok(())
    }

    /// Whether `name` (a valid metric name) matches, and if so how specifically: the larger
    /// the more specific.
    fn rank(&self, name: &str) -> Option<(u8, usize, u8)> {
        match self {
            MetricMatch::Full(full) => (name == full).then_some((1, 0, 0)),
            MetricMatch::Prefix(prefix) => {
                name.starts_with(prefix.as_str())
                    .then_some((0, prefix.len(), 0))
            }
            MetricMatch::Suffix(suffix) => {
                name.ends_with(suffix.as_str())
                    .then_some((0, suffix.len(), 1))
            }
        }
    }
}

impl fmt::Display for MetricMatch {
    /// As `PROFILIS_METRIC_BUCKETS` writes it: `name`, `prefix*` or `*suffix`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricMatch::Full(name) => f.write_str(name),
            MetricMatch::Prefix(prefix) => write!(f, "{prefix}*"),
            MetricMatch::Suffix(suffix) => write!(f, "*{suffix}"),
        }
    }
}

impl FromStr for MetricMatch {
    type Err = MetricBucketsError;

    /// `name`, `prefix*` or `*suffix`, whitespace around it ignored.
    fn from_str(s: &str) -> Result<MetricMatch, MetricBucketsError> {
        let s = s.trim();
        let matcher = if let Some(prefix) = s.strip_suffix('*') {
            MetricMatch::Prefix(prefix.to_owned())
        } else if let Some(suffix) = s.strip_prefix('*') {
            MetricMatch::Suffix(suffix.to_owned())
        } else {
            MetricMatch::Full(s.to_owned())
        };
        if s == "*" || matcher.text().contains('*') {
            return Err(MetricBucketsError::Matcher {
                matcher: s.to_owned(),
                reason: "`*` may only end a prefix (`http_*`) or start a suffix (`*_bytes`), once",
            });
        }
        matcher.validate()?;
        Ok(matcher)
    }
}

/// Per-metric buckets that cannot be used: a matcher, a bucket list, or an entry of
/// `PROFILIS_METRIC_BUCKETS`. Each names the value at fault and what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricBucketsError {
    /// A matcher that is not a metric name, a prefix or a suffix of one.
    #[error("metric matcher {matcher:?} is not allowed: {reason}; expected a metric name (`checkout_seconds`), a prefix (`http_*`) or a suffix (`*_bytes`) of letters, digits, `_` and `:`")]
    Matcher {
        /// The matcher, as written (`*` marking a prefix or suffix).
        matcher: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Buckets that cannot be used.
    #[error("buckets {value} for {matcher} are not allowed: {reason}; expected finite numbers in increasing order")]
    Buckets {
        /// The matcher they were given for.
        matcher: String,
        /// The buckets, as given.
        value: String,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// An entry of `PROFILIS_METRIC_BUCKETS` that is not `matcher=bucket,bucket,...`, or a
    /// matcher given twice.
    #[error("entry {entry:?} is not allowed: {reason}; expected entries `matcher=bucket,bucket,...` separated by `;`, such as `checkout_seconds=0.1,1;http_*=0.01,0.1;*_bytes=1000,100000`")]
    Entry {
        /// The entry, as written.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Checks the buckets of an application's histogram: at least one, all finite, strictly
/// increasing. (Unlike duration buckets they may be zero or negative: a histogram may measure
/// anything.)
pub(crate) fn validate_metric_bounds(
    matcher: &MetricMatch,
    values: &[f64],
) -> Result<Vec<f64>, MetricBucketsError> {
    let bad = |reason| MetricBucketsError::Buckets {
        matcher: matcher.to_string(),
        value: format!("{values:?}"),
        reason,
    };
    if values.is_empty() {
        return Err(bad("there are none"));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(bad("one is not a finite number"));
    }
    if values.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad("they are not in increasing order"));
    }
    Ok(values.to_vec())
}

/// Parses the value of `PROFILIS_METRIC_BUCKETS`: entries `matcher=bucket,bucket,...`
/// separated by `;` (whitespace around each part ignored, an empty entry skipped), such as
/// `checkout_seconds=0.1,0.5,1; http_*=0.01,0.1,1; *_bytes=1000,10000,100000`.
///
/// # Errors
/// [`MetricBucketsError`] naming the entry, matcher or buckets at fault: an entry without
/// `=`, a bad matcher, buckets that are not numbers, none, not finite or not increasing, the
/// same matcher twice, or no entry at all.
///
/// ```
/// # use profilis_exporters as profilis;
/// use profilis::{parse_metric_buckets, MetricMatch};
///
/// let rules = parse_metric_buckets("http_*=0.01,0.1; *_bytes=1e3,1e6").unwrap();
/// assert_eq!(rules[0], (MetricMatch::prefix("http_"), vec![0.01, 0.1]));
/// assert_eq!(rules[1], (MetricMatch::suffix("_bytes"), vec![1e3, 1e6]));
/// ```
pub fn parse_metric_buckets(s: &str) -> Result<Vec<(MetricMatch, Vec<f64>)>, MetricBucketsError> {
    let mut rules: Vec<(MetricMatch, Vec<f64>)> = Vec::new();
    for entry in s.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((matcher, bounds)) = entry.split_once('=') else {
            return Err(MetricBucketsError::Entry {
                entry: entry.to_owned(),
                reason: "it has no `=` between the matcher and the buckets",
            });
        };
        let matcher: MetricMatch = matcher.parse()?;
        let values: Vec<f64> = bounds
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::parse::<f64>)
            .collect::<Result<_, _>>()
            .map_err(|_| MetricBucketsError::Buckets {
                matcher: matcher.to_string(),
                value: format!("{:?}", bounds.trim()),
                reason: "one is not a number",
            })?;
        let values = validate_metric_bounds(&matcher, &values).map_err(|e| match e {
            MetricBucketsError::Buckets {
                matcher, reason, ..
            } => MetricBucketsError::Buckets {
                matcher,
                value: format!("{:?}", bounds.trim()),
                reason,
            },
            other => other,
        })?;
        if rules.iter().any(|(m, _)| *m == matcher) {
            return Err(MetricBucketsError::Entry {
                entry: entry.to_owned(),
                reason: "its matcher was given before",
            });
        }
        rules.push((matcher, values));
    }
    if rules.is_empty() {
        return Err(MetricBucketsError::Entry {
            entry: s.to_owned(),
            reason: "there is no entry",
        });
    }
    Ok(rules)
}

/// The buckets of every application histogram: the default, and the bounds of each matcher.
/// Two are equal when they have the same default and the same bounds per matcher, in whatever
/// order they were set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricBuckets {
    default: Arc<[f64]>,
    rules: BTreeMap<MetricMatch, Arc<[f64]>>,
}

impl MetricBuckets {
    /// `default` for every histogram, until matchers are set.
    pub(crate) fn new(default: &[f64]) -> MetricBuckets {
        MetricBuckets {
            default: default.into(),
            rules: BTreeMap::new(),
        }
    }

    /// `bounds` (already checked) for the histograms `matcher` matches, replacing what that
    /// matcher had.
    pub(crate) fn set(&mut self, matcher: MetricMatch, bounds: &[f64]) {
        self.rules.insert(matcher, bounds.into());
    }

    /// The bounds of the histogram named `name` (as rendered): the most specific matcher's,
    /// else the default.
    pub(crate) fn of(&self, name: &str) -> Arc<[f64]> {
        self.rules
            .iter()
            .filter_map(|(matcher, bounds)| matcher.rank(name).map(|rank| (rank, bounds)))
            .max_by_key(|(rank, _)| *rank)
            .map_or_else(|| self.default.clone(), |(_, bounds)| bounds.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn buckets(rules: &[(MetricMatch, f64)]) -> MetricBuckets {
        let mut buckets = MetricBuckets::new(&[0.0]);
        for (matcher, bound) in rules {
            buckets.set(matcher.clone(), &[*bound]);
        }
        buckets
    }

    fn bound(buckets: &MetricBuckets, name: &str) -> f64 {
        buckets.of(name)[0]
    }

    #[test]
    fn a_full_name_wins_over_any_prefix_or_suffix() {
        let b = buckets(&[
            (MetricMatch::prefix("http_request_"), 1.0),
            (MetricMatch::suffix("_request_size_bytes"), 2.0),
            (MetricMatch::full("http_request_size_bytes"), 3.0),
        ]);
        assert_eq!(bound(&b, "http_request_size_bytes"), 3.0);
        // Without its full name, the longest of the others.
        assert_eq!(bound(&b, "grpc_request_size_bytes"), 2.0);
        assert_eq!(bound(&b, "http_request_seconds"), 1.0);
        assert_eq!(bound(&b, "other"), 0.0);
    }

    #[test]
    fn the_longest_prefix_or_suffix_wins_whatever_the_order_or_alphabet() {
        // Longer prefixes and suffixes named before and after shorter ones, some alphabetically
        // first, some last: only the length counts.
        let rules = [
            (MetricMatch::prefix("a"), 1.0),
            (MetricMatch::prefix("app_db_"), 2.0),
            (MetricMatch::prefix("app_"), 3.0),
            (MetricMatch::suffix("_seconds"), 4.0),
            (MetricMatch::suffix("_query_seconds"), 5.0),
            (MetricMatch::suffix("s"), 6.0),
        ];
        for reversed in [false, true] {
            let mut rules = rules.to_vec();
            if reversed {
                rules.reverse();
            }
            let b = buckets(&rules);
            assert_eq!(bound(&b, "app_db_query_seconds"), 5.0); // 14 > 7
            assert_eq!(bound(&b, "app_db_wait_seconds"), 4.0); // 8 > 7
            assert_eq!(bound(&b, "app_db_rows"), 2.0); // 7 > 1
            assert_eq!(bound(&b, "app_http_rows"), 3.0); // 4 > 1
            assert_eq!(bound(&b, "abc"), 1.0);
            assert_eq!(bound(&b, "zzz_things"), 6.0);
        }
    }

    #[test]
    fn at_equal_length_the_suffix_wins_over_the_prefix() {
        for (prefix, suffix) in [("aaa_", "_zzz"), ("zzz_", "_aaa")] {
            let name = format!("{prefix}x{suffix}");
            for order in [[0, 1], [1, 0]] {
                let rules = [
                    (MetricMatch::prefix(prefix), 1.0),
                    (MetricMatch::suffix(suffix), 2.0),
                ];
                let b = buckets(&[rules[order[0]].clone(), rules[order[1]].clone()]);
                assert_eq!(bound(&b, &name), 2.0, "{name}");
            }
        }
    }

    #[test]
    fn a_later_setting_of_the_same_matcher_replaces_the_earlier() {
        let b = buckets(&[
            (MetricMatch::prefix("http_"), 1.0),
            (MetricMatch::prefix("http_"), 2.0),
        ]);
        assert_eq!(bound(&b, "http_x"), 2.0);
        assert_eq!(b, buckets(&[(MetricMatch::prefix("http_"), 2.0)]));
    }

    #[test]
    fn matchers_are_read_from_text_and_bad_ones_refused() {
        assert_eq!("a_b".parse(), Ok(MetricMatch::full("a_b")));
        assert_eq!(" ns:x_* ".parse(), Ok(MetricMatch::prefix("ns:x_")));
        assert_eq!("*_total".parse(), Ok(MetricMatch::suffix("_total")));
        assert_eq!("*2xx".parse(), Ok(MetricMatch::suffix("2xx")));
        for (bad, reason) in [
            ("", "empty"),
            ("*", "`*`"),
            ("**", "`*`"),
            ("*a*", "`*`"),
            ("a*b", "`*`"),
            ("checkout.seconds", "character"),
            ("http-*", "character"),
            ("*_bytes ok", "character"),
            ("2xx_*", "digit"),
            ("9lives", "digit"),
        ] {
            match bad.parse::<MetricMatch>() {
                Err(e @ MetricBucketsError::Matcher { .. }) => {
                    let message = e.to_string();
                    assert!(message.contains(reason), "{bad:?}: {message}");
                    assert!(message.contains(&format!("{:?}", bad.trim())), "{message}");
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn the_environments_entries_are_read_in_order() {
        let rules =
            parse_metric_buckets(" checkout_seconds = 0.1, 0.5 ,1 ;http_*=-1,0,1e3;;*_bytes=1000;")
                .unwrap();
        assert_eq!(
            rules,
            [
                (MetricMatch::full("checkout_seconds"), vec![0.1, 0.5, 1.0]),
                (MetricMatch::prefix("http_"), vec![-1.0, 0.0, 1000.0]),
                (MetricMatch::suffix("_bytes"), vec![1000.0]),
            ]
        );
    }

    #[test]
    fn bad_entries_name_what_is_wrong() {
        let entry = |entry: &str, reason| MetricBucketsError::Entry {
            entry: entry.into(),
            reason,
        };
        let bounds = |matcher: &str, value: &str, reason| MetricBucketsError::Buckets {
            matcher: matcher.into(),
            value: format!("{value:?}"),
            reason,
        };
        for (value, error) in [
            ("", entry("", "there is no entry")),
            (" ; ", entry(" ; ", "there is no entry")),
            (
                "a=1;http_",
                entry("http_", "it has no `=` between the matcher and the buckets"),
            ),
            ("a=1,fast", bounds("a", "1,fast", "one is not a number")),
            ("a= , ", bounds("a", ",", "there are none")),
            ("a=", bounds("a", "", "there are none")),
            (
                "x_*=2,1",
                bounds("x_*", "2,1", "they are not in increasing order"),
            ),
            (
                "*_b=1,1",
                bounds("*_b", "1,1", "they are not in increasing order"),
            ),
            (
                "a=1,inf",
                bounds("a", "1,inf", "one is not a finite number"),
            ),
            ("a=NaN", bounds("a", "NaN", "one is not a finite number")),
            ("a=1;a=2", entry("a=2", "its matcher was given before")),
        ] {
            assert_eq!(parse_metric_buckets(value), Err(error), "{value:?}");
        }
        assert!(matches!(
            parse_metric_buckets("a.b=1"),
            Err(MetricBucketsError::Matcher { matcher, .. }) if matcher == "a.b"
        ));
        let message = parse_metric_buckets("x_*=2,1").unwrap_err().to_string();
        assert!(
            message.contains("x_*") && message.contains("\"2,1\""),
            "{message}"
        );
    }

    proptest! {
        #[test]
        fn any_text_is_read_or_refused_without_a_panic(s in any::<String>()) {
            if let Ok(rules) = parse_metric_buckets(&s) {
                prop_assert!(!rules.is_empty());
                for (matcher, bounds) in rules {
                    prop_assert!(matcher.validate().is_ok());
                    prop_assert!(validate_metric_bounds(&matcher, &bounds).is_ok());
                }
            }
        }

        #[test]
        fn a_matcher_reads_back_from_its_text(
            text in "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
            which in 0..3u8,
        ) {
            let matcher = match which {
                0 => MetricMatch::full(text),
                1 => MetricMatch::prefix(text),
                _ => MetricMatch::suffix(text),
            };
            prop_assert_eq!(matcher.to_string().parse::<MetricMatch>(), Ok(matcher));
        }
    }
}
