//! A strict reader of the Prometheus text format 0.0.4, following the format's own rules: in a
//! label value only `\\`, `\"` and `\n` are escapes, in a `# HELP` text only `\\` and `\n`; any
//! other escape, a raw line feed, a second `# HELP`/`# TYPE` of a name or a series seen twice is
//! an error. Tests read pages back with it to check that every value is what was recorded.
//!
//! And a strict reader of OpenMetrics 1.0 ([`parse_openmetrics`]), since `promtool check
//! metrics` reads the text format only (it refuses an OpenMetrics page at its first `\"` in a
//! help text or its first exemplar).

use std::collections::HashSet;

/// A series' labels, unescaped, in the order written.
pub type Labels = Vec<(String, String)>;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name, with its `_bucket`/`_sum`/`_count` suffix.
    pub name: String,
    /// The labels, unescaped, in the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Its exemplar (OpenMetrics only).
    pub exemplar: Option<Exemplar>,
}

/// An OpenMetrics exemplar: ` # {labels} value [timestamp]` after a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp: Option<f64>,
}

impl Exemplar {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A page, read back.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// `# HELP` lines: name and unescaped text.
    pub help: Vec<(String, String)>,
    /// `# TYPE` lines: name and type.
    pub types: Vec<(String, String)>,
}

impl Exposition {
    /// The samples named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The help text of family `name`.
    pub fn help_of(&self, name: &str) -> Option<&str> {
        self.help
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, h)| h.as_str())
    }
}

/// Reads a page; an error names the line and what is wrong with it.
pub fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut page = Exposition::default();
    let mut series = HashSet::new();
    for (n, line) in text.split('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start_matches(' ').splitn(3, ' ');
            let (Some(keyword), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            // As Prometheus does, blanks before the text are skipped: a help text cannot start
            // with one.
            let rest = words.next().unwrap_or("").trim_start_matches([' ', '\t']);
            let seen = match keyword {
                "HELP" => &mut page.help,
                "TYPE" => &mut page.types,
                _ => continue,
            };
            metric_name(name).map_err(at)?;
            if seen.iter().any(|(n, _)| n == name) {
                return Err(at(format!("a second {keyword} line for {name}")));
            }
            let value = match keyword {
                "HELP" => unescape(rest, false).map_err(at)?,
                _ if matches!(
                    rest,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) =>
                {
                    rest.to_owned()
                }
                _ => return Err(at(format!("unknown type {rest:?}"))),
            };
            seen.push((name.to_owned(), value));
            continue;
        }
        let sample = sample(line).map_err(at)?;
        if !series.insert((sample.name.clone(), sample.labels.clone())) {
            return Err(at("a series seen twice".to_owned()));
        }
        page.samples.push(sample);
    }
    Ok(page)
}

/// Unescapes a label value (`quotes`: `\"` is an escape too) or a help text.
pub fn unescape(escaped: &str, quotes: bool) -> Result<String, String> {
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            Some(other) => return Err(format!("invalid escape \\{other}")),
            None => return Err("a backslash at the end".to_owned()),
        }
    }
    Ok(out)
}

pub(crate) fn metric_name(name: &str) -> Result<(), String> {
    let ok = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    });
    if ok && !name.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    metric_name(name)?;
    let (labels, rest) = label_set(&line[name_end..])?;
    let mut parts = rest
        .strip_prefix(' ')
        .ok_or("no space before the value")?
        .split(' ');
    let value = parts.next().ok_or("no value")?;
    let value = number(value)?;
    if let Some(timestamp) = parts.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("invalid timestamp {timestamp:?}"))?;
    }
    if parts.next().is_some() {
        return Err("more after the timestamp".to_owned());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
        exemplar: None,
    })
}

pub(crate) fn number(value: &str) -> Result<f64, String> {
    Ok(match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("invalid value {v:?}"))?,
    })
}

/// Reads `{key="value",...}` at the start of `text` (none if it does not start with `{`), and
/// returns the labels and what follows.
pub(crate) fn label_set(text: &str) -> Result<(Labels, &str), String> {
    let mut rest = text;
    let mut labels: Vec<(String, String)> = Vec::new();
    if let Some(mut inside) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inside.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = inside.find('=').ok_or("a label without `=`")?;
            let key = &inside[..eq];
            let key_ok = key
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()));
            if key.is_empty() || !key_ok {
                return Err(format!("invalid label key {key:?}"));
            }
            if labels.iter().any(|(k, _)| k == key) {
                return Err(format!("label {key} twice"));
            }
            let value_and_more = inside[eq + 1..]
                .strip_prefix('"')
                .ok_or("a label value without quotes")?;
            // The value ends at the first quote that no backslash escapes.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in value_and_more.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.ok_or("an unterminated label value")?;
            labels.push((key.to_owned(), unescape(&value_and_more[..end], true)?));
            inside = &value_and_more[end + 1..];
            if let Some(after) = inside.strip_prefix(',') {
                inside = after;
            } else if !inside.starts_with('}') {
                return Err("labels not separated by `,`".to_owned());
            }
        }
    }
    Ok((labels, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_three_escapes_are_read() {
        assert_eq!(unescape(r#"a\\\"b\n"#, true).unwrap(), "a\\\"b\n");
        assert!(unescape(r"\t", true).is_err());
        assert!(unescape(r#"\""#, false).is_err());
        assert!(unescape("end\\", true).is_err());
    }

    #[test]
    fn pages_are_read_strictly() {
        let page = parse_exposition(
            "# HELP m A \\\\ help\\nline\n# TYPE m counter\nm{a=\"x\\\"}\",b=\"\"} 3\nm 1.5 17\n\n",
        )
        .unwrap();
        assert_eq!(page.help_of("m"), Some("A \\ help\nline"));
        assert_eq!(page.samples.len(), 2);
        assert_eq!(page.samples[0].label("a"), Some("x\"}"));
        assert_eq!(page.samples[0].label("b"), Some(""));
        assert_eq!(page.samples[1].value, 1.5);
        for bad in [
            "m{a=\"\\x\"} 1",
            "m{a=\"open} 1",
            "m{a=\"1\"b=\"2\"} 1",
            "m 1\nm 2",
            "# TYPE m counter\n# TYPE m gauge",
            "m{a=\"1\",a=\"2\"} 1",
            "1m 1",
            "m one",
        ] {
            assert!(parse_exposition(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
