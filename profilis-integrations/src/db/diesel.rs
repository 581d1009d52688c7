//! diesel 2.2+: an [`Instrumentation`] that records every query a connection runs, timed from
//! diesel's `StartQuery` event to its `FinishQuery` event and failed when diesel reports an
//! error there, with that error: its event's `exception_type` is [`ERROR_TYPE`] and
//! `exception_value` the error's message (`NOT NULL constraint failed: notes.body`, say).
//!
//! Per connection:
//!
//! ```
//! use diesel::connection::{Connection, SimpleConnection};
//! use diesel::sqlite::SqliteConnection;
//! use profilis::db::diesel::ProfilisInstrumentation;
//!
//! let mut conn = SqliteConnection::establish(":memory:")?;
//! conn.set_instrumentation(ProfilisInstrumentation::new("sqlite"));
//! conn.batch_execute("CREATE TABLE t (x INTEGER)")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Or for every connection established from now on, with [`set_default`] (diesel has one
//! default for all backends, so it takes one vendor).
//!
//! The statement diesel reports is its SQL with `?`/`$n` placeholders; the bind values it
//! appends are not written at all (a bulk insert's would be megabytes), and the rest is
//! [masked](crate::db::mask) like every statement, and written no further than masking reads.
//! A query whose text diesel cannot write (an update that sets nothing, which diesel answers
//! with `EmptyChangeset`) has no statement. diesel does not report rows to instrumentation, so
//! events have no `rows`.
//!
//! On a few error paths diesel reports a query's start and never its end: a bind value that
//! cannot be sent, an `EmptyChangeset` on PostgreSQL, SQL holding a NUL byte. A query of a
//! connection runs inside another only one level deep (PostgreSQL's lookup of a custom type's
//! id, while the query that binds it is being built), so when a query starts while two or more
//! are unfinished, all but the last of those have failed: they are recorded then as failed,
//! their durations running to that moment, with the failure "diesel reported no end of this
//! query". At most one such query per connection waits to be recorded (until two more have
//! started, or the connection is dropped: then as cancelled).

use std::fmt;

use diesel::connection::{Instrumentation, InstrumentationEvent};

use profilis_core::Failure;

use super::mask::{read_budget, statement_limit};
use super::Query;

/// The type every diesel query fails with, as users name it.
pub const ERROR_TYPE: &str = "diesel::result::Error";

/// The failure's message of a query diesel reported no end of (see the module's docs).
const NO_END: &str = "diesel reported no end of this query: it failed before it ran (a bind value it could not send, say)";

/// The most queries of a connection unfinished when another starts that can still end: the
/// one it runs inside (see the module's docs). Any before it have failed.
const MAY_END: usize = 1;

/// Records the queries of a diesel connection as queries of one vendor.
#[derive(Debug)]
pub struct ProfilisInstrumentation {
    vendor: &'static str,
    /// Queries started and not yet finished, innermost last.
    running: Vec<Query>,
}

impl ProfilisInstrumentation {
    /// Records queries as queries of `vendor` (`sqlite`, `postgres`, `mysql`; a name of ASCII
    /// letters, digits, `_`, `-` and `.`, else [`OTHER_VENDOR`](crate::db::OTHER_VENDOR)).
    pub fn new(vendor: &'static str) -> ProfilisInstrumentation {
        ProfilisInstrumentation {
            vendor,
            running: Vec::new(),
        }
    }
}

impl ProfilisInstrumentation {
    /// A query started: the innermost from now on.
    fn started(&mut self) {
        // Of the queries still unfinished, only the last may be one this one runs inside.
        let failed = self.running.len().saturating_sub(MAY_END);
        for abandoned in self.running.drain(..failed) {
            abandoned.finish_failed(None, || Failure::new(ERROR_TYPE, Some(&NO_END)));
        }
        if let Some(query) = Query::start(self.vendor) {
            self.running.push(query);
        }
    }

    /// The innermost query finished, failed with `error` if given.
    fn finished(&mut self, query: &dyn fmt::Display, error: Option<&diesel::result::Error>) {
        if let Some(running) = self.running.pop() {
            let sql = || statement(query);
            match error {
                None => running.finish_with(sql, false, None),
                Some(err) => {
                    running.finish_failed_with(sql, || Failure::new(ERROR_TYPE, Some(err)))
                }
            }
        }
    }
}

impl Instrumentation for ProfilisInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.started(),
            InstrumentationEvent::FinishQuery { query, error, .. } => self.finished(query, error),
            _ => {}
        }
    }
}

/// The SQL of diesel's display of `query`, written up to the mark of its bind values
/// (` -- binds: [...]`) or the most bytes masking reads ([`read_budget`]), whichever comes
/// first: the values are never written, however large. `None` when diesel cannot write the
/// query (its display fails for an update that sets nothing): never a panic in the
/// application's query.
fn statement(query: &dyn fmt::Display) -> Option<String> {
    const BINDS: &str = " -- binds: ";
    /// Keeps what diesel writes until the mark or the budget, then fails the write so that
    /// diesel stops (`stopped` tells that failure from diesel's own).
    struct UpToBinds {
        text: String,
        budget: usize,
        stopped: bool,
    }
    impl fmt::Write for UpToBinds {
        fn write_str(&mut self, piece: &str) -> fmt::Result {
            let searched_from = self.text.len().saturating_sub(BINDS.len() - 1);
            // One more character than the budget at most, so that masking sees the text was
            // cut and marks it so.
            let room = self
                .budget
                .saturating_add(4)
                .saturating_sub(self.text.len());
            let mut take = piece.len().min(room);
            while !piece.is_char_boundary(take) {
                take -= 1;
            }
            self.text.push_str(&piece[..take]);
            // The mark is ASCII: where it is found is a character boundary.
            let found = self.text.as_bytes()[searched_from..]
                .windows(BINDS.len())
                .position(|window| window == BINDS.as_bytes());
            if let Some(at) = found {
                self.text.truncate(searched_from + at);
                self.stopped = true;
                return Err(fmt::Error);
            }
            if take < piece.len() {
                self.stopped = true;
                return Err(fmt::Error);
            }
            Ok(())
        }
    }
    let mut writer = UpToBinds {
        text: String::new(),
        budget: read_budget(statement_limit()),
        stopped: false,
    };
    match fmt::write(&mut writer, format_args!("{query}")) {
        Ok(()) => Some(writer.text),
        Err(_) if writer.stopped => Some(writer.text),
        Err(_) => None,
    }
}

static DEFAULT_VENDOR: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

fn default_instrumentation() -> Option<Box<dyn Instrumentation>> {
    let vendor = DEFAULT_VENDOR.get()?;
    Some(Box::new(ProfilisInstrumentation::new(vendor)))
}

/// Makes every diesel connection established from now on record its queries as queries of
/// `vendor`, through `diesel::connection::set_default_instrumentation`. The vendor is set once
/// per process: a second call with another vendor keeps the first and returns an error naming
/// both. A connection can still get its own instrumentation with `set_instrumentation`.
pub fn set_default(vendor: &'static str) -> Result<(), DefaultError> {
    let set = *DEFAULT_VENDOR.get_or_init(|| vendor);
    if set != vendor {
        return Err(DefaultError::VendorSet {
            set,
            requested: vendor,
        });
    }
    diesel::connection::set_default_instrumentation(default_instrumentation)
        .map_err(|e| DefaultError::Diesel(e.to_string()))
}

/// Why [`set_default`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DefaultError {
    /// The default vendor was already set to another one.
    #[error("diesel's default instrumentation already records vendor `{set}`; cannot switch to `{requested}`")]
    VendorSet {
        /// The vendor set first.
        set: &'static str,
        /// The vendor asked for.
        requested: &'static str,
    },
    /// diesel refused the default instrumentation.
    #[error("diesel refused the default instrumentation: {0}")]
    Diesel(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbDetail;
    use diesel::connection::{Connection, SimpleConnection};
    use diesel::sqlite::SqliteConnection;
    use diesel::RunQueryDsl;
    use profilis_core::testing::capture;

    #[test]
    fn queries_are_recorded_without_their_binds_and_failures_are_errors() {
        let ((), captured) = capture(|| {
            let mut conn = SqliteConnection::establish(":memory:").unwrap();
            conn.set_instrumentation(ProfilisInstrumentation::new("diesel-test"));
            conn.batch_execute("CREATE TABLE notes (body TEXT NOT NULL)")
                .unwrap();
            diesel::sql_query("INSERT INTO notes (body) VALUES (?)")
                .bind::<diesel::sql_types::Text, _>("secret")
                .execute(&mut conn)
                .unwrap();
            assert!(diesel::sql_query("INSERT INTO notes (body) VALUES (NULL)")
                .execute(&mut conn)
                .is_err());
        });
        let seen: Vec<_> = captured
            .named("diesel-test")
            .iter()
            .map(|e| {
                let detail = e.detail::<DbDetail>().unwrap();
                (detail.query.as_deref().unwrap().to_owned(), e.error)
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("CREATE TABLE notes (body TEXT NOT NULL)".to_owned(), false),
                ("INSERT INTO notes (body) VALUES (?)".to_owned(), false),
                ("INSERT INTO notes (body) VALUES (NULL)".to_owned(), true),
            ]
        );
        let failures: Vec<_> = captured
            .named("diesel-test")
            .iter()
            .map(|e| e.failure.as_deref().cloned())
            .collect();
        assert_eq!(
            failures,
            [
                None,
                None,
                Some(Failure::new(
                    ERROR_TYPE,
                    Some(&"NOT NULL constraint failed: notes.body")
                ))
            ]
        );
    }

    #[test]
    fn bind_values_are_cut_off() {
        assert_eq!(
            statement(&"SELECT `t`.`x` FROM `t` WHERE (`t`.`x` = ?) -- binds: [\"secret\"]")
                .as_deref(),
            Some("SELECT `t`.`x` FROM `t` WHERE (`t`.`x` = ?)")
        );
        assert_eq!(statement(&"SELECT 1").as_deref(), Some("SELECT 1"));
        assert_eq!(
            statement(&"SELECT ? -- binds: [\"x -- binds: \nsecret\"]").as_deref(),
            Some("SELECT ?"),
            "a value holding the mark is cut off too"
        );
    }

    /// What diesel's display does: the SQL, the mark, then every bind value.
    struct Displayed<F>(F);
    impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Displayed<F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            (self.0)(f)
        }
    }

    #[test]
    fn the_text_is_written_no_further_than_masking_reads_and_never_panics() {
        // The statement limit is the process's: other tests change it.
        let _serial = profilis_core::testing::lock();
        // The values after the mark are never written, however large (this one panics if it
        // is asked to write).
        let binds = Displayed(|f: &mut fmt::Formatter<'_>| {
            f.write_str("INSERT INTO blobs (b) VALUES (?)")?;
            f.write_str(" -- binds: ")?;
            unreachable!("the bind values were written")
        });
        assert_eq!(
            statement(&binds).as_deref(),
            Some("INSERT INTO blobs (b) VALUES (?)")
        );
        // SQL longer than masking reads is cut just past that, in one piece or many.
        let budget = read_budget(statement_limit());
        let long = "x".repeat(budget * 4);
        let cut = statement(&long).unwrap();
        assert!(
            cut.len() > budget && cut.len() <= budget + 4,
            "{}",
            cut.len()
        );
        let pieces = Displayed(|f: &mut fmt::Formatter<'_>| {
            for _ in 0..budget {
                f.write_str("é")?;
            }
            unreachable!("written past the budget")
        });
        let cut = statement(&pieces).unwrap();
        assert!(
            cut.len() > budget && cut.len() <= budget + 4,
            "{}",
            cut.len()
        );
        // A display that fails (diesel's, for a query it cannot build) is no statement.
        let failing = Displayed(|f: &mut fmt::Formatter<'_>| {
            f.write_str("UPDATE")?;
            Err(fmt::Error)
        });
        assert_eq!(statement(&failing), None);
        // No limit at all: the budget does not overflow (it panicked in a debug build, and
        // cut every statement to 3 bytes in a release one).
        crate::db::mask::set_statement_limit(usize::MAX);
        let whole = statement(&"SELECT 1 -- binds: []");
        crate::db::mask::set_statement_limit(crate::db::mask::DEFAULT_STATEMENT_LIMIT);
        assert_eq!(whole.as_deref(), Some("SELECT 1"));
    }

    /// A query that runs inside another (PostgreSQL's lookup of a custom type, while the query
    /// binding it is built) ends before it, and neither is taken for one diesel reported no
    /// end of; one left below them by an earlier failure is, once they start.
    #[test]
    fn a_query_inside_another_is_not_taken_for_a_failed_one() {
        let ((), captured) = capture(|| {
            let mut conn = ProfilisInstrumentation::new("diesel-nested");
            // An outer query and two lookups inside it, one after the other.
            conn.started();
            conn.started();
            conn.finished(&"SELECT oid FROM pg_type WHERE typname = $1", None);
            conn.started();
            conn.finished(&"SELECT oid FROM pg_type WHERE typname = $1", None);
            conn.finished(&"INSERT INTO t (mood) VALUES ($1)", None);
            assert!(conn.running.is_empty());
            // A query diesel reported no end of, then one with a lookup inside.
            conn.started();
            conn.started();
            conn.started();
            assert_eq!(conn.running.len(), 2, "the first is recorded as failed");
            conn.finished(&"SELECT oid FROM pg_type WHERE typname = $1", None);
            conn.finished(&"UPDATE t SET mood = $1", None);
            assert!(conn.running.is_empty());
        });
        let seen: Vec<_> = captured
            .named("diesel-nested")
            .iter()
            .map(|e| {
                let detail = e.detail::<DbDetail>().unwrap();
                let failure = e.failure.as_deref().and_then(|f| f.exception_value.clone());
                (detail.query.as_deref().map(str::to_owned), e.error, failure)
            })
            .collect();
        let lookup = Some("SELECT oid FROM pg_type WHERE typname = $1".to_owned());
        assert_eq!(
            seen,
            [
                (lookup.clone(), false, None),
                (lookup.clone(), false, None),
                (
                    Some("INSERT INTO t (mood) VALUES ($1)".to_owned()),
                    false,
                    None
                ),
                (None, true, Some(NO_END.to_owned())),
                (lookup, false, None),
                (Some("UPDATE t SET mood = $1".to_owned()), false, None),
            ]
        );
    }

    mod schema {
        diesel::table! {
            notes (id) {
                id -> Integer,
                body -> Nullable<Text>,
            }
        }
    }

    #[derive(diesel::AsChangeset)]
    #[diesel(table_name = schema::notes)]
    struct NoteChanges {
        body: Option<String>,
    }

    /// An update that sets nothing (a PATCH with no fields): diesel answers `EmptyChangeset`,
    /// and cannot write the query's text. The application gets its error, not a panic, and the
    /// query is a failed one without a statement.
    #[test]
    fn an_update_that_sets_nothing_is_an_error_not_a_panic() {
        let (result, captured) = capture(|| {
            let mut conn = SqliteConnection::establish(":memory:").unwrap();
            conn.set_instrumentation(ProfilisInstrumentation::new("diesel-empty"));
            conn.batch_execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
                .unwrap();
            diesel::update(schema::notes::table)
                .set(&NoteChanges { body: None })
                .execute(&mut conn)
        });
        assert!(
            matches!(
                result,
                Err(diesel::result::Error::QueryBuilderError(ref e)) if e.to_string().contains("no changes")
                    || e.to_string().to_lowercase().contains("empty")
            ),
            "{result:?}"
        );
        let events = captured.named("diesel-empty");
        let last = events.last().expect("the update is recorded");
        assert!(last.error);
        assert_eq!(last.detail::<DbDetail>().unwrap().query, None);
        assert_eq!(
            last.failure
                .as_deref()
                .and_then(|f| f.exception_type.as_deref()),
            Some(ERROR_TYPE)
        );
    }

    /// A bind value that cannot be sent: diesel reports the query's start, then fails before
    /// it runs and reports no end. It is recorded as failed when two more queries have
    /// started, so that it is counted then, not left on the connection (10,000 such failures
    /// were 10,000 queries held until the connection was dropped).
    #[test]
    fn a_query_diesel_reports_no_end_of_is_failed_when_the_next_starts() {
        use diesel::serialize::{self, Output, ToSql};
        use diesel::sql_types::Text;
        use diesel::sqlite::Sqlite;

        #[derive(Debug)]
        struct Unsendable;
        impl ToSql<Text, Sqlite> for Unsendable {
            fn to_sql<'b>(&'b self, _: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                Err("cannot send".into())
            }
        }

        let ((), captured) = capture(|| {
            let mut conn = SqliteConnection::establish(":memory:").unwrap();
            conn.set_instrumentation(ProfilisInstrumentation::new("diesel-no-end"));
            conn.batch_execute("CREATE TABLE notes (body TEXT)")
                .unwrap();
            for _ in 0..100 {
                let result = diesel::sql_query("INSERT INTO notes (body) VALUES (?)")
                    .bind::<Text, _>(Unsendable)
                    .execute(&mut conn);
                assert!(result.is_err());
            }
            conn.batch_execute("SELECT 1").unwrap();
            // All but the last were recorded as the queries after them started; the
            // connection, dropped here, held only that one (recorded now, as cancelled).
        });
        let events = captured.named("diesel-no-end");
        let failed: Vec<_> = events.iter().filter(|e| e.error).collect();
        assert_eq!(failed.len(), 100, "{events:?}");
        let (at_drop, before) = failed.split_last().unwrap();
        assert_eq!(at_drop.outcome, profilis_core::Outcome::Cancelled);
        for event in before {
            assert_eq!(event.outcome, profilis_core::Outcome::Returned);
            assert_eq!(
                event
                    .failure
                    .as_deref()
                    .and_then(|f| f.exception_value.as_deref()),
                Some(NO_END)
            );
        }
        assert_eq!(
            events.iter().filter(|e| !e.error).count(),
            2,
            "CREATE TABLE and SELECT 1"
        );
    }
}
