//! Statement masking: the rule every DB adapter uses before a statement goes into an event.
//! Literals become `?`, comments go, whitespace shrinks to single spaces, `IN (?, ?, ?)` lists
//! shrink to `IN (?)`, and the result is cut to the statement limit. Identifiers, keywords,
//! operators and placeholders (`?`, `$1`, `:name`, `@p1`) stay as written.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use regex::Regex;

/// The default statement limit, in bytes.
pub const DEFAULT_STATEMENT_LIMIT: usize = 1024;

static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_STATEMENT_LIMIT);

/// Sets the longest masked statement kept in DB events, in bytes (cut at a character
/// boundary and ended with `…`); `0` keeps no statement at all (`query` is `null`). Default
/// [`DEFAULT_STATEMENT_LIMIT`]. Applies to every adapter, from the next query on. Only the
/// first 64 times this many bytes of a statement are masked (and the result marked as cut),
/// which bounds the work done on the querying thread.
pub fn set_statement_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// The current statement limit (see [`set_statement_limit`]).
pub fn statement_limit() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

/// The dialect [`mask`] knows `vendor` by (`mysql`, `mariadb`, `sqlite`, `postgres`,
/// `postgresql`, `cockroachdb`), in any case; `""` for any other vendor. [`mask`] reads its
/// vendor through it; a query keeps it from its start, so its statement is masked in its
/// vendor's dialect even when the vendor's label is [`OTHER_VENDOR`](crate::db::OTHER_VENDOR).
pub(crate) fn dialect(vendor: &str) -> &'static str {
    [
        "mysql",
        "mariadb",
        "sqlite",
        "postgres",
        "postgresql",
        "cockroachdb",
    ]
    .into_iter()
    .find(|known| known.eq_ignore_ascii_case(vendor))
    .unwrap_or("")
}

/// The statement as DB events keep it: [`mask`]ed for `vendor`'s dialect and cut to the
/// statement limit. `None` when the limit is 0.
pub fn for_event(vendor: &str, sql: &str) -> Option<String> {
    let limit = statement_limit();
    if limit == 0 {
        return None;
    }
    // Runs on the caller's thread: of a statement of megabytes (a bulk insert) only the start
    // is masked, enough for `IN` lists of thousands to shrink to `IN (?)` within the limit.
    let budget = read_budget(limit);
    let whole = sql.len() <= budget;
    let sql = if whole {
        sql
    } else {
        let mut cut = budget;
        while !sql.is_char_boundary(cut) {
            cut -= 1;
        }
        &sql[..cut]
    };
    let mut masked = mask(vendor, sql);
    truncate(&mut masked, limit, !whole);
    Some(masked)
}

/// Bytes of a statement masked for each byte of the statement limit.
const INPUT_PER_OUTPUT: usize = 64;

/// The most bytes of a statement read for its event under statement limit `limit`: what
/// [`for_event`] masks, and all an adapter that builds the text needs to build (a longer
/// text is cut there).
pub(crate) fn read_budget(limit: usize) -> usize {
    limit.saturating_mul(INPUT_PER_OUTPUT)
}

/// Cuts `s` to at most `limit` bytes at a character boundary, ending it with `…` when cut or
/// when it was `cut_already` (the mark included in the limit where it fits).
fn truncate(s: &mut String, limit: usize, cut_already: bool) {
    const MARK: &str = "…";
    if s.len() <= limit && !cut_already {
        return;
    }
    if s.len() + MARK.len() > limit {
        let mut cut = limit.saturating_sub(MARK.len()).min(s.len());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    if limit >= MARK.len() {
        s.push_str(MARK);
    }
}

/// Replaces the literals of `sql` with `?` so that no user data is kept, in the dialect of
/// `vendor` (named in any case: `MySQL` is `mysql`).
///
/// - strings `'...'` (with `''` escapes, and prefixes `E'..'`, `N'..'`, `X'..'`, `B'..'`),
///   dollar-quoted strings `$$...$$` / `$tag$...$tag$`, and numbers (`42`, `-1.5e3`
///   keeps its sign, `0x1F`) become `?`. A backslash escapes a quote only where the dialect
///   says so: in `mysql` and `mariadb` strings and in PostgreSQL's `E'..'` strings; elsewhere
///   (standard SQL, PostgreSQL, SQLite) `'C:\'` is a whole string;
/// - `"..."` is an identifier and is kept, except for `mysql` and `mariadb`, where it is a
///   string, and for `sqlite`, which takes it for a string when it names no column
///   (`WHERE email = "ann@example.com"` runs): there only a plain name (`"user"`,
///   `"created_at"`) is kept, anything else (spaces, `@`, a leading digit) becomes `?`;
///   `` `...` `` is an identifier. `[...]`, an identifier in SQLite and SQL Server but
///   an array in PostgreSQL (`ARRAY['a', 'b']`, `tags[1]`), is read token by token: its words
///   stay and the literals in it are masked;
/// - comments (`-- ...`, `/* ... */`, and `# ...` for `mysql`/`mariadb`) are removed; for
///   `postgres` (and `postgresql`, `cockroachdb`), whose block comments nest, a block comment
///   ends where its nested ones do;
/// - runs of whitespace become one space; a list of literals and placeholders after `IN`
///   (`IN (?, ?, ?)`, `IN ($1, $2)`, `IN (?1, ?2)`, `IN (:a, :b)`, `IN (-1, 2)`) becomes
///   `IN (?)`; a final `;` goes.
///
/// An unterminated string, quoted identifier or comment masks everything after its start.
///
/// ```
/// use profilis::db::mask;
///
/// assert_eq!(
///     mask("postgres", "SELECT * FROM users WHERE name = 'ada' AND id IN (1, 2, 3) -- hi"),
///     "SELECT * FROM users WHERE name = ? AND id IN (?)"
/// );
/// ```
pub fn mask(vendor: &str, sql: &str) -> String {
    let vendor = dialect(vendor);
    let mysql = matches!(vendor, "mysql" | "mariadb");
    let sqlite = vendor == "sqlite";
    // Where block comments nest; elsewhere one ends at its first `*/`, and reading on past it
    // could take a string's quote for the comment's text and the string for SQL.
    let nested_comments = matches!(vendor, "postgres" | "postgresql" | "cockroachdb");
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut space = false;
    let mut i = 0;
    // Emits a token, with one space before it if whitespace or a comment came first.
    let emit = |out: &mut String, space: &mut bool, token: &str| {
        if *space && !out.is_empty() {
            out.push(' ');
        }
        *space = false;
        out.push_str(token);
    };
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                space = true;
                i += 1;
            }
            b'-' if next == Some(b'-') => {
                i = line_end(bytes, i);
                space = true;
            }
            b'#' if mysql => {
                i = line_end(bytes, i);
                space = true;
            }
            b'/' if next == Some(b'*') => {
                i = block_comment_end(bytes, i, nested_comments);
                space = true;
            }
            b'\'' => {
                i = quoted_end(bytes, i, b'\'', mysql);
                emit(&mut out, &mut space, "?");
            }
            b'"' if mysql => {
                i = quoted_end(bytes, i, b'"', true);
                emit(&mut out, &mut space, "?");
            }
            b'"' | b'`' => match quoted_close(bytes, i, b, false) {
                // SQLite takes a double-quoted text that names no column for a string
                // (`WHERE email = "ann@example.com"` runs): only a plain name stays.
                Some(end) if sqlite && b == b'"' && !is_plain_name(&sql[i + 1..end - 1]) => {
                    emit(&mut out, &mut space, "?");
                    i = end;
                }
                Some(end) => {
                    emit(&mut out, &mut space, &sql[i..end]);
                    i = end;
                }
                None => {
                    // Unterminated, what follows is no identifier: as for a string, it goes.
                    emit(&mut out, &mut space, "?");
                    i = bytes.len();
                }
            },
            b'$' => {
                if let Some(end) = dollar_quoted_end(sql, i) {
                    emit(&mut out, &mut space, "?");
                    i = end;
                } else {
                    // `$1` placeholders (and a lone `$`) stay.
                    let end = word_end(bytes, i + 1);
                    emit(&mut out, &mut space, &sql[i..end]);
                    i = end;
                }
            }
            b'?' => {
                // `?`, and numbered `?1` placeholders, stay.
                let mut end = i + 1;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                emit(&mut out, &mut space, &sql[i..end]);
                i = end;
            }
            b';' if sql[i + 1..].trim().is_empty() => {
                // A final statement terminator says nothing.
                i = bytes.len();
            }
            b'0'..=b'9' => {
                i = number_end(bytes, i);
                emit(&mut out, &mut space, "?");
            }
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                i = number_end(bytes, i);
                emit(&mut out, &mut space, "?");
            }
            _ if is_word_byte(b) => {
                let end = word_end(bytes, i);
                let word = &sql[i..end];
                let prefixed_string = bytes.get(end) == Some(&b'\'')
                    && matches!(word, "E" | "e" | "N" | "n" | "X" | "x" | "B" | "b");
                if prefixed_string {
                    let backslash = mysql || matches!(word, "E" | "e");
                    i = quoted_end(bytes, end, b'\'', backslash);
                    emit(&mut out, &mut space, "?");
                } else {
                    emit(&mut out, &mut space, word);
                    i = end;
                }
            }
            _ => {
                // Punctuation and operators, one character at a time (multi-byte characters
                // whole).
                let len = sql[i..].chars().next().map_or(1, char::len_utf8);
                emit(&mut out, &mut space, &sql[i..i + len]);
                i += len;
            }
        }
    }
    collapse_in_lists(out)
}

/// `IN (?, ?, ?)` → `IN (?)`, so statements that differ only in list length read the same:
/// lists of masked literals (`?`, `-?`) and of placeholders (`?`, `?1`, `$1`, `:name`). (Not
/// `@name`: MySQL's user variables and PostgreSQL's `@` operator read so too.)
fn collapse_in_lists(masked: String) -> String {
    static IN_LIST: OnceLock<Regex> = OnceLock::new();
    let re = IN_LIST.get_or_init(|| {
        const ITEM: &str = r"(?:-? ?\?[0-9]*|\$[0-9]+|:[A-Za-z_][A-Za-z0-9_]*)";
        Regex::new(&format!(r"(?i)\b(IN) ?\( ?{ITEM}(?: ?, ?{ITEM})* ?\)"))
            .expect("the IN-list pattern is valid")
    });
    match re.replace_all(&masked, "$1 (?)") {
        Cow::Borrowed(_) => masked,
        Cow::Owned(collapsed) => collapsed,
    }
}

/// Whether `text`, double-quoted, is a plain name: a letter or `_` (any alphabet), then
/// letters, digits, `_` and `$`; at most 128 bytes. What else SQLite may take for a string.
fn is_plain_name(text: &str) -> bool {
    let mut chars = text.chars();
    text.len() <= 128
        && chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// The end of the identifier, keyword or placeholder name starting at `i`.
fn word_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && (is_word_byte(bytes[i]) || bytes[i] == b'$') {
        i += 1;
    }
    i
}

/// The index after the end of the block comment opening at `start` (`/*`), counting the
/// comments nested in it if `nested`; the end of `bytes` if it is not closed.
pub(super) fn block_comment_end(bytes: &[u8], start: usize, nested: bool) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') if nested || depth == 0 => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after the end of the line starting a comment at `i`.
pub(super) fn line_end(bytes: &[u8], i: usize) -> usize {
    bytes[i..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| i + p + 1)
}

/// The index after the closing `quote` of the quoted text opening at `start`: a doubled
/// quote is an escaped one, and so is a backslashed one when `backslash`. Which it is must
/// follow the dialect: either mistake ends the string in the wrong place and turns the rest of
/// the statement inside out, leaving the next literal unmasked.
fn quoted_end(bytes: &[u8], start: usize, quote: u8, backslash: bool) -> usize {
    quoted_close(bytes, start, quote, backslash).unwrap_or(bytes.len())
}

/// As [`quoted_end`], `None` when the quoted text is not closed.
fn quoted_close(bytes: &[u8], start: usize, quote: u8, backslash: bool) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if backslash && b == b'\\' {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return Some(i + 1);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// For a PostgreSQL dollar-quoted string (`$$...$$`, `$tag$...$tag$`) opening at `start`,
/// the index after its end (the end of `sql` if unterminated); `None` if `$` opens no such
/// string (a `$1` placeholder, say).
fn dollar_quoted_end(sql: &str, start: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    let mut i = start + 1;
    if bytes.get(i).is_some_and(|b| b.is_ascii_digit()) {
        return None;
    }
    // A tag is an identifier: letters (any, as in PostgreSQL), digits and `_`.
    while i < bytes.len() && is_word_byte(bytes[i]) {
        i += 1;
    }
    if bytes.get(i) != Some(&b'$') {
        return None;
    }
    let tag = &sql[start..=i];
    Some(
        sql[i + 1..]
            .find(tag)
            .map_or(bytes.len(), |p| i + 1 + p + tag.len()),
    )
}

/// The end of the number starting at `i`: digits, a fraction, an exponent with its sign,
/// hex digits after `0x`.
fn number_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' {
            if (b == b'e' || b == b'E')
                && matches!(bytes.get(i + 1), Some(b'+') | Some(b'-'))
                && bytes.get(i + 2).is_some_and(|d| d.is_ascii_digit())
            {
                i += 2;
            }
            i += 1;
        } else {
            break;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_comments_and_lists_are_masked() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "postgres",
                "SELECT * FROM users WHERE id = 42",
                "SELECT * FROM users WHERE id = ?",
            ),
            (
                "postgres",
                "SELECT name FROM users WHERE email = 'ada@example.com' AND age > 30.5",
                "SELECT name FROM users WHERE email = ? AND age > ?",
            ),
            (
                "postgres",
                "UPDATE t SET note = 'it''s mine', n = -1.5e-3 WHERE k = 0x1F",
                "UPDATE t SET note = ?, n = -? WHERE k = ?",
            ),
            (
                "postgres",
                "SELECT * FROM t WHERE id IN (1, 2, 3) AND tag IN ('a','b')",
                "SELECT * FROM t WHERE id IN (?) AND tag IN (?)",
            ),
            (
                "sqlite",
                "SELECT a -- the secret is 'x'\nFROM t /* card 4111 1111 */ WHERE b = ?",
                "SELECT a FROM t WHERE b = ?",
            ),
            (
                "postgres",
                "SELECT \"user\".\"id\", col2 FROM \"user\" WHERE t3.x = $1 AND y = :name",
                "SELECT \"user\".\"id\", col2 FROM \"user\" WHERE t3.x = $1 AND y = :name",
            ),
            (
                "postgres",
                "SELECT $$secret body$$, $fn$ more 'x' $fn$, E'esc\\'aped' FROM t",
                "SELECT ?, ?, ? FROM t",
            ),
            (
                "mysql",
                "SELECT * FROM `t` WHERE a = \"secret\" AND b = 'it\\'s' # tail 123",
                "SELECT * FROM `t` WHERE a = ? AND b = ?",
            ),
            (
                "sqlite",
                "INSERT INTO t (a, b)\n\tVALUES (1, 'x'), (2, 'y')",
                "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)",
            ),
            (
                "sqlite",
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT count(*) FROM c",
                "WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + ? FROM c WHERE x < ?) SELECT count(*) FROM c",
            ),
            (
                "postgres",
                "SELECT * FROM t WHERE name = 'never closed",
                "SELECT * FROM t WHERE name = ?",
            ),
            ("postgres", "SELECT 'é', N'ü' FROM [dbo].[t]", "SELECT ?, ? FROM [dbo].[t]"),
            ("postgres", "   ", ""),
            (
                "sqlite",
                "INSERT INTO t VALUES (?1, ?2, :a, @b, $c) ; ",
                "INSERT INTO t VALUES (?1, ?2, :a, @b, $c)",
            ),
            ("sqlite", "SELECT 1; SELECT 2;", "SELECT ?; SELECT ?"),
            // Lists of placeholders and of signed literals shrink too.
            (
                "postgres",
                "SELECT * FROM t WHERE a IN ($1, $2, $3) AND b IN (-1, -2, 3) AND c in (:x,:y)",
                "SELECT * FROM t WHERE a IN (?) AND b IN (?) AND c in (?)",
            ),
            (
                "sqlite",
                "DELETE FROM t WHERE id IN (?1, ?2) OR id IN (@a, @b)",
                "DELETE FROM t WHERE id IN (?) OR id IN (@a, @b)",
            ),
            // Not a list of literals: kept.
            (
                "postgres",
                "SELECT * FROM t WHERE a IN (SELECT b FROM u)",
                "SELECT * FROM t WHERE a IN (SELECT b FROM u)",
            ),
            // A tag with letters beyond ASCII is a tag; nested comments end where they nest.
            (
                "postgres",
                "SELECT $é$4111 1111 ann@example.com$é$, $été$secret$été$ FROM t",
                "SELECT ?, ? FROM t",
            ),
            (
                "postgres",
                "SELECT 1 /* outer /* inner */ patient ann smith */ FROM t",
                "SELECT ? FROM t",
            ),
            ("postgres", "SELECT 1 /* a /* b */ 'c' never closed", "SELECT ?"),
            // Where comments do not nest, the first `*/` ends one: reading on would take the
            // string's quote for the comment's and keep the string.
            (
                "sqlite",
                "UPDATE users /* old /* */ SET name = 'x */ Ann Smith' WHERE id = 1",
                "UPDATE users SET name = ? WHERE id = ?",
            ),
            (
                "mysql",
                "UPDATE users /* old /* */ SET name = 'x */ Ann Smith' WHERE id = 1",
                "UPDATE users SET name = ? WHERE id = ?",
            ),
            // A backslash ends a string where it is no escape, and escapes where it is one.
            (
                "postgres",
                "INSERT INTO t VALUES ('C:\\', 'secret', E'a\\'b', 'x')",
                "INSERT INTO t VALUES (?, ?, ?, ?)",
            ),
            (
                "sqlite",
                "INSERT INTO t VALUES ('C:\\', 'secret')",
                "INSERT INTO t VALUES (?, ?)",
            ),
            (
                "mariadb",
                "INSERT INTO t VALUES ('it\\'s', 'secret', \"C:\\\\\", 'x')",
                "INSERT INTO t VALUES (?, ?, ?, ?)",
            ),
        ];
        for (vendor, sql, masked) in cases {
            assert_eq!(mask(vendor, sql), *masked, "{vendor}: {sql}");
        }
    }

    /// Found by the property tests (`tests/db_mask.rs`): `[...]` was kept whole as an
    /// identifier, so PostgreSQL arrays and subscripts kept their literals.
    #[test]
    fn literals_in_brackets_are_masked() {
        assert_eq!(
            mask(
                "postgres",
                "SELECT * FROM t WHERE tags && ARRAY['secret', 'x'] AND v[42] = 1"
            ),
            "SELECT * FROM t WHERE tags && ARRAY[?, ?] AND v[?] = ?"
        );
        assert_eq!(
            mask("sqlite", "SELECT [order details].[unit price] FROM [t]"),
            "SELECT [order details].[unit price] FROM [t]"
        );
    }

    /// SQLite takes a double-quoted text that names no column for a string literal, so
    /// `WHERE email = "ann@example.com"` runs there, and was kept as an identifier.
    #[test]
    fn sqlite_double_quoted_strings_are_masked_plain_names_kept() {
        let sql = "SELECT \"id\", \"user\".\"créé_le\" FROM \"user\" WHERE email = \
                   \"ann@example.com\" AND note = \"two words\" AND n = \"42\" AND \"a$b\" = 1";
        assert_eq!(
            mask("sqlite", sql),
            "SELECT \"id\", \"user\".\"créé_le\" FROM \"user\" WHERE email = ? AND note = ? \
             AND n = ? AND \"a$b\" = ?"
        );
        // Elsewhere double quotes only ever make identifiers: kept as written.
        assert!(mask("postgres", sql).contains("\"two words\""));
        // A vendor is known in any case.
        assert_eq!(mask("SQLite", sql), mask("sqlite", sql));
        assert_eq!(mask("MySQL", "SELECT \"x\""), "SELECT ?");
    }

    /// Found by the property tests (`tests/db_mask.rs`): an unterminated quoted identifier
    /// kept the rest of the statement, literals and all.
    #[test]
    fn an_unterminated_identifier_masks_the_rest() {
        assert_eq!(
            mask(
                "postgres",
                "SELECT \"name FROM t WHERE pw = 'secret' AND n = 42"
            ),
            "SELECT ?"
        );
        assert_eq!(
            mask("mysql", "SELECT `name FROM t WHERE pw = 'secret'"),
            "SELECT ?"
        );
        assert_eq!(
            mask("postgres", "SELECT \"a\"\"b\" FROM t"),
            "SELECT \"a\"\"b\" FROM t"
        );
    }

    #[test]
    fn events_keep_the_masked_statement_up_to_the_limit() {
        // The limit is global: not while other tests capture events with statements.
        let _serial = profilis_core::testing::lock();
        let sql = "SELECT * FROM users WHERE email = 'ada@example.com'";
        assert_eq!(
            for_event("postgres", sql).as_deref(),
            Some("SELECT * FROM users WHERE email = ?")
        );
        set_statement_limit(12);
        let cut = for_event("postgres", sql).unwrap();
        set_statement_limit(0);
        let none = for_event("postgres", sql);
        set_statement_limit(DEFAULT_STATEMENT_LIMIT);
        assert_eq!(cut, "SELECT * …");
        assert!(cut.len() <= 12);
        assert_eq!(none, None);
    }

    #[test]
    fn statements_are_cut_at_the_limit_on_a_character_boundary() {
        let mut s = "SELECT ééé".to_string();
        truncate(&mut s, 10, false);
        assert!(s.len() <= 10, "{s}");
        assert!(s.ends_with('…'), "{s}");
        assert!(s.starts_with("SELECT"), "{s}");
        let mut short = "SELECT 1".to_string();
        truncate(&mut short, 100, false);
        assert_eq!(short, "SELECT 1");
        let mut cut_short = "SELECT 1".to_string();
        truncate(&mut cut_short, 100, true);
        assert_eq!(cut_short, "SELECT 1…");
    }

    #[test]
    fn long_statements_are_masked_only_in_part_and_marked_as_cut() {
        // The limit is global: not while other tests capture events with statements.
        let _serial = profilis_core::testing::lock();
        let row = "('secret', 12345), ";
        let bulk = format!(
            "INSERT INTO t (a, b) VALUES {}('secret', 1)",
            row.repeat(50_000)
        );
        let list = format!(
            "SELECT a FROM t WHERE id IN ({}1) AND b = 2",
            "1, ".repeat(10_000)
        );
        set_statement_limit(64);
        // 4 KiB of the bulk insert are masked; its start is kept, marked as cut.
        let event = for_event("postgres", &bulk).unwrap();
        // A long IN list shrinks below the limit, but the statement was cut: still marked.
        let shrunk = for_event("postgres", &list).unwrap();
        set_statement_limit(DEFAULT_STATEMENT_LIMIT);
        assert!(event.starts_with("INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"));
        assert!(event.len() <= 64 && event.ends_with('…'), "{event}");
        assert!(
            !event.contains("secret") && !event.contains("123"),
            "{event}"
        );
        assert!(
            shrunk.starts_with("SELECT a FROM t WHERE id IN ("),
            "{shrunk}"
        );
        assert!(shrunk.len() <= 64 && shrunk.ends_with('…'), "{shrunk}");
        // The list (30 KB) is within what the default limit masks: it shrinks, nothing is cut.
        assert_eq!(
            for_event("postgres", &list).unwrap(),
            "SELECT a FROM t WHERE id IN (?) AND b = ?"
        );
        // Cut inside a string, the rest of it is still masked.
        let open = format!("SELECT '{}'", "secret ".repeat(20_000));
        let masked = for_event("postgres", &open).unwrap();
        assert_eq!(masked, "SELECT ?…");
    }
}
