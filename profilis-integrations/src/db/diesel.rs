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
//! use profilis_integrations::db::diesel::ProfilisInstrumentation;
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
//! appends are dropped, and the rest is [masked](crate::db::mask) like every statement. diesel
//! does not report rows to instrumentation, so events have no `rows`.

use diesel::connection::{Instrumentation, InstrumentationEvent};

use profilis_core::Failure;

use super::Query;

/// The type every diesel query fails with, as users name it.
pub const ERROR_TYPE: &str = "diesel::result::Error";

/// Records the queries of a diesel connection as queries of one vendor.
#[derive(Debug)]
pub struct ProfilisInstrumentation {
    vendor: &'static str,
    /// Queries started and not yet finished, innermost last.
    running: Vec<Query>,
}

impl ProfilisInstrumentation {
    /// Records queries as queries of `vendor` (`sqlite`, `postgres`, `mysql`).
    pub fn new(vendor: &'static str) -> ProfilisInstrumentation {
        ProfilisInstrumentation {
            vendor,
            running: Vec::new(),
        }
    }
}

impl Instrumentation for ProfilisInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => {
                if let Some(query) = Query::start(self.vendor) {
                    self.running.push(query);
                }
            }
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                if let Some(running) = self.running.pop() {
                    let statement = || Some(without_binds(query.to_string()));
                    match error {
                        None => running.finish_with(statement, false, None),
                        Some(err) => running
                            .finish_failed_with(statement, || Failure::new(ERROR_TYPE, Some(err))),
                    }
                }
            }
            _ => {}
        }
    }
}

/// diesel's display of a query ends in ` -- binds: [...]`, the values: cut them off, at the
/// first such mark (a value could contain the mark; cutting more is the safe side).
fn without_binds(mut sql: String) -> String {
    if let Some(at) = sql.find(" -- binds: ") {
        sql.truncate(at);
    }
    sql
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
            without_binds(
                "SELECT `t`.`x` FROM `t` WHERE (`t`.`x` = ?) -- binds: [\"secret\"]".into()
            ),
            "SELECT `t`.`x` FROM `t` WHERE (`t`.`x` = ?)"
        );
        assert_eq!(without_binds("SELECT 1".into()), "SELECT 1");
        assert_eq!(
            without_binds("SELECT ? -- binds: [\"x -- binds: \nsecret\"]".into()),
            "SELECT ?",
            "a value holding the mark is cut off too"
        );
    }
}
