//! Property tests of statement masking (`db::mask`, `db::for_event`), the step between a
//! statement (user data in its literals) and an event: it never panics, whatever the text;
//! no literal gets through, in any dialect, whatever shape the statement has; and the kept
//! statement is never longer than the statement limit.
//!
//! Statements are built from pieces (keywords, identifiers, operators, comments and literals)
//! whose identifiers have no digits and no `qz`; every literal has `qz` or digits in it, so a
//! masked statement with either let a literal through.

use std::sync::{Mutex, MutexGuard};

use profilis_integrations::db::{
    for_event, mask, set_statement_limit, statement_limit, DEFAULT_STATEMENT_LIMIT,
};
use proptest::prelude::*;

const VENDORS: [&str; 5] = ["postgres", "sqlite", "mysql", "mariadb", "mssql"];

fn is_mysql(vendor: &str) -> bool {
    matches!(vendor, "mysql" | "mariadb")
}

/// A literal, written for the vendor at hand when it is rendered.
#[derive(Debug, Clone)]
enum Literal {
    /// `'...'`, with an optional prefix (`N`, `E`), quotes escaped by doubling or, where the
    /// dialect allows, by a backslash.
    Str {
        content: String,
        prefix: &'static str,
        backslash_quotes: bool,
    },
    /// `"..."`: a string for MySQL and MariaDB (for the others an identifier, so written as
    /// `'...'` there).
    DoubleQuoted(String),
    /// `$tag$...$tag$` for PostgreSQL (`'...'` for the others).
    Dollar { tag: String, content: String },
    /// A number, hex or bit string: its text as written.
    Number(String),
}

impl Literal {
    fn render(&self, vendor: &str) -> String {
        let postgres = vendor == "postgres";
        match self {
            Literal::Str {
                content,
                prefix,
                backslash_quotes,
            } => {
                // `E'..'` (either case) is PostgreSQL's, where a backslash escapes.
                let e = prefix.eq_ignore_ascii_case("E");
                let prefix = if e && !postgres { "" } else { prefix };
                let backslash = is_mysql(vendor) || (e && postgres);
                quoted(content, '\'', prefix, backslash, *backslash_quotes)
            }
            Literal::DoubleQuoted(content) if is_mysql(vendor) => {
                quoted(content, '"', "", true, false)
            }
            Literal::DoubleQuoted(content) => quoted(content, '\'', "", is_mysql(vendor), false),
            Literal::Dollar { tag, content } if postgres => format!("${tag}${content}${tag}$"),
            Literal::Dollar { content, .. } => quoted(content, '\'', "", is_mysql(vendor), false),
            Literal::Number(text) => text.clone(),
        }
    }
}

/// `content` between `quote`s, escaped as the dialect reads it: the quote doubled (or
/// backslashed, when `backslash` escapes and `backslash_quotes`), and a backslash doubled
/// where it escapes.
fn quoted(
    content: &str,
    quote: char,
    prefix: &str,
    backslash: bool,
    backslash_quotes: bool,
) -> String {
    let mut out = format!("{prefix}{quote}");
    for c in content.chars() {
        if c == quote {
            if backslash && backslash_quotes {
                out.push('\\');
            } else {
                out.push(quote);
            }
        } else if c == '\\' && backslash {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(quote);
    out
}

/// Text with a secret (`qz...`) among characters that mean something elsewhere in SQL.
fn secret_text(noise: &'static str) -> impl Strategy<Value = String> {
    (noise, "qz[A-Za-z0-9]{3,6}", noise).prop_map(|(a, secret, b)| format!("{a}{secret}{b}"))
}

/// Noise inside strings: quotes, backslashes, comment and dollar starts, `#`, brackets,
/// multi-byte characters, digits.
const STRING_NOISE: &str = "[a-z0-9 '\"\\\\$#;*/\\-\\[\\]`é€😀\n]{0,8}";

fn number() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "", "-", "+"]),
        prop_oneof![
            "[1-9][0-9]{5,11}",
            "[1-9][0-9]{0,6}\\.[0-9]{1,6}",
            "[1-9][0-9]{0,3}(\\.[0-9]{1,4})?[eE][+-]?[0-9]{1,3}",
            "\\.[0-9]{1,8}",
            "0x[0-9A-F]{6,10}",
        ],
    )
        .prop_map(|(sign, n)| format!("{sign}{n}"))
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        4 => (
            secret_text(STRING_NOISE),
            prop::sample::select(vec!["", "", "N", "n", "E", "e"]),
            any::<bool>(),
        )
            .prop_map(|(content, prefix, backslash_quotes)| Literal::Str {
                content,
                prefix,
                backslash_quotes,
            }),
        1 => secret_text(STRING_NOISE).prop_map(Literal::DoubleQuoted),
        1 => ("([a-z_]{1,3})?", secret_text("[a-z0-9 '\";*/\\-é\n]{0,8}"))
            .prop_map(|(tag, content)| Literal::Dollar { tag, content }),
        4 => number().prop_map(Literal::Number),
        1 => "[xX]'[0-9A-F]{0,4}[0-9][0-9A-F]{0,6}'".prop_map(Literal::Number),
        1 => "[bB]'[01]{1,12}'".prop_map(Literal::Number),
    ]
}

/// Keywords, identifiers (no digits, no `qz`), operators and placeholders.
const WORDS: &[&str] = &[
    "SELECT",
    "*",
    "FROM",
    "users",
    "orders",
    "WHERE",
    "name",
    "email",
    "AND",
    "OR",
    "NOT",
    "=",
    "<>",
    ">=",
    "<",
    "+",
    "-",
    "||",
    "(",
    ")",
    ",",
    "IN",
    "LIKE",
    "IS",
    "NULL",
    "BETWEEN",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "LIMIT",
    "OFFSET",
    "ORDER",
    "BY",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "AS",
    "count(*)",
    "users.name",
    "\"users\"",
    "`users`",
    "[users]",
    "?",
    ":name",
    "@param",
    "::text",
    "->>",
    "JOIN",
    "ON",
    "GROUP",
];

/// A piece of a statement.
#[derive(Debug, Clone)]
enum Piece {
    Word(&'static str),
    Literal(Literal),
    /// `-- ...` (or `# ...` for MySQL and MariaDB) to the end of the line.
    LineComment(String, bool),
    /// `/* ... */`.
    BlockComment(String),
    /// Literals in tight places: `=lit`, `(lit,lit)`, `f(lit)`, `IN (lit, ...)`, and for
    /// PostgreSQL arrays and subscripts.
    Tight(u8, Vec<Literal>),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => prop::sample::select(WORDS).prop_map(Piece::Word),
        4 => literal().prop_map(Piece::Literal),
        1 => (secret_text("[a-z0-9 '\"$;*/é]{0,8}"), any::<bool>())
            .prop_map(|(text, hash)| Piece::LineComment(text, hash)),
        1 => secret_text("[a-z0-9 '\"$;\\-é\n]{0,8}").prop_map(Piece::BlockComment),
        3 => (0u8..6, prop::collection::vec(literal(), 1..6))
            .prop_map(|(shape, lits)| Piece::Tight(shape, lits)),
    ]
}

impl Piece {
    fn render(&self, vendor: &str, out: &mut String) {
        match self {
            Piece::Word(w) => out.push_str(w),
            Piece::Literal(l) => out.push_str(&l.render(vendor)),
            Piece::LineComment(text, hash) => {
                let start = if *hash && is_mysql(vendor) { "#" } else { "--" };
                out.push_str(&format!("{start} {text}\n"));
            }
            Piece::BlockComment(text) => out.push_str(&format!("/* {text} */")),
            Piece::Tight(shape, lits) => {
                let all: Vec<String> = lits.iter().map(|l| l.render(vendor)).collect();
                let first = &all[0];
                let text = match shape {
                    0 => format!("name={first}"),
                    1 => format!("({})", all.join(",")),
                    2 => format!("lower({first})"),
                    3 => format!("IN ({})", all.join(", ")),
                    // PostgreSQL arrays: constructors and subscripts. (Elsewhere `[...]` is
                    // an identifier, SQLite's and SQL Server's.)
                    4 if vendor == "postgres" => format!("ARRAY[{}]", all.join(",")),
                    5 if vendor == "postgres" => format!("tags[{first}]"),
                    _ => format!("({})", all.join(", ")),
                };
                out.push_str(&text);
            }
        }
    }
}

fn statement() -> impl Strategy<Value = (&'static str, String)> {
    (
        prop::sample::select(&VENDORS[..]),
        prop::collection::vec(
            (
                piece(),
                prop::sample::select(vec![" ", " ", "  ", "\n", "\t", "\r\n"]),
            ),
            1..24,
        ),
        any::<bool>(),
    )
        .prop_map(|(vendor, pieces, terminated)| {
            let mut sql = String::new();
            for (piece, space) in &pieces {
                piece.render(vendor, &mut sql);
                sql.push_str(space);
            }
            if terminated {
                sql.push(';');
            }
            (vendor, sql)
        })
}

/// Fails if `masked` has a secret or a digit in it (no identifier of the statements has one).
fn no_literal(vendor: &str, sql: &str, masked: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !masked.contains("qz") && !masked.bytes().any(|b| b.is_ascii_digit()),
        "{}: a literal got through:\n  statement: {:?}\n  masked:    {:?}",
        vendor,
        sql,
        masked
    );
    Ok(())
}

/// The statement limit is global: the tests that set it take turns, and put it back.
static LIMIT: Mutex<()> = Mutex::new(());

struct Limit(#[allow(dead_code)] MutexGuard<'static, ()>);

impl Limit {
    fn set(bytes: usize) -> Limit {
        let guard = LIMIT.lock().unwrap_or_else(|e| e.into_inner());
        set_statement_limit(bytes);
        Limit(guard)
    }
}

impl Drop for Limit {
    fn drop(&mut self) {
        set_statement_limit(DEFAULT_STATEMENT_LIMIT);
    }
}

/// Text with what SQL lexers trip over: quotes, comment starts, dollars, backslashes,
/// brackets, multi-byte characters.
const TRICKY: &str = "[a-zA-Z0-9 '\"`$\\\\/*#\\-;\\[\\]?:@.,()eExX\né€😀\u{0}]{0,200}";

proptest! {
    #[test]
    fn masking_never_panics(
        vendor in prop::sample::select(&VENDORS[..]),
        sql in prop_oneof![any::<String>(), TRICKY],
    ) {
        let _ = mask(vendor, &sql);
        let _ = for_event(vendor, &sql);
    }

    #[test]
    fn no_literal_gets_through((vendor, sql) in statement()) {
        no_literal(vendor, &sql, &mask(vendor, &sql))?;
    }

    #[test]
    fn an_unterminated_identifier_masks_the_rest(
        (vendor, start) in statement(),
        (_, rest) in statement(),
        name in "[a-z ]{0,6}",
    ) {
        // `"` quotes identifiers but in MySQL and MariaDB (strings there), `` ` `` in MySQL.
        let quote = if is_mysql(vendor) { '`' } else { '"' };
        // The rest stays well formed without that quote: it is in no escape.
        let rest = rest.replace(quote, "");
        let sql = format!("{start}{quote}{name}{rest}");
        no_literal(vendor, &sql, &mask(vendor, &sql))?;
    }

    #[test]
    fn the_kept_statement_fits_the_limit_and_keeps_no_literal(
        (vendor, sql, generated) in prop_oneof![
            statement().prop_map(|(vendor, sql)| (vendor, sql, true)),
            (prop::sample::select(&VENDORS[..]), TRICKY).prop_map(|(vendor, sql)| (vendor, sql, false)),
        ],
        limit in prop_oneof![0usize..8, 0usize..200, 0usize..4096, Just(usize::MAX)],
    ) {
        let kept = {
            let _limit = Limit::set(limit);
            prop_assert_eq!(statement_limit(), limit);
            for_event(vendor, &sql)
        };
        let Some(kept) = kept else {
            prop_assert_eq!(limit, 0, "no statement kept under limit {}", limit);
            return Ok(());
        };
        prop_assert!(limit > 0, "a statement kept under limit 0");
        prop_assert!(kept.len() <= limit, "{} bytes kept under limit {}: {:?}", kept.len(), limit, kept);
        let masked = mask(vendor, &sql);
        if sql.len() <= limit.saturating_mul(64) {
            // Masked whole: the masked statement, or its start marked as cut.
            if masked.len() <= limit {
                prop_assert_eq!(&kept, &masked);
            } else if limit >= "…".len() {
                let start = kept.strip_suffix('…');
                prop_assert!(start.is_some_and(|s| masked.starts_with(s)), "{:?} is not a start of {:?}", kept, masked);
            } else {
                prop_assert_eq!(&kept, "");
            }
        } else if limit >= "…".len() {
            prop_assert!(kept.ends_with('…'), "{:?} not marked as cut", kept);
        }
        if generated {
            no_literal(vendor, &sql, &kept)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn huge_in_lists_shrink_and_fit(
        vendor in prop::sample::select(&VENDORS[..]),
        items in prop::collection::vec(
            prop_oneof!["[1-9][0-9]{0,11}(\\.[0-9]{1,3})?", secret_text("[a-z ]{0,4}").prop_map(|s| format!("'{s}'"))],
            1..5_000,
        ),
        limit in prop_oneof![Just(DEFAULT_STATEMENT_LIMIT), 1usize..300],
    ) {
        let sql = format!("SELECT name FROM users WHERE id IN ({}) AND name = :name", items.join(", "));
        let kept = {
            let _limit = Limit::set(limit);
            for_event(vendor, &sql).expect("a limit above 0 keeps a statement")
        };
        prop_assert!(kept.len() <= limit, "{} bytes kept under limit {}", kept.len(), limit);
        no_literal(vendor, &sql, &kept)?;
        let start = "SELECT name FROM users WHERE id IN (";
        if limit > start.len() + "…".len() {
            prop_assert!(kept.starts_with(start), "{:?}", kept);
        }
        let masked = mask(vendor, &sql);
        prop_assert_eq!(masked, "SELECT name FROM users WHERE id IN (?) AND name = :name");
    }
}
