//! The Prometheus text format 0.0.4, written in one place for every page profilis renders:
//! label values and help texts escaped exactly as the format asks (so every value reads back
//! as itself), metric names and label keys reduced to the characters it allows, sample values
//! and family headers.

use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Appends `value` as a label value (without its quotes): `\` as `\\`, `"` as `\"`, a line
/// feed as `\n`, every other character as itself. These are the format's only escapes in label
/// values, so a parser gets `value` back exactly.
pub(crate) fn escape_label_value(out: &mut String, value: &str) {
    escape(out, value, true);
}

/// Appends `help` as the text of a `# HELP` line: `\` as `\\` and a line feed as `\n`, the
/// format's only escapes there.
pub(crate) fn escape_help(out: &mut String, help: &str) {
    escape(out, help, false);
}

fn escape(out: &mut String, text: &str, quotes: bool) {
    out.reserve(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// `name` as a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`, each other character replaced by `_`
/// (an empty name is `_`).
pub(crate) fn metric_name(name: &str) -> Cow<'_, str> {
    sanitize(name, |c, first| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
    })
}

/// `key` as a label key: `[a-zA-Z_][a-zA-Z0-9_]*`, each other character replaced by `_` (an
/// empty key is `_`).
pub(crate) fn label_key(key: &str) -> Cow<'_, str> {
    sanitize(key, |c, first| {
        c.is_ascii_alphabetic() || c == '_' || (!first && c.is_ascii_digit())
    })
}

fn sanitize(text: &str, allowed: impl Fn(char, bool) -> bool) -> Cow<'_, str> {
    if text.is_empty() {
        return Cow::Borrowed("_");
    }
    if text.chars().enumerate().all(|(i, c)| allowed(c, i == 0)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .enumerate()
            .map(|(i, c)| if allowed(c, i == 0) { c } else { '_' })
            .collect(),
    )
}

/// The inside of a series' braces, `key="value",...`: keys sanitized, values escaped, in the
/// order given. Empty for no labels.
pub(crate) fn label_set<K, V>(labels: impl IntoIterator<Item = (K, V)>) -> String
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut out = String::new();
    for (key, value) in labels {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&label_key(key.as_ref()));
        out.push_str("=\"");
        escape_label_value(&mut out, value.as_ref());
        out.push('"');
    }
    out
}

/// The type of a family, as its `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FamilyType {
    Counter,
    Gauge,
    Histogram,
}

impl FamilyType {
    fn as_str(self) -> &'static str {
        match self {
            FamilyType::Counter => "counter",
            FamilyType::Gauge => "gauge",
            FamilyType::Histogram => "histogram",
        }
    }
}

/// Appends a family's `# HELP` line (if it has a help text) and its `# TYPE` line. `name` must
/// already be a valid metric name.
pub(crate) fn write_header(out: &mut String, name: &str, help: Option<&str>, kind: FamilyType) {
    if let Some(help) = help {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        escape_help(out, help);
        out.push('\n');
    }
    out.push_str("# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind.as_str());
    out.push('\n');
}

/// A sample value as the format writes it: `+Inf`, `-Inf`, `NaN`, or the shortest decimal that
/// reads back as the same number.
pub(crate) struct Value(pub(crate) f64);

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            f64::INFINITY => f.write_str("+Inf"),
            f64::NEG_INFINITY => f.write_str("-Inf"),
            v => write!(f, "{v}"),
        }
    }
}

/// Appends one sample line: `name` (a valid metric name) and `suffix` (`_bucket`, `_sum`,
/// `_count` or empty), the label set `labels` (from [`label_set`]) and an optional `le` bound,
/// then the value.
pub(crate) fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &str,
    le: Option<f64>,
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        out.push_str(labels);
        if let Some(le) = le {
            if !labels.is_empty() {
                out.push(',');
            }
            // `le` values are rendered as numbers, never escaped: "0.005", "1", "+Inf".
            write!(out, "le=\"{}\"", Value(le)).expect("writing to a String");
        }
        out.push('}');
    }
    writeln!(out, " {value}").expect("writing to a String");
}

/// One series' value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sample {
    /// A counter's total.
    Counter(u64),
    /// A counter's total that is not a whole number (CPU seconds).
    FloatCounter(f64),
    /// A gauge's value.
    Gauge(f64),
    /// A histogram.
    Histogram(HistogramSample),
}

/// A histogram's buckets and sum.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistogramSample {
    /// Each bucket's upper bound and observations (not cumulative), the last bound `+Inf`.
    pub(crate) buckets: Vec<(f64, u64)>,
    /// The sum of the observations.
    pub(crate) sum: f64,
}

impl Sample {
    fn family_type(&self) -> FamilyType {
        match self {
            Sample::Counter(_) | Sample::FloatCounter(_) => FamilyType::Counter,
            Sample::Gauge(_) => FamilyType::Gauge,
            Sample::Histogram(_) => FamilyType::Histogram,
        }
    }

    /// Folds in a series that rendered to the same name and labels (two names that sanitize
    /// alike): counters and histograms with the same buckets add up, a gauge takes the later
    /// value.
    fn merge(&mut self, other: Sample) {
        match (self, other) {
            (Sample::Counter(a), Sample::Counter(b)) => *a = a.saturating_add(b),
            (Sample::FloatCounter(a), Sample::FloatCounter(b)) => *a += b,
            (Sample::Gauge(a), Sample::Gauge(b)) => *a = b,
            (Sample::Histogram(a), Sample::Histogram(b))
                if a.buckets.len() == b.buckets.len()
                    && a.buckets.iter().zip(&b.buckets).all(|(x, y)| x.0 == y.0) =>
            {
                for (x, y) in a.buckets.iter_mut().zip(&b.buckets) {
                    x.1 = x.1.saturating_add(y.1);
                }
                a.sum += b.sum;
            }
            // Histograms with other buckets cannot be added: the first stays.
            _ => {}
        }
    }
}

struct Family {
    help: Option<String>,
    /// The help text when nothing gives one ([`Page::default_help`]).
    default_help: Option<String>,
    kind: FamilyType,
    /// By label set (from [`label_set`]).
    series: BTreeMap<String, Sample>,
}

/// A page of families being put together: each family once, under its sanitized name with one
/// `# HELP` and `# TYPE`, families and series in a stable order (by name, then by label set).
#[derive(Default)]
pub(crate) struct Page {
    families: BTreeMap<String, Family>,
}

impl Page {
    /// Adds a series of family `name` with label set `labels` (from [`label_set`]). A series
    /// of a family already on the page with another type is left out (one name, one type),
    /// and one whose name and labels are already there is merged into it.
    pub(crate) fn add(&mut self, name: &str, labels: String, sample: Sample) {
        let kind = sample.family_type();
        let family = self
            .families
            .entry(metric_name(name).into_owned())
            .or_insert_with(|| Family {
                help: None,
                default_help: None,
                kind,
                series: BTreeMap::new(),
            });
        if family.kind != kind {
            return;
        }
        match family.series.entry(labels) {
            Entry::Vacant(entry) => {
                entry.insert(sample);
            }
            Entry::Occupied(mut entry) => entry.get_mut().merge(sample),
        }
    }

    /// Gives family `name` the help text `help`, if it is on the page without one.
    pub(crate) fn help(&mut self, name: &str, help: &str) {
        if let Some(family) = self.families.get_mut(metric_name(name).as_ref()) {
            family.help.get_or_insert_with(|| help.to_owned());
        }
    }

    /// Gives family `name` the help text `help` unless [`Page::help`] gives it one, before or
    /// after this call (so an application's `describe_*` replaces profilis's text).
    pub(crate) fn default_help(&mut self, name: &str, help: &str) {
        if let Some(family) = self.families.get_mut(metric_name(name).as_ref()) {
            family.default_help = Some(help.to_owned());
        }
    }

    /// The page in the text format: per family its `# HELP` (if any) and `# TYPE` lines, its
    /// samples, and a blank line.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for (name, family) in &self.families {
            let help = family.help.as_deref().or(family.default_help.as_deref());
            write_header(&mut out, name, help, family.kind);
            for (labels, sample) in &family.series {
                match sample {
                    Sample::Counter(v) => write_sample(&mut out, name, "", labels, None, v),
                    Sample::FloatCounter(v) => {
                        write_sample(&mut out, name, "", labels, None, Value(*v));
                    }
                    Sample::Gauge(v) => write_sample(&mut out, name, "", labels, None, Value(*v)),
                    Sample::Histogram(h) => {
                        let mut cumulative = 0u64;
                        for &(le, count) in &h.buckets {
                            cumulative = cumulative.saturating_add(count);
                            write_sample(&mut out, name, "_bucket", labels, Some(le), cumulative);
                        }
                        write_sample(&mut out, name, "_sum", labels, None, Value(h.sum));
                        write_sample(&mut out, name, "_count", labels, None, cumulative);
                    }
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label_value(value: &str) -> String {
        let mut out = String::new();
        escape_label_value(&mut out, value);
        out
    }

    #[test]
    fn label_values_use_exactly_the_three_escapes() {
        assert_eq!(label_value(r#"a"b"#), r#"a\"b"#);
        // A backslash before a quote is a character of its own: two distinct values stay two.
        assert_eq!(label_value(r#"a\"b"#), r#"a\\\"b"#);
        // A trailing backslash before a newline stays in its place.
        assert_eq!(label_value("bs\\\n"), r"bs\\\n");
        assert_eq!(label_value("\\n"), r"\\n");
        // Everything else is itself: CR, NUL, tabs, non-ASCII.
        assert_eq!(label_value("\r\0\té✓"), "\r\0\té✓");
    }

    #[test]
    fn help_escapes_backslashes_and_newlines_only() {
        let mut out = String::new();
        escape_help(&mut out, "a \"quoted\" C:\\path\nnext");
        assert_eq!(out, r#"a "quoted" C:\\path\nnext"#);
    }

    #[test]
    fn names_and_keys_keep_only_allowed_characters() {
        assert_eq!(metric_name("app.requests-total"), "app_requests_total");
        assert_eq!(metric_name("1st:x"), "_st:x");
        assert_eq!(metric_name(""), "_");
        assert!(matches!(metric_name("ok_name:1"), Cow::Borrowed(_)));
        assert_eq!(label_key("a:b"), "a_b");
        assert_eq!(label_key("9lives"), "_lives");
        assert_eq!(label_key("é"), "_");
    }

    #[test]
    fn samples_render_labels_bounds_and_special_values() {
        let mut out = String::new();
        let labels = label_set([("path", "/a\"b"), ("k-ey", "v")]);
        write_sample(&mut out, "m", "_bucket", &labels, Some(0.005), 3);
        write_sample(&mut out, "m", "_bucket", "", Some(f64::INFINITY), 4);
        write_sample(&mut out, "g", "", "", None, Value(f64::NEG_INFINITY));
        write_sample(&mut out, "g", "", "", None, Value(f64::NAN));
        write_sample(&mut out, "g", "", "", None, Value(2.0));
        assert_eq!(
            out,
            "m_bucket{path=\"/a\\\"b\",k_ey=\"v\",le=\"0.005\"} 3\n\
             m_bucket{le=\"+Inf\"} 4\n\
             g -Inf\n\
             g NaN\n\
             g 2\n"
        );
    }
}
