//! Reading only the mapped fields of a status document, so that what the mapping does not name
//! cannot fail a poll.
//!
//! The whole body must still be one JSON document (UTF-8, a leading byte-order mark allowed):
//! its syntax is checked to the end. But the parts no pointer leads into are only skipped, by
//! serde_json's iterative skipping, which converts no number and has no nesting limit: a number
//! beyond `f64` (`1e400`) or 200 levels of nesting in an unmapped field do not matter. On a
//! pointer's way, each value is taken as raw text and walked one level at a time, so the only
//! recursion is one step per pointer token (at most [`MAX_POINTER_TOKENS`]). A mapped field
//! holding a number beyond `f64` is a [`Field::OutOfRange`], a problem of that field alone.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The most tokens a mapping file's pointer may have (`/a/b` has 2).
pub const MAX_POINTER_TOKENS: usize = 128;

/// What a mapped field holds, as much as a metric needs of it.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number within `f64`'s range.
    Number(f64),
    /// A number beyond `f64`'s range, as written (shortened when long).
    OutOfRange(String),
    /// A string.
    String(String),
    /// An array (its contents are not read).
    Array,
    /// An object (its contents are not read).
    Object,
}

/// The fields of one document, one per pointer, in the order the pointers were given.
#[derive(Debug)]
pub struct Document {
    fields: Vec<Option<Field>>,
}

impl Document {
    /// The field of the `index`th pointer, or `None` when the document has nothing there.
    pub fn field(&self, index: usize) -> Option<&Field> {
        self.fields.get(index).and_then(Option::as_ref)
    }
}

/// Why a body is not a JSON document.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not UTF-8 (JSON is).
    #[error("it is not UTF-8 ({0})")]
    NotUtf8(std::str::Utf8Error),
    /// Not JSON, with the line and column.
    #[error("{0}")]
    Syntax(serde_json::Error),
}

/// The pointers of a mapping, as a tree of their tokens.
#[derive(Debug, Default)]
pub struct Pointers {
    root: Node,
    count: usize,
}

#[derive(Debug, Default)]
struct Node {
    /// The pointers that end here.
    ends: Vec<usize>,
    /// The next tokens (object keys, or array indexes as written, `0`, `12`).
    children: BTreeMap<String, Node>,
}

impl Pointers {
    /// The tree of `pointers` (RFC 6901 JSON Pointers, checked by the mapping file's reader;
    /// `""` is the whole document).
    pub fn new<'a>(pointers: impl IntoIterator<Item = &'a str>) -> Pointers {
        let mut tree = Pointers::default();
        for (index, pointer) in pointers.into_iter().enumerate() {
            let mut node = &mut tree.root;
            for token in tokens(pointer) {
                node = node.children.entry(token).or_default();
            }
            node.ends.push(index);
            tree.count = index + 1;
        }
        tree
    }

    /// Reads the fields of the pointers from `body`.
    ///
    /// # Errors
    /// [`DocumentError`] when the body is not one JSON document.
    pub fn read(&self, body: &[u8]) -> Result<Document, DocumentError> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let text = std::str::from_utf8(body).map_err(DocumentError::NotUtf8)?;
        // Checks the whole text, skipping values without converting them.
        let raw: &RawValue = serde_json::from_str(text).map_err(DocumentError::Syntax)?;
        let mut fields = vec![None; self.count];
        walk(&self.root, raw.get(), &mut fields).map_err(DocumentError::Syntax)?;
        Ok(Document { fields })
    }
}

/// The tokens of a pointer, unescaped (`~1` is `/`, then `~0` is `~`).
fn tokens(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
}

/// Reads `node`'s fields from the value `raw` (already checked JSON).
fn walk(node: &Node, raw: &str, fields: &mut [Option<Field>]) -> Result<(), serde_json::Error> {
    // A key given twice: the last one counts, as in serde_json's `Value`.
    node.clear(fields);
    let raw = raw.trim_start();
    if !node.ends.is_empty() {
        let field = classify(raw)?;
        for &index in &node.ends {
            fields[index] = Some(field.clone());
        }
    }
    if node.children.is_empty() {
        return Ok(());
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    match raw.as_bytes().first() {
        Some(b'{') => de.deserialize_map(Level { node, fields }),
        Some(b'[') => de.deserialize_seq(Level { node, fields }),
        // A scalar: nothing under it.
        _ => Ok(()),
    }
}

impl Node {
    fn clear(&self, fields: &mut [Option<Field>]) {
        for &index in &self.ends {
            fields[index] = None;
        }
        for child in self.children.values() {
            child.clear(fields);
        }
    }
}

/// What the raw value is; only a string is parsed further, and a number by Rust's own
/// (correctly rounded) conversion.
fn classify(raw: &str) -> Result<Field, serde_json::Error> {
    Ok(match raw.as_bytes().first() {
        Some(b'n') | None => Field::Null,
        Some(b't') => Field::Bool(true),
        Some(b'f') => Field::Bool(false),
        Some(b'"') => Field::String(serde_json::from_str(raw)?),
        Some(b'{') => Field::Object,
        Some(b'[') => Field::Array,
        Some(_) => match raw.trim_end().parse::<f64>() {
            Ok(value) if value.is_finite() => Field::Number(value),
            _ => Field::OutOfRange(shortened(raw.trim_end())),
        },
    })
}

fn shortened(text: &str) -> String {
    const MOST: usize = 40;
    if text.len() <= MOST {
        text.to_owned()
    } else {
        // A JSON number is ASCII, so any byte is a char boundary.
        format!("{}… ({} digits and signs)", &text[..MOST], text.len())
    }
}

/// One object or array on the way of some pointers.
struct Level<'a> {
    node: &'a Node,
    fields: &'a mut [Option<Field>],
}

impl<'de> Visitor<'de> for Level<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or an array")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if self.node.children.contains_key(&key) {
                let raw: &RawValue = map.next_value()?;
                self.descend(&key, raw)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let key = index.to_string();
            if self.node.children.contains_key(&key) {
                match seq.next_element::<&RawValue>()? {
                    Some(raw) => self.descend(&key, raw)?,
                    None => return Ok(()),
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }
}

impl Level<'_> {
    /// Walks the value of `key` (an object key, or an array index as digits).
    fn descend<E: de::Error>(&mut self, key: &str, raw: &RawValue) -> Result<(), E> {
        let child = &self.node.children[key];
        walk(child, raw.get(), self.fields).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pointers: &[&str], body: &str) -> Vec<Option<Field>> {
        let tree = Pointers::new(pointers.iter().copied());
        let doc = tree.read(body.as_bytes()).unwrap();
        (0..pointers.len()).map(|i| doc.field(i).cloned()).collect()
    }

    #[test]
    fn the_fields_of_the_pointers() {
        let body = r#"{"a": {"b": [10, {"c": "x"}], "t": true}, "n": null, "a/b": 1.5, "~k": [],
                       "o": {}, "": 3}"#;
        assert_eq!(
            read(
                &["/a/b/0", "/a/b/1/c", "/a/t", "/n", "/a~1b", "/~0k", "/o", "/a/b/2", "/", "/a"],
                body
            ),
            [
                Some(Field::Number(10.0)),
                Some(Field::String("x".into())),
                Some(Field::Bool(true)),
                Some(Field::Null),
                Some(Field::Number(1.5)),
                Some(Field::Array),
                Some(Field::Object),
                None,
                Some(Field::Number(3.0)),
                Some(Field::Object),
            ]
        );
        // An index is digits as written: `01` is not `1`; a key under a scalar is missing.
        assert_eq!(
            read(&["/l/01", "/l/1", "/s/x"], r#"{"l": [1, 2], "s": 5}"#),
            [None, Some(Field::Number(2.0)), None]
        );
        // A key given twice: the last counts.
        assert_eq!(read(&["/a/x"], r#"{"a": {"x": 1}, "a": 5}"#), [None]);
        assert_eq!(
            read(&["/a"], r#"{"a": 1, "a": 2}"#),
            [Some(Field::Number(2.0))]
        );
    }

    #[test]
    fn unmapped_fields_do_not_matter() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let body = format!(
            "\u{FEFF}{{\"huge\": 1e400, \"deep\": {deep}, \"x\": 4, \"odd\": \"\\u00e9\"}}"
        );
        assert_eq!(read(&["/x"], &body), [Some(Field::Number(4.0))]);
        // Nor under a mapped object on the way.
        let body = format!("{{\"a\": {{\"huge\": -1e999, \"deep\": {deep}, \"x\": 2}}}}");
        assert_eq!(read(&["/a/x"], &body), [Some(Field::Number(2.0))]);
    }

    #[test]
    fn a_mapped_number_beyond_f64_is_its_fields_problem_only() {
        assert_eq!(
            read(
                &["/big", "/ok", "/tiny"],
                r#"{"big": 1e400, "ok": 1, "tiny": 1e-400}"#
            ),
            [
                Some(Field::OutOfRange("1e400".into())),
                Some(Field::Number(1.0)),
                Some(Field::Number(0.0)),
            ]
        );
        let long = format!("{{\"big\": {}}}", "9".repeat(400));
        let field = read(&["/big"], &long).remove(0);
        assert!(
            matches!(&field, Some(Field::OutOfRange(text)) if text.contains("(400 digits")),
            "{field:?}"
        );
    }

    #[test]
    fn bodies_that_are_not_one_document() {
        let tree = Pointers::new(["/x"]);
        for (body, says) in [
            (
                &b"{\"x\": 1"[..],
                "EOF while parsing an object at line 1 column 7",
            ),
            (b"{\"x\": 1} {}", "trailing characters at line 1 column 10"),
            (b"{\"x\": [1,]}", "line 1 column 10"),
            (b"{\"x\": \xff}", "it is not UTF-8"),
            (b"", "EOF while parsing a value"),
        ] {
            let err = tree.read(body).unwrap_err().to_string();
            assert!(err.contains(says), "{body:?}: {err}");
        }
    }
}
