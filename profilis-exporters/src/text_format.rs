//! The Prometheus text format 0.0.4 and OpenMetrics 1.0, written in one place for every page
//! profilis renders: label values and help texts escaped exactly as the format asks (so every
//! value reads back as itself), metric names and label keys reduced to the characters it
//! allows, sample values and family headers, exemplars (OpenMetrics only), and which format a
//! scraper's `Accept` header asks for ([`ExpositionFormat::negotiate`]).

use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
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

/// Whether `c` may be in a metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), at its start if `first`.
fn metric_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

/// Whether `c` may be in a label key (`[a-zA-Z_][a-zA-Z0-9_]*`), at its start if `first`.
fn label_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (!first && c.is_ascii_digit())
}

/// `name` as a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`, each other character replaced by `_`
/// (an empty name is `_`).
pub(crate) fn metric_name(name: &str) -> Cow<'_, str> {
    sanitize(name, metric_char)
}

/// `key` as a label key: `[a-zA-Z_][a-zA-Z0-9_]*`, each other character replaced by `_` (an
/// empty key is `_`).
pub(crate) fn label_key(key: &str) -> Cow<'_, str> {
    sanitize(key, label_char)
}

/// Whether `name` is a metric name as it is (not empty, nothing to replace).
pub(crate) fn is_metric_name(name: &str) -> bool {
    is_all(name, metric_char)
}

/// Whether `key` is a label key as it is, and not one of the names Prometheus reserves
/// (`__...`).
pub(crate) fn is_label_key(key: &str) -> bool {
    !key.starts_with("__") && is_all(key, label_char)
}

fn is_all(text: &str, allowed: impl Fn(char, bool) -> bool) -> bool {
    !text.is_empty() && text.chars().enumerate().all(|(i, c)| allowed(c, i == 0))
}

fn sanitize(text: &str, allowed: impl Fn(char, bool) -> bool) -> Cow<'_, str> {
    if text.is_empty() {
        return Cow::Borrowed("_");
    }
    if is_all(text, &allowed) {
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
    write_labels(labels, label_key)
}

/// `key="value",...`, each key as `key` writes it, values escaped.
fn write_labels<K, V>(
    labels: impl IntoIterator<Item = (K, V)>,
    key: impl Fn(&str) -> Cow<'_, str>,
) -> String
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut out = String::new();
    for (k, value) in labels {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&key(k.as_ref()));
        out.push_str("=\"");
        escape_label_value(&mut out, value.as_ref());
        out.push('"');
    }
    out
}

/// Why `label` is kept from the series of other metrics: Prometheus' tools (promtool, the
/// text format's rules) keep `le` and `quantile` for the series of histograms and summaries
/// and refuse them on any other metric. Declared metrics (info metrics, state sets, metric
/// sets) refuse them; the application's `metrics` keys are renamed ([`app_label_set`]).
pub(crate) fn reserved_label(label: &str) -> Option<&'static str> {
    match label {
        "le" => Some("`le` labels the buckets of histograms; no other metric may have it"),
        "quantile" => {
            Some("`quantile` labels the quantiles of summaries; no other metric may have it")
        }
        _ => None,
    }
}

/// Whether the application's label key `key` is written `exported_<key>`: Prometheus keeps
/// it (`__...`, [`reserved_label`]).
fn kept_by_prometheus(key: &str) -> bool {
    key.starts_with("__") || reserved_label(key).is_some()
}

/// As [`label_set`], for label keys the application chose (through the `metrics` macros),
/// whatever they are: each key is also made one the series may carry. A key that Prometheus
/// reserves (`__...`), `le` or `quantile` (a histogram's bucket bound and a summary's
/// quantile, which Prometheus also lints on any other family), or one that sanitizes to a key
/// already in the set is written `exported_<key>` (as often as needed to make it unique), as
/// Prometheus renames a scraped label that clashes with one of its own. No label is dropped;
/// as with names, label sets the same once sanitized are one series, and the keys keep the
/// order they were given in.
pub(crate) fn app_label_set<I, K, V>(labels: I) -> String
where
    I: IntoIterator<Item = (K, V)> + Clone,
    K: AsRef<str>,
    V: AsRef<str>,
{
    // Usually every key is one the series may carry as it is: nothing to copy. (Checked byte
    // by byte: this runs for every series of every scrape.)
    let plain = |key: &str| {
        let bytes = key.as_bytes();
        bytes.first().is_some_and(|b| !b.is_ascii_digit())
            && bytes
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'_')
            && !kept_by_prometheus(key)
    };
    let as_they_are = labels.clone().into_iter().enumerate().all(|(i, (key, _))| {
        let key = key.as_ref();
        plain(key)
            && (i == 0
                || labels
                    .clone()
                    .into_iter()
                    .take(i)
                    .all(|(earlier, _)| earlier.as_ref() != key))
    });
    if as_they_are {
        fn as_it_is(key: &str) -> Cow<'_, str> {
            Cow::Borrowed(key)
        }
        return write_labels(labels, as_it_is);
    }
    let mut keys: Vec<String> = Vec::new();
    let mut values = Vec::new();
    for (key, value) in labels {
        let mut key = label_key(key.as_ref()).into_owned();
        while kept_by_prometheus(&key) || keys.contains(&key) {
            key.insert_str(0, "exported_");
        }
        keys.push(key);
        values.push(value);
    }
    label_set(keys.iter().zip(values.iter()))
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
    write_sample_with(out, name, suffix, labels, le, value, None);
}

/// As [`write_sample`], with an OpenMetrics exemplar after the value when one is given:
/// ` # {trace_id="<32 hex>"} <value> <timestamp>`.
fn write_sample_with(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &str,
    le: Option<f64>,
    value: impl std::fmt::Display,
    exemplar: Option<&Exemplar>,
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
    write!(out, " {value}").expect("writing to a String");
    if let Some(e) = exemplar {
        write!(
            out,
            " # {{trace_id=\"{:032x}\"}} {} {}",
            e.trace_id,
            Value(e.value),
            Value(e.timestamp)
        )
        .expect("writing to a String");
    }
    out.push('\n');
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
    /// The unit OpenMetrics' `# UNIT` line names (the name ends in `_<unit>`).
    unit: Option<&'static str>,
    /// By label set (from [`label_set`]).
    series: BTreeMap<String, Sample>,
    /// A histogram's exemplars by label set: one per bucket at most, by bucket index.
    exemplars: BTreeMap<String, Vec<Option<Exemplar>>>,
}

/// A histogram bucket's exemplar: a call that fell in the bucket, by its trace id. Written in
/// OpenMetrics pages only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Exemplar {
    /// The call's trace id (written as 32 lowercase hex digits).
    pub(crate) trace_id: u128,
    /// The observed value (a duration in seconds).
    pub(crate) value: f64,
    /// When it was observed, in seconds since the Unix epoch.
    pub(crate) timestamp: f64,
}

/// The formats profilis writes `/metrics` pages in. The Prometheus text format 0.0.4 is the
/// default; OpenMetrics 1.0 is written when the scraper asks for it
/// ([`negotiate`](ExpositionFormat::negotiate)), as Prometheus does by default, and only it
/// carries exemplars.
///
/// ```
/// # use profilis_exporters as profilis;
/// use profilis::ExpositionFormat;
///
/// // The `Accept` header Prometheus 2 sends when it scrapes.
/// let prometheus = "application/openmetrics-text;version=1.0.0,\
///     application/openmetrics-text;version=0.0.1;q=0.75,\
///     text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// assert_eq!(ExpositionFormat::negotiate([prometheus]), ExpositionFormat::OpenMetrics);
/// assert_eq!(ExpositionFormat::negotiate([]), ExpositionFormat::Text);
/// assert_eq!(
///     ExpositionFormat::OpenMetrics.content_type(),
///     "application/openmetrics-text; version=1.0.0; charset=utf-8"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExpositionFormat {
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    #[default]
    Text,
    /// OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`): counters declared
    /// without their `_total` suffix, histogram buckets with exemplars, `# EOF` at the end.
    OpenMetrics,
}

impl ExpositionFormat {
    /// The `Content-Type` of a page in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            ExpositionFormat::Text => "text/plain; version=0.0.4; charset=utf-8",
            ExpositionFormat::OpenMetrics => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
        }
    }

    /// The format a request's `Accept` header values ask for: OpenMetrics when
    /// `application/openmetrics-text` (without a version, or version `1.0.0`) has a higher
    /// weight (`q`) than the text format, else the text format. Each format takes the weight
    /// of the most specific entry that names it (`application/openmetrics-text` or
    /// `text/plain` with an allowed version, then `application/*` or `text/*`, then `*/*`).
    /// An entry for a version profilis does not write (OpenMetrics `0.0.1`, text `1.0.0`)
    /// names neither. No header, a tie, or nothing acceptable: the text format.
    pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a str>) -> ExpositionFormat {
        // (specificity, weight) of the best-matching entry per format.
        let mut open_metrics: Option<(u8, f32)> = None;
        let mut text: Option<(u8, f32)> = None;
        let take = |best: &mut Option<(u8, f32)>, specificity: u8, weight: f32| {
            let better = match *best {
                None => true,
                Some((s, w)) => specificity > s || (specificity == s && weight > w),
            };
            if better {
                *best = Some((specificity, weight));
            }
        };
        for entry in accept.into_iter().flat_map(|value| value.split(',')) {
            let mut parts = entry.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let (mut weight, mut version) = (1.0f32, None);
            for param in parts {
                let Some((name, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    // A weight that does not parse, or lies outside [0, 1], refuses the entry.
                    "q" => {
                        weight = value
                            .parse::<f32>()
                            .ok()
                            .filter(|q| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0);
                    }
                    "version" => version = Some(value),
                    _ => {}
                }
            }
            let Some((kind, subtype)) = media.split_once('/') else {
                continue;
            };
            let (kind, subtype) = (kind.trim(), subtype.trim());
            let is =
                |a: &str, b: &str| kind.eq_ignore_ascii_case(a) && subtype.eq_ignore_ascii_case(b);
            if is("application", "openmetrics-text") {
                if matches!(version, None | Some("1.0.0")) {
                    take(&mut open_metrics, 3, weight);
                }
            } else if is("text", "plain") {
                if matches!(version, None | Some("0.0.4")) {
                    take(&mut text, 3, weight);
                }
            } else if is("application", "*") {
                take(&mut open_metrics, 2, weight);
            } else if is("text", "*") {
                take(&mut text, 2, weight);
            } else if is("*", "*") {
                take(&mut open_metrics, 1, weight);
                take(&mut text, 1, weight);
            }
        }
        let weight = |best: Option<(u8, f32)>| best.map_or(0.0, |(_, w)| w);
        let open_metrics = weight(open_metrics);
        if open_metrics > 0.0 && open_metrics > weight(text) {
            ExpositionFormat::OpenMetrics
        } else {
            ExpositionFormat::Text
        }
    }
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
                unit: None,
                series: BTreeMap::new(),
                exemplars: BTreeMap::new(),
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

    /// Takes the families `names` off the page, those already on it (a family added later
    /// stays).
    pub(crate) fn leave_out(&mut self, names: &[&str]) {
        for name in names {
            self.families.remove(metric_name(name).as_ref());
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

    /// Gives family `name` the unit `unit` (OpenMetrics' `# UNIT` line), if it is on the page
    /// and its name ends in `_<unit>`, as OpenMetrics requires.
    pub(crate) fn unit(&mut self, name: &str, unit: &'static str) {
        let name = metric_name(name);
        if let Some(family) = self.families.get_mut(name.as_ref()) {
            if name
                .strip_suffix(unit)
                .is_some_and(|rest| rest.ends_with('_'))
            {
                family.unit = Some(unit);
            }
        }
    }

    /// Gives the histogram series `labels` of family `name` its buckets' exemplars (by bucket
    /// index, as many as it has buckets at most). Written in OpenMetrics only, and only an
    /// exemplar whose value lies within its bucket.
    pub(crate) fn exemplars(&mut self, name: &str, labels: &str, exemplars: Vec<Option<Exemplar>>) {
        if let Some(family) = self.families.get_mut(metric_name(name).as_ref()) {
            if family.kind == FamilyType::Histogram && family.series.contains_key(labels) {
                family.exemplars.insert(labels.to_owned(), exemplars);
            }
        }
    }

    /// The families a page in `format` leaves out because one of the names it would write is
    /// written by another family: a histogram `req` writes `req_count`, so a counter
    /// `req_count` would be read as part of it (Go's parser, and so `promtool`, refuses the
    /// whole page then), and in OpenMetrics the counters `x` and `x_total` both write
    /// `x_total`. Histograms claim their names first, then gauges, then counters named
    /// `_total` (whose name is the same in both formats), then other counters, each by name.
    fn left_out(&self, format: ExpositionFormat) -> BTreeSet<&str> {
        let rank = |name: &str, family: &Family| match family.kind {
            FamilyType::Histogram => 0,
            FamilyType::Gauge => 1,
            FamilyType::Counter if name.ends_with("_total") => 2,
            FamilyType::Counter => 3,
        };
        let mut order: Vec<_> = self.families.iter().collect();
        order.sort_by_key(|&(name, family)| rank(name, family));
        let mut claimed = BTreeSet::new();
        let mut left_out = BTreeSet::new();
        for (name, family) in order {
            let names = match (family.kind, format) {
                (FamilyType::Histogram, _) => ["", "_bucket", "_sum", "_count"]
                    .iter()
                    .map(|suffix| format!("{name}{suffix}"))
                    .collect(),
                (FamilyType::Counter, ExpositionFormat::OpenMetrics) => {
                    let base = open_metrics_counter_name(name);
                    vec![base.to_owned(), format!("{base}_total")]
                }
                _ => vec![name.clone()],
            };
            if names.iter().any(|n| claimed.contains(n)) {
                left_out.insert(name.as_str());
            } else {
                claimed.extend(names);
            }
        }
        left_out
    }

    /// The page in `format`.
    pub(crate) fn render_as(&self, format: ExpositionFormat) -> String {
        match format {
            ExpositionFormat::Text => self.render(),
            ExpositionFormat::OpenMetrics => self.render_open_metrics(),
        }
    }

    /// The page in OpenMetrics 1.0: per family its `# TYPE`, `# UNIT` (if any) and `# HELP` (if
    /// any) lines and its samples, no blank lines, and `# EOF` last. A counter's family is
    /// named without `_total` and its samples with it (`app_orders` counts in
    /// `app_orders_total`); help texts escape `"` too; histogram buckets carry their
    /// exemplars, and a histogram's `_sum` is left out when it is negative or NaN, or when a
    /// bucket's bound is negative (OpenMetrics allows none of these: its sum is a counter).
    /// A family that would write a name another family writes is left out (see
    /// [`Page::left_out`]).
    fn render_open_metrics(&self) -> String {
        let mut out = String::new();
        let left_out = self.left_out(ExpositionFormat::OpenMetrics);
        for (name, family) in &self.families {
            if left_out.contains(name.as_str()) {
                continue;
            }
            let family_name = match family.kind {
                FamilyType::Counter => open_metrics_counter_name(name),
                FamilyType::Gauge | FamilyType::Histogram => name.as_str(),
            };
            out.push_str("# TYPE ");
            out.push_str(family_name);
            out.push(' ');
            out.push_str(family.kind.as_str());
            out.push('\n');
            if let Some(unit) = family.unit {
                writeln!(out, "# UNIT {family_name} {unit}").expect("writing to a String");
            }
            if let Some(help) = family.help.as_deref().or(family.default_help.as_deref()) {
                out.push_str("# HELP ");
                out.push_str(family_name);
                out.push(' ');
                // OpenMetrics escapes `"` in help texts as in label values.
                escape(&mut out, help, true);
                out.push('\n');
            }
            for (labels, sample) in &family.series {
                match sample {
                    Sample::Counter(v) => {
                        write_sample(&mut out, family_name, "_total", labels, None, v);
                    }
                    Sample::FloatCounter(v) => {
                        write_sample(&mut out, family_name, "_total", labels, None, Value(*v));
                    }
                    Sample::Gauge(v) => {
                        write_sample(&mut out, family_name, "", labels, None, Value(*v));
                    }
                    Sample::Histogram(h) => {
                        let exemplars = family.exemplars.get(labels);
                        let mut cumulative = 0u64;
                        let mut previous = f64::NEG_INFINITY;
                        for (i, &(le, count)) in h.buckets.iter().enumerate() {
                            cumulative = cumulative.saturating_add(count);
                            let exemplar = exemplars
                                .and_then(|e| e.get(i).copied().flatten())
                                .filter(|e| e.value > previous && e.value <= le);
                            let exemplar = exemplar.as_ref();
                            write_sample_with(
                                &mut out,
                                family_name,
                                "_bucket",
                                labels,
                                Some(le),
                                cumulative,
                                exemplar,
                            );
                            previous = le;
                        }
                        write_sample(&mut out, family_name, "_count", labels, None, cumulative);
                        let negative_bound = h.buckets.iter().any(|&(le, _)| le < 0.0);
                        if h.sum >= 0.0 && !negative_bound {
                            write_sample(&mut out, family_name, "_sum", labels, None, Value(h.sum));
                        }
                    }
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }

    /// The page in the text format: per family its `# HELP` (if any) and `# TYPE` lines, its
    /// samples, and a blank line. A family that would write a name another family writes is
    /// left out (see [`Page::left_out`]).
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let left_out = self.left_out(ExpositionFormat::Text);
        for (name, family) in &self.families {
            if left_out.contains(name.as_str()) {
                continue;
            }
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

/// The name of counter `name`'s family in OpenMetrics: without `_total` (its samples add it).
fn open_metrics_counter_name(name: &str) -> &str {
    name.strip_suffix("_total")
        .filter(|base| !base.is_empty())
        .unwrap_or(name)
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

    /// Prometheus 2's scrape `Accept` header.
    const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,\
        application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// Prometheus 3's, with its default scrape protocols.
    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
        text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

    #[test]
    fn openmetrics_is_answered_when_preferred_and_text_otherwise() {
        use ExpositionFormat::{OpenMetrics, Text};
        let cases: [(&[&str], ExpositionFormat); 16] = [
            (&[], Text),
            (&[PROMETHEUS_2], OpenMetrics),
            (&[PROMETHEUS_3], OpenMetrics),
            (&["application/openmetrics-text"], OpenMetrics),
            (
                &["Application/OpenMetrics-Text; version=\"1.0.0\""],
                OpenMetrics,
            ),
            // Two header lines count as one list.
            (
                &["text/plain;q=0.5", "application/openmetrics-text"],
                OpenMetrics,
            ),
            (&["text/plain"], Text),
            (&["*/*"], Text),
            (&["text/plain;version=0.0.4"], Text),
            // Weights decide, a tie is the text format.
            (
                &["application/openmetrics-text;q=0.3,text/plain;q=0.5"],
                Text,
            ),
            (
                &["application/openmetrics-text;q=0.5,text/plain;q=0.5"],
                Text,
            ),
            (&["application/openmetrics-text;q=0,*/*"], Text),
            (&["application/*;q=0.9,text/*;q=0.8"], OpenMetrics),
            // A version profilis does not write names neither format; a bad weight refuses.
            (
                &["application/openmetrics-text;version=0.0.1,text/plain;q=0.1"],
                Text,
            ),
            (
                &["application/openmetrics-text;q=high,text/plain;q=0.1"],
                Text,
            ),
            (&["application/openmetrics-text;version=2.0.0"], Text),
        ];
        for (accept, want) in cases {
            assert_eq!(
                ExpositionFormat::negotiate(accept.iter().copied()),
                want,
                "{accept:?}"
            );
        }
    }

    fn exemplar(trace_id: u128, value: f64) -> Option<Exemplar> {
        Some(Exemplar {
            trace_id,
            value,
            timestamp: 1_700_000_000.25,
        })
    }

    fn sample_page() -> Page {
        let mut page = Page::default();
        let labels = label_set([("path", "/a\"b\\\n")]);
        page.add("app_orders", labels.clone(), Sample::Counter(3));
        page.help("app_orders", "Orders \"taken\"\\ here\n");
        page.add("calls_total", String::new(), Sample::Counter(2));
        page.add("level", String::new(), Sample::Gauge(1.5));
        let histogram = HistogramSample {
            buckets: vec![(0.1, 1), (1.0, 2), (f64::INFINITY, 0)],
            sum: 1.25,
        };
        page.add("t_seconds", labels.clone(), Sample::Histogram(histogram));
        page.unit("t_seconds", "seconds");
        page.unit("level", "seconds");
        // One exemplar in its bucket, one outside (left out), none for +Inf.
        page.exemplars(
            "t_seconds",
            &labels,
            vec![exemplar(0xab, 0.05), exemplar(0xcd, 0.05), None],
        );
        page
    }

    #[test]
    fn openmetrics_pages_name_counters_without_total_and_carry_exemplars() {
        let page = sample_page();
        assert_eq!(
            page.render_as(ExpositionFormat::OpenMetrics),
            "# TYPE app_orders counter\n\
             # HELP app_orders Orders \\\"taken\\\"\\\\ here\\n\n\
             app_orders_total{path=\"/a\\\"b\\\\\\n\"} 3\n\
             # TYPE calls counter\n\
             calls_total 2\n\
             # TYPE level gauge\n\
             level 1.5\n\
             # TYPE t_seconds histogram\n\
             # UNIT t_seconds seconds\n\
             t_seconds_bucket{path=\"/a\\\"b\\\\\\n\",le=\"0.1\"} 1 \
             # {trace_id=\"000000000000000000000000000000ab\"} 0.05 1700000000.25\n\
             t_seconds_bucket{path=\"/a\\\"b\\\\\\n\",le=\"1\"} 3\n\
             t_seconds_bucket{path=\"/a\\\"b\\\\\\n\",le=\"+Inf\"} 3\n\
             t_seconds_count{path=\"/a\\\"b\\\\\\n\"} 3\n\
             t_seconds_sum{path=\"/a\\\"b\\\\\\n\"} 1.25\n\
             # EOF\n"
        );
        // The text format has neither exemplars, units nor `# EOF`, and names as recorded.
        let text = page.render();
        assert!(!text.contains("trace_id") && !text.contains("# EOF") && !text.contains("UNIT"));
        assert!(text.contains("\napp_orders{path="), "{text}");
    }

    #[test]
    fn openmetrics_leaves_out_what_it_does_not_allow() {
        let mut page = Page::default();
        // A negative sum (observations below zero): no `_sum`.
        let histogram = HistogramSample {
            buckets: vec![(0.0, 1), (f64::INFINITY, 0)],
            sum: -2.0,
        };
        page.add("delta", String::new(), Sample::Histogram(histogram));
        // A counter `x` would be written `x_total`: a gauge of that name is there, so the
        // counter is left out rather than write one sample name in two families.
        page.add("x", String::new(), Sample::Counter(1));
        page.add("x_total", String::new(), Sample::Gauge(2.0));
        assert_eq!(
            page.render_as(ExpositionFormat::OpenMetrics),
            "# TYPE delta histogram\n\
             delta_bucket{le=\"0\"} 1\n\
             delta_bucket{le=\"+Inf\"} 1\n\
             delta_count 1\n\
             # TYPE x_total gauge\n\
             x_total 2\n\
             # EOF\n"
        );
        assert_eq!(
            Page::default().render_as(ExpositionFormat::OpenMetrics),
            "# EOF\n"
        );
    }

    #[test]
    fn a_family_that_would_write_another_family_s_names_is_left_out_of_that_format_only() {
        let mut page = Page::default();
        // The histogram `req` writes `req_count` and `req_sum`: those families are left out
        // of both formats, whatever their labels; the histogram stays.
        let histogram = HistogramSample {
            buckets: vec![(1.0, 1), (f64::INFINITY, 0)],
            sum: 0.5,
        };
        page.add("req", String::new(), Sample::Histogram(histogram));
        page.add("req_count", label_set([("a", "b")]), Sample::Counter(3));
        page.add("req_sum", String::new(), Sample::Gauge(4.0));
        for name in ["req", "req_count", "req_sum"] {
            page.help(name, "Help.");
        }
        // Go's parser (`promtool`) reads the page: it refuses a second family `req_count`.
        let text = page.render();
        profilis_test_support::promtool_check_metrics(text.as_bytes());
        // Both write `jobs_total` in OpenMetrics: the one named so stays there; the text
        // format has both.
        page.add("jobs", String::new(), Sample::Counter(1));
        page.add("jobs_total", String::new(), Sample::Counter(2));
        for format in [ExpositionFormat::Text, ExpositionFormat::OpenMetrics] {
            let text = page.render_as(format);
            assert!(text.contains("req_bucket{le=\"1\"} 1\n"), "{text}");
            assert!(
                !text.contains("req_count{a") && !text.contains("req_sum 4"),
                "{text}"
            );
        }
        let text = page.render();
        assert!(
            text.contains("\njobs 1\n") && text.contains("\njobs_total 2\n"),
            "{text}"
        );
        profilis_test_support::parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let om = page.render_as(ExpositionFormat::OpenMetrics);
        assert!(
            om.contains("# TYPE jobs counter\njobs_total 2\n") && !om.contains("jobs_total 1"),
            "{om}"
        );
        profilis_test_support::parse_openmetrics(&om).unwrap_or_else(|e| panic!("{e}\n{om}"));
    }

    #[test]
    fn openmetrics_has_no_sum_for_a_histogram_with_a_negative_bound() {
        let mut page = Page::default();
        // A sum that is not negative, but the buckets go below zero.
        let histogram = HistogramSample {
            buckets: vec![(-10.0, 1), (0.0, 0), (10.0, 2), (f64::INFINITY, 0)],
            sum: 3.0,
        };
        page.add("delta", String::new(), Sample::Histogram(histogram));
        let om = page.render_as(ExpositionFormat::OpenMetrics);
        assert!(
            !om.contains("delta_sum") && om.contains("delta_count 3\n"),
            "{om}"
        );
        // The text format has no such rule.
        assert!(page.render().contains("delta_sum 3\n"));
    }
}
