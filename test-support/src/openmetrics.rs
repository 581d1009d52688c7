//! A strict reader of OpenMetrics 1.0 pages, following the specification's rules where a page
//! can break them: `# EOF` exactly once and last; no blank lines or other comments; each
//! family's `# TYPE`/`# UNIT`/`# HELP` at most once and before its samples, families never
//! interleaved and never named twice; a sample's name its family's name plus the suffix its
//! type allows (`_total` for counters, `_bucket`/`_count`/`_sum` for histograms, ...); a unit
//! the family name ends in; only `\\`, `\"` and `\n` as escapes in label values and help
//! texts; exemplars only on counters' `_total` and histogram buckets, their label sets at most
//! 128 characters; and for each histogram series, increasing `le` bounds ending in `+Inf`,
//! cumulative counts that never decrease, `_count` equal to the `+Inf` bucket, a `_sum` that is
//! neither negative nor NaN, and each bucket's exemplar within its bucket.

use std::collections::{HashMap, HashSet};

use crate::exposition::{label_set, metric_name, number, unescape, Exemplar, Labels, Sample};

/// A family as its descriptors declare it.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    /// Its `# TYPE`, `unknown` without one.
    pub kind: String,
    pub unit: Option<String>,
    pub help: Option<String>,
}

/// An OpenMetrics page, read back.
#[derive(Debug, Clone, Default)]
pub struct OpenMetrics {
    pub families: Vec<Family>,
    /// Every sample, in page order, with its exemplar.
    pub samples: Vec<Sample>,
}

impl OpenMetrics {
    /// The samples named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The family named `name`.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }
}

const TYPES: [&str; 8] = [
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "stateset",
    "info",
    "summary",
    "unknown",
];

fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "histogram" => &["_bucket", "_count", "_sum", "_created"],
        "gaugehistogram" => &["_bucket", "_gcount", "_gsum"],
        "summary" => &["", "_count", "_sum", "_created"],
        "info" => &["_info"],
        _ => &[""],
    }
}

/// Reads an OpenMetrics page; an error names the line and what is wrong with it.
pub fn parse_openmetrics(text: &str) -> Result<OpenMetrics, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .or_else(|| text.strip_suffix("# EOF"))
        .ok_or("the page does not end with `# EOF`")?;
    let mut page = OpenMetrics::default();
    // Whether the current family has had samples (then no more descriptors).
    let mut sampled = false;
    let mut series = HashSet::new();
    let lines: Vec<&str> = if body.is_empty() {
        Vec::new()
    } else {
        body.strip_suffix('\n')
            .ok_or("no line feed before `# EOF`")?
            .split('\n')
            .collect()
    };
    for (n, line) in lines.iter().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(at("a blank line".to_owned()));
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let keyword = words.next().unwrap_or_default();
            if keyword == "EOF" {
                return Err(at("`# EOF` before the end".to_owned()));
            }
            let (Some(name), Some(rest)) = (words.next(), words.next()) else {
                return Err(at("a descriptor without a name and a value".to_owned()));
            };
            metric_name(name).map_err(at)?;
            let current = page.families.last().filter(|f| f.name == name);
            let family = match current {
                Some(_) if sampled => {
                    return Err(at(format!("a descriptor of {name} after its samples")));
                }
                Some(_) => page.families.last_mut().expect("current family"),
                None => {
                    if page.families.iter().any(|f| f.name == name) {
                        return Err(at(format!("family {name} declared twice")));
                    }
                    page.families.push(Family {
                        name: name.to_owned(),
                        kind: "unknown".to_owned(),
                        unit: None,
                        help: None,
                    });
                    sampled = false;
                    page.families.last_mut().expect("just pushed")
                }
            };
            match keyword {
                "TYPE" => {
                    if !TYPES.contains(&rest) {
                        return Err(at(format!("unknown type {rest:?}")));
                    }
                    family.kind = rest.to_owned();
                }
                "UNIT" => {
                    if family.unit.is_some() {
                        return Err(at(format!("a second UNIT for {name}")));
                    }
                    if !rest.is_empty() && !name.ends_with(&format!("_{rest}")) {
                        return Err(at(format!("unit {rest} is not a suffix of {name}")));
                    }
                    family.unit = Some(rest.to_owned());
                }
                "HELP" => {
                    if family.help.is_some() {
                        return Err(at(format!("a second HELP for {name}")));
                    }
                    family.help = Some(unescape(rest, true).map_err(at)?);
                }
                other => return Err(at(format!("an unknown descriptor {other:?}"))),
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(at("a comment OpenMetrics does not allow".to_owned()));
        }
        let sample = om_sample(line).map_err(at)?;
        let belongs = page.families.last().is_some_and(|f| {
            sample
                .name
                .strip_prefix(f.name.as_str())
                .is_some_and(|suffix| suffixes(&f.kind).contains(&suffix))
        });
        if !belongs {
            // A sample without descriptors is a family of its own, of unknown type.
            if page.families.iter().any(|f| f.name == sample.name) {
                return Err(at(format!(
                    "{} is not a sample of the current family (families interleaved)",
                    sample.name
                )));
            }
            page.families.push(Family {
                name: sample.name.clone(),
                kind: "unknown".to_owned(),
                unit: None,
                help: None,
            });
        }
        sampled = true;
        let family = page.families.last().expect("a family");
        if sample.exemplar.is_some() {
            let allowed = (family.kind == "counter" && sample.name.ends_with("_total"))
                || (family.kind.ends_with("histogram") && sample.name.ends_with("_bucket"));
            if !allowed {
                return Err(at("an exemplar where OpenMetrics allows none".to_owned()));
            }
        }
        if family.kind == "counter"
            && sample.name.ends_with("_total")
            && (sample.value.is_nan() || sample.value < 0.0)
        {
            return Err(at(
                "a counter's total must be a number at least 0".to_owned()
            ));
        }
        if !series.insert((sample.name.clone(), sample.labels.clone())) {
            return Err(at("a series seen twice".to_owned()));
        }
        page.samples.push(sample);
    }
    check_histograms(&page)?;
    Ok(page)
}

/// One sample line: series, value, optional timestamp, optional exemplar.
fn om_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    metric_name(name)?;
    let (labels, rest) = label_set(&line[name_end..])?;
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let (point, exemplar) = match rest.split_once(" # ") {
        Some((point, exemplar)) => (point, Some(exemplar)),
        None => (rest, None),
    };
    let mut parts = point.split(' ');
    let value = number(parts.next().ok_or("no value")?)?;
    if let Some(timestamp) = parts.next() {
        number(timestamp).map_err(|_| format!("invalid timestamp {timestamp:?}"))?;
    }
    if parts.next().is_some() {
        return Err("more after the timestamp".to_owned());
    }
    let exemplar = exemplar.map(read_exemplar).transpose()?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
        exemplar,
    })
}

fn read_exemplar(text: &str) -> Result<Exemplar, String> {
    if !text.starts_with('{') {
        return Err("an exemplar without its label set".to_owned());
    }
    let (labels, rest) = label_set(text)?;
    let length: usize = labels
        .iter()
        .map(|(k, v)| k.chars().count() + v.chars().count())
        .sum();
    if length > 128 {
        return Err(format!(
            "an exemplar label set of {length} characters (at most 128)"
        ));
    }
    let mut parts = rest
        .strip_prefix(' ')
        .ok_or("no space before the exemplar's value")?
        .split(' ');
    let value = number(parts.next().ok_or("no exemplar value")?)?;
    let timestamp = parts
        .next()
        .map(|t| number(t).map_err(|_| format!("invalid exemplar timestamp {t:?}")))
        .transpose()?;
    if parts.next().is_some() {
        return Err("more after the exemplar's timestamp".to_owned());
    }
    Ok(Exemplar {
        labels,
        value,
        timestamp,
    })
}

/// The rules of each histogram series: bounds, cumulative counts, `_count`, `_sum`, exemplars.
fn check_histograms(page: &OpenMetrics) -> Result<(), String> {
    for family in page.families.iter().filter(|f| f.kind == "histogram") {
        let name = &family.name;
        // Buckets per series (labels without `le`), in page order.
        let mut buckets: HashMap<Labels, Vec<(f64, &Sample)>> = HashMap::new();
        let bucket_name = format!("{name}_bucket");
        for sample in page.named(&bucket_name) {
            let le = sample
                .label("le")
                .ok_or_else(|| format!("{name}_bucket without le"))?;
            let le = number(le)?;
            let series: Vec<_> = sample
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            buckets.entry(series).or_default().push((le, sample));
        }
        for (series, bounds) in &buckets {
            let mut previous_le = f64::NEG_INFINITY;
            let mut previous_count = 0.0;
            for &(le, sample) in bounds {
                if le.is_nan() || le <= previous_le {
                    return Err(format!("{name}{series:?}: le {le} after {previous_le}"));
                }
                if sample.value < previous_count {
                    return Err(format!(
                        "{name}{series:?}: bucket le={le} counts less than the one before"
                    ));
                }
                if let Some(e) = &sample.exemplar {
                    if !(e.value > previous_le && e.value <= le) {
                        return Err(format!(
                            "{name}{series:?}: exemplar {} outside its bucket ({previous_le}, {le}]",
                            e.value
                        ));
                    }
                }
                previous_le = le;
                previous_count = sample.value;
            }
            if previous_le != f64::INFINITY {
                return Err(format!("{name}{series:?}: no +Inf bucket"));
            }
            let with = |suffix: &str| {
                page.samples
                    .iter()
                    .find(|s| s.name == format!("{name}{suffix}") && &s.labels == series)
            };
            match with("_count") {
                Some(count) if count.value == previous_count => {}
                Some(count) => {
                    return Err(format!(
                        "{name}{series:?}: _count {} is not the +Inf bucket's {previous_count}",
                        count.value
                    ));
                }
                None => return Err(format!("{name}{series:?}: no _count")),
            }
            if let Some(sum) = with("_sum") {
                if sum.value.is_nan() || sum.value < 0.0 {
                    return Err(format!(
                        "{name}{series:?}: _sum {} (negative or NaN)",
                        sum.value
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# TYPE orders counter\n\
        # HELP orders Orders \\\"taken\\\"\n\
        orders_total{shop=\"a\\\"b\"} 3 # {trace_id=\"ab\"} 1 1700000000.5\n\
        # TYPE t_seconds histogram\n\
        # UNIT t_seconds seconds\n\
        t_seconds_bucket{le=\"0.1\"} 1 # {trace_id=\"cd\"} 0.05 1700000000.25\n\
        t_seconds_bucket{le=\"+Inf\"} 2\n\
        t_seconds_count 2\n\
        t_seconds_sum 1.05\n\
        # EOF\n";

    #[test]
    fn a_good_page_reads_back() {
        let page = parse_openmetrics(GOOD).unwrap();
        assert_eq!(
            page.family("orders").unwrap().help.as_deref(),
            Some("Orders \"taken\"")
        );
        assert_eq!(
            page.family("t_seconds").unwrap().unit.as_deref(),
            Some("seconds")
        );
        let total = page.named("orders_total").next().unwrap();
        assert_eq!(total.label("shop"), Some("a\"b"));
        let bucket = page.named("t_seconds_bucket").next().unwrap();
        let exemplar = bucket.exemplar.as_ref().unwrap();
        assert_eq!(exemplar.label("trace_id"), Some("cd"));
        assert_eq!(
            (exemplar.value, exemplar.timestamp),
            (0.05, Some(1700000000.25))
        );
    }

    #[test]
    fn pages_breaking_a_rule_are_refused() {
        let broken = [
            // No `# EOF`, or something after it, or twice.
            GOOD.replace("# EOF\n", ""),
            format!("{GOOD}a 1\n"),
            GOOD.replace("# TYPE t_seconds", "# EOF\n# TYPE t_seconds"),
            // A blank line, another comment.
            GOOD.replace("# TYPE t_seconds", "\n# TYPE t_seconds"),
            GOOD.replace("# TYPE t_seconds", "# a comment\n# TYPE t_seconds"),
            // A counter's sample without `_total`; its family named with it.
            GOOD.replace("orders_total{", "orders{"),
            GOOD.replace("orders counter", "orders_total counter"),
            // A unit that is not the name's suffix.
            GOOD.replace("UNIT t_seconds seconds", "UNIT t_seconds bytes"),
            // Interleaved families, a family declared twice.
            "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x=\"1\"} 2\n# EOF\n".to_owned(),
            "# TYPE a gauge\na 1\n# TYPE a gauge\n# EOF\n".to_owned(),
            // An exemplar outside its bucket, on a gauge, too long.
            GOOD.replace("0.05 1700000000.25", "0.5 1700000000.25"),
            "# TYPE g gauge\ng 1 # {trace_id=\"a\"} 1\n# EOF\n".to_owned(),
            GOOD.replace(
                "trace_id=\"ab\"",
                &format!("trace_id=\"{}\"", "a".repeat(121)),
            ),
            // Histogram rules: count, sum, +Inf, decreasing buckets.
            GOOD.replace("t_seconds_count 2", "t_seconds_count 3"),
            GOOD.replace("t_seconds_sum 1.05", "t_seconds_sum -1"),
            GOOD.replace(
                "t_seconds_bucket{le=\"+Inf\"} 2",
                "t_seconds_bucket{le=\"1\"} 2",
            ),
            GOOD.replace(
                "t_seconds_bucket{le=\"+Inf\"} 2",
                "t_seconds_bucket{le=\"+Inf\"} 0",
            ),
            // An escape the format does not have.
            GOOD.replace("a\\\"b", "a\\tb"),
        ];
        for page in &broken {
            assert!(parse_openmetrics(page).is_err(), "accepted:\n{page}");
        }
    }
}
