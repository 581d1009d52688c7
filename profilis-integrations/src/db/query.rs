//! One query being timed: [`Query`], the building block of every DB adapter, and the
//! [`Statement`] it owns so that a query dropped before its end is still recorded with its SQL.

use std::cell::{Cell, OnceCell};
use std::sync::Arc;

use profilis_core::adapter::{Abandon, RecordOnce, Timer};
use profilis_core::context::SpanContext;
use profilis_core::{Failure, Outcome, Site};

use super::detail::DbDetail;
use super::mask::{dialect, for_event, mask};
use super::site::site;

/// Where a query's SQL comes from, for its event (masked there, and only if a sink wants
/// events): the text itself (`&str`, `String`), something that learns it while the query
/// runs, or `()` for drivers that give it only when the query ends ([`Query::finish`]).
pub trait Statement {
    /// The SQL as sent, if it is known by now.
    fn sql(&self) -> Option<&str>;
}

impl Statement for () {
    fn sql(&self) -> Option<&str> {
        None
    }
}

impl Statement for &str {
    fn sql(&self) -> Option<&str> {
        Some(self)
    }
}

impl Statement for String {
    fn sql(&self) -> Option<&str> {
        Some(self)
    }
}

/// A query being timed, with its vendor's site and its statement.
#[derive(Debug)]
pub(crate) struct QueryCall<S> {
    site: &'static Site,
    /// The dialect the statement is masked in: the vendor's as given, whatever its label.
    dialect: &'static str,
    timer: Timer,
    statement: S,
}

impl<S: Statement> QueryCall<S> {
    /// Starts a query of `vendor` now. `None` when profiling is off or no collector runs.
    pub(crate) fn start(vendor: &str, statement: S) -> Option<QueryCall<S>> {
        let site = site(vendor);
        let timer = Timer::start_sampled(site)?;
        Some(QueryCall {
            site,
            dialect: dialect(vendor),
            timer,
            statement,
        })
    }

    /// A query of `vendor` measured elsewhere: it took `duration` and ended now. `None` when
    /// profiling is off or no collector runs.
    pub(crate) fn measured(
        vendor: &str,
        statement: S,
        duration: std::time::Duration,
    ) -> Option<QueryCall<S>> {
        let site = site(vendor);
        let timer = Timer::measured_sampled(site, duration)?;
        Some(QueryCall {
            site,
            dialect: dialect(vendor),
            timer,
            statement,
        })
    }

    pub(crate) fn context(&self) -> SpanContext {
        self.timer.context()
    }

    /// The statement it was started with, as far as it is known by now.
    #[cfg(feature = "sqlx")]
    pub(crate) fn statement(&self) -> Option<&str> {
        self.statement.sql()
    }

    /// Records the query as ended now, with the statement `given` if there is one, else its
    /// own; `given` is called only if a sink wants the event. A `failure` makes it a failed
    /// query whatever `error` says; it is called only if an output wants it, and the
    /// statement quoted in its message, whole or in part, is masked there too ([`scrub`]).
    pub(crate) fn record<T: AsRef<str>>(
        self,
        given: impl FnOnce() -> Option<T>,
        error: bool,
        failure: Option<impl FnOnce() -> Failure>,
        rows: Option<u64>,
        outcome: Outcome,
    ) {
        let QueryCall {
            site,
            dialect,
            timer,
            statement,
        } = self;
        // The statement, asked for once whether the detail or the failure wants it first.
        let given = Cell::new(Some(given));
        let given_sql = OnceCell::new();
        let sql = || {
            given_sql
                .get_or_init(|| given.take().and_then(|given| given()))
                .as_ref()
                .map(AsRef::as_ref)
                .or_else(|| statement.sql())
        };
        let detail = || DbDetail {
            query: sql().and_then(|sql| for_event(dialect, sql)).map(Arc::from),
            rows,
        };
        match failure {
            Some(failure) => timer.finish_failed(
                site,
                true,
                outcome,
                || scrub(failure(), dialect, sql()),
                detail,
            ),
            None => timer.finish(site, true, error, outcome, detail),
        }
    }
}

/// `failure` with `sql` masked where its message quotes it: whole, or in part, as rusqlite's
/// errors do (`no such column: x in INSERT ... at offset 31`): of a batch only the statement
/// that failed, and of a long statement what fits before the message is cut. A quoted part is
/// found by a run of at least [`MIN_QUOTED`] bytes the message and the statement share, taken
/// as long as the statement allows (where it appears more than once, at the place it goes on
/// longest: statements of a batch that begin alike), and masked as SQL of `dialect`. A shorter
/// fragment (`near "x": syntax error`) stays as the client wrote it, and so does a name the
/// message mentions (`relation "missing_table" does not exist`): it masks to itself.
fn scrub(mut failure: Failure, dialect: &str, sql: Option<&str>) -> Failure {
    if let (Some(message), Some(sql)) = (failure.exception_value.as_mut(), sql) {
        if sql.is_empty() {
            return failure;
        }
        if message.contains(sql) {
            *message = message.replace(sql, &mask(dialect, sql));
        } else if let Some(scrubbed) = mask_quoted_parts(message, dialect, sql) {
            *message = scrubbed;
        }
    }
    failure
}

/// The shortest run of a statement that [`scrub`] takes for a quote of it.
const MIN_QUOTED: usize = 8;

/// The most bytes of a statement [`scrub`] looks for quoted parts in: the work on the querying
/// thread stays bounded for a statement of megabytes.
const QUOTED_SEARCHED: usize = 64 * 1024;

/// `message` with each run of at least [`MIN_QUOTED`] bytes that is also in `sql` masked as
/// SQL of `dialect` (the whitespace around it kept); `None` when there is none.
fn mask_quoted_parts(message: &str, dialect: &str, sql: &str) -> Option<String> {
    let mut end = sql.len().min(QUOTED_SEARCHED);
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    let sql = &sql[..end];
    if message.len() < MIN_QUOTED || sql.len() < MIN_QUOTED {
        return None;
    }
    let runs = Runs::of(sql.as_bytes());
    let mut out = String::with_capacity(message.len());
    let mut found = false;
    let mut at = 0;
    while at < message.len() {
        let rest = &message[at..];
        let quoted = rest
            .get(..MIN_QUOTED)
            .filter(|probe| runs.may_hold(probe.as_bytes()))
            .and_then(|probe| longest_shared(rest, sql, probe));
        match quoted {
            Some(len) => {
                let run = &rest[..len];
                let body = run.trim();
                let lead = run.len() - run.trim_start().len();
                out.push_str(&run[..lead]);
                out.push_str(&mask(dialect, body));
                out.push_str(&run[lead + body.len()..]);
                at += len;
                found = true;
            }
            None => {
                let step = rest.chars().next().map_or(1, char::len_utf8);
                out.push_str(&rest[..step]);
                at += step;
            }
        }
    }
    found.then_some(out)
}

/// How far `rest` (which starts with `probe`) goes on as `sql` does, at the place in `sql`
/// where `probe` appears that goes on longest (cut to a character boundary of `rest`).
fn longest_shared(rest: &str, sql: &str, probe: &str) -> Option<usize> {
    let shared = sql
        .match_indices(probe)
        .map(|(start, _)| {
            rest.bytes()
                .zip(sql[start..].bytes())
                .take_while(|(a, b)| a == b)
                .count()
        })
        .max()?;
    let mut len = shared;
    while !rest.is_char_boundary(len) {
        len -= 1;
    }
    Some(len)
}

/// The runs of [`MIN_QUOTED`] bytes of a statement, noted in a bit set by a hash of their
/// bytes (about 16 bits a run, at most 128 KiB): a run of a message not in it is not in the
/// statement, so most are not looked for there.
struct Runs {
    bits: Vec<u64>,
    shift: u32,
}

impl Runs {
    fn of(sql: &[u8]) -> Runs {
        let bits = ((sql.len().saturating_sub(MIN_QUOTED) + 1) * 16)
            .next_power_of_two()
            .clamp(1 << 10, 1 << 20);
        let mut runs = Runs {
            bits: vec![0; bits / 64],
            shift: 64 - bits.trailing_zeros(),
        };
        for run in sql.windows(MIN_QUOTED) {
            let slot = runs.slot(run);
            runs.bits[slot / 64] |= 1 << (slot % 64);
        }
        runs
    }

    fn slot(&self, run: &[u8]) -> usize {
        let value = u64::from_le_bytes(run[..MIN_QUOTED].try_into().unwrap_or([0; 8]));
        (value.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    /// Whether `run` may be one of the statement's (it is not if this says no).
    fn may_hold(&self, run: &[u8]) -> bool {
        let slot = self.slot(run);
        self.bits[slot / 64] & (1 << (slot % 64)) != 0
    }
}

/// Records a query measured elsewhere (the counterpart of Python profilis's `emit_db`): a
/// query of `vendor` running `statement` (masked for the event, as every query's) that took
/// `duration` and ended now; `rows` returned or affected, if known; `failure` if it failed
/// (its message masked where it quotes the statement). Sampled at the vendor's rate and
/// recorded exactly as a query an adapter timed, a child of this thread's current span. Does
/// nothing when profiling is off or no collector runs.
///
/// ```
/// use std::time::Duration;
/// use profilis::db;
///
/// db::record_measured("redis", Some("GET session:?"), Duration::from_micros(350), Some(1), None);
/// ```
pub fn record_measured(
    vendor: &str,
    statement: Option<&str>,
    duration: std::time::Duration,
    rows: Option<u64>,
    failure: Option<Failure>,
) {
    let Some(call) = QueryCall::measured(vendor, (), duration) else {
        return;
    };
    let failed = failure.is_some();
    let failure = failure.map(|failure| move || failure);
    call.record(|| statement, failed, failure, rows, Outcome::Returned);
}

/// The `failure` of [`QueryCall::record`] when there is none to give.
pub(crate) const NO_FAILURE: Option<fn() -> Failure> = None;

impl<S: Statement> Abandon for QueryCall<S> {
    /// A query that did not end is a failed one, whether it panicked (also by a panic
    /// unwinding past it) or was cancelled.
    fn abandon(self, outcome: Outcome) {
        self.record(
            || None::<&str>,
            true,
            NO_FAILURE,
            None,
            outcome.or_unwinding(),
        );
    }
}

/// One query being timed, for adapters: started with [`Query::start`] (the statement given at
/// the end) or [`Query::start_with`] (the statement given now), recorded once by
/// [`Query::finish`]. Dropped unfinished (the query panicked, or its future was dropped), it is
/// recorded as failed, with its statement, and with outcome `Panicked` if the thread is
/// panicking or the query's work was running ([`Query::run`]), `Cancelled` otherwise.
#[derive(Debug)]
#[must_use = "a query is recorded when finished"]
pub struct Query<S: Statement = ()> {
    call: RecordOnce<QueryCall<S>>,
}

impl Query {
    /// Starts timing a query of `vendor` (`sqlite`, `postgres`, `mysql`, ...) now, whose
    /// statement is given when it finishes. `None` when profiling is off or no collector runs.
    pub fn start(vendor: &str) -> Option<Query> {
        Query::start_with(vendor, ())
    }
}

impl<S: Statement> Query<S> {
    /// Starts timing a query of `vendor` now, running `statement`. `None` when profiling is
    /// off or no collector runs.
    pub fn start_with(vendor: &str, statement: S) -> Option<Query<S>> {
        QueryCall::start(vendor, statement).map(|call| Query {
            call: RecordOnce::new(call),
        })
    }

    /// The query's span; make it current while the query runs so that profiled calls inside
    /// are its children. For a query not sampled in, the span that was current when it
    /// started.
    pub fn context(&self) -> SpanContext {
        self.call.get().map(QueryCall::context).unwrap_or_default()
    }

    /// The vendor's label (`db_vendor`): the vendor given when the query started, or
    /// [`OTHER_VENDOR`](crate::db::OTHER_VENDOR) for one that gets no label of its own.
    pub fn vendor(&self) -> &'static str {
        self.call.get().map_or("", |call| call.site.label())
    }

    /// Runs `work` (the query itself, or one poll of its future) as part of the query: if it
    /// panics, the query is recorded as panicked when dropped, even after the panic was
    /// caught (a panic handler that drops the future later, say).
    pub fn run<T>(&mut self, work: impl FnOnce() -> T) -> T {
        self.call.run(work)
    }

    /// Records the query as ended now: `error` whether it failed, `rows` the rows affected or
    /// returned if the driver reports them. `statement` is its SQL as sent (masked and cut
    /// here, and only if a sink wants events) if known only now; `None` keeps the statement it
    /// started with.
    pub fn finish(self, statement: Option<&str>, error: bool, rows: Option<u64>) {
        self.finish_with(|| statement, error, rows);
    }

    /// Like [`Query::finish`], for drivers whose statement text costs something to get (it
    /// is formatted, say): `statement` is called only if a sink wants the event.
    pub fn finish_with<T: AsRef<str>>(
        mut self,
        statement: impl FnOnce() -> Option<T>,
        error: bool,
        rows: Option<u64>,
    ) {
        if let Some(call) = self.call.take() {
            call.record(statement, error, NO_FAILURE, rows, Outcome::Returned);
        }
    }

    /// Records the query as failed now, with why: `failure` names the client's error type and
    /// carries its message ([`Failure::new`]), and is called only if an output wants it (an
    /// event sink, the dashboard), so a successful query pays nothing for it and a failed one
    /// formats its message only then. `statement` as for [`Query::finish`].
    ///
    /// ```
    /// use profilis::Failure;
    /// use profilis::db::Query;
    ///
    /// # fn run() -> Result<u64, std::io::Error> { Err(std::io::Error::other("timed out")) }
    /// if let Some(query) = Query::start_with("redis", "GET session") {
    ///     match run() {
    ///         Ok(rows) => query.finish(None, false, Some(rows)),
    ///         Err(err) => query.finish_failed(None, || Failure::new("std::io::Error", Some(&err))),
    ///     }
    /// }
    /// ```
    pub fn finish_failed(self, statement: Option<&str>, failure: impl FnOnce() -> Failure) {
        self.finish_failed_with(|| statement, failure);
    }

    /// Like [`Query::finish_failed`], with the statement given as in [`Query::finish_with`].
    pub fn finish_failed_with<T: AsRef<str>>(
        mut self,
        statement: impl FnOnce() -> Option<T>,
        failure: impl FnOnce() -> Failure,
    ) {
        if let Some(call) = self.call.take() {
            call.record(statement, true, Some(failure), None, Outcome::Returned);
        }
    }

    /// Forgets the query without recording it.
    #[cfg(feature = "rusqlite")]
    pub(crate) fn discard(mut self) {
        let _ = self.call.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use profilis_core::testing::capture;
    use profilis_core::Event;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// `message` of a failed `sql` as `scrub` leaves it.
    fn scrubbed(dialect: &str, sql: &str, message: &str) -> String {
        let failure = Failure::new("db::Error", Some(&message));
        scrub(failure, dialect, Some(sql)).exception_value.unwrap()
    }

    /// Found by reviews: names the message mentions were masked with the rest of it, words
    /// were joined, and runs that began like an earlier statement kept the literal after.
    #[test]
    fn quoted_parts_are_masked_in_place_and_the_rest_kept() {
        // A table's name is no literal (PostgreSQL's message, as sqlx gives it).
        let missing = "error returned from database: relation \"missing_table\" does not exist";
        assert_eq!(
            scrubbed("postgres", "SELECT * FROM missing_table", missing),
            missing
        );
        // The whitespace around a quote stays.
        assert_eq!(
            scrubbed(
                "sqlite",
                "SELECT a FROM t WHERE x = 'secret' UNION SELECT b FROM u",
                "no such column: a in SELECT a FROM t WHERE x = 'secret' UNION SELECT b FRO"
            ),
            "no such column: a in SELECT a FROM t WHERE x = ? UNION SELECT b FRO"
        );
        // Statements that begin alike: the one quoted is the one that goes on longest.
        let batch = "INSERT INTO u VALUES ('a@x.org'); INSERT INTO u VALUES ('ann@example.com') \
                     RETURNING nope";
        assert_eq!(
            scrubbed(
                "sqlite",
                batch,
                "no such column: nope in INSERT INTO u VALUES ('ann@example.com') RETURNING \
                 nope at offset 3"
            ),
            "no such column: nope in INSERT INTO u VALUES (?) RETURNING nope at offset 3"
        );
    }

    fn detail(event: &Event) -> &DbDetail {
        event.detail::<DbDetail>().expect("a DB detail")
    }

    #[test]
    fn a_query_is_recorded_once_with_the_statement_it_owns() {
        let ((), captured) = capture(|| {
            let query = Query::start_with("query-test-owned", "SELECT 1").unwrap();
            assert_eq!(query.vendor(), "query-test-owned");
            query.finish(None, false, Some(1));
            // Dropped between two pieces of work: cancelled, with its statement.
            let mut cancelled = Query::start_with("query-test-owned", "SELECT 'x'").unwrap();
            cancelled.run(|| ());
            drop(cancelled);
            // Its work panicked, and it was dropped after the panic was caught.
            let mut panicked = Query::start_with(
                "query-test-owned",
                String::from("DELETE FROM t WHERE k = 7"),
            )
            .unwrap();
            let caught = catch_unwind(AssertUnwindSafe(|| panicked.run(|| panic!("driver bug"))));
            assert!(caught.is_err());
            drop(panicked);
            // The statement given at the end, when the query was started without one.
            Query::start("query-test-owned").unwrap().finish(
                Some("UPDATE t SET a = 'b'"),
                true,
                None,
            );
            Query::start("query-test-owned")
                .unwrap()
                .finish(None, false, None);
        });
        let events = captured.named("query-test-owned");
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                let d = detail(e);
                (d.query.as_deref(), d.rows, e.error, e.outcome)
            })
            .collect();
        assert_eq!(
            seen,
            [
                (Some("SELECT ?"), Some(1), false, Outcome::Returned),
                (Some("SELECT ?"), None, true, Outcome::Cancelled),
                (
                    Some("DELETE FROM t WHERE k = ?"),
                    None,
                    true,
                    Outcome::Panicked
                ),
                (Some("UPDATE t SET a = ?"), None, true, Outcome::Returned),
                (None, None, false, Outcome::Returned),
            ]
        );
        assert_eq!(captured.count("query-test-owned"), (5, 3));
        assert!(events
            .iter()
            .all(|e| e.site.label_value("db_vendor") == Some("query-test-owned")));
    }

    #[test]
    fn a_failed_query_carries_its_failure_only_when_given_one() {
        let ((), captured) = capture(|| {
            Query::start_with("query-test-failed", "SELECT * FROM gone")
                .unwrap()
                .finish_failed(None, || {
                    Failure::new("client::Error", Some(&"no such table: gone"))
                });
            Query::start("query-test-failed")
                .unwrap()
                .finish_failed_with(
                    || Some(String::from("DELETE FROM t WHERE k = 'x'")),
                    || Failure::new("client::Error", None),
                );
            // An error flag alone: failed, with no reason to give.
            Query::start("query-test-failed")
                .unwrap()
                .finish(None, true, None);
        });
        let seen: Vec<_> = captured
            .named("query-test-failed")
            .iter()
            .map(|e| {
                (
                    detail(e).query.as_deref().map(str::to_owned),
                    e.error,
                    e.failure.as_deref().cloned(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    Some("SELECT * FROM gone".to_owned()),
                    true,
                    Some(Failure::new("client::Error", Some(&"no such table: gone")))
                ),
                (
                    Some("DELETE FROM t WHERE k = ?".to_owned()),
                    true,
                    Some(Failure::new("client::Error", None))
                ),
                (None, true, None),
            ]
        );
        assert_eq!(captured.count("query-test-failed"), (3, 3));
    }

    #[test]
    fn a_statement_quoted_whole_in_the_message_is_masked_there() {
        let sql = "SELEC * FROM users WHERE email = 'ann@example.com'";
        let ((), captured) = capture(|| {
            Query::start_with("query-test-scrub", sql)
                .unwrap()
                .finish_failed(None, || {
                    Failure::new("client::Error", Some(&format!("syntax error in {sql}")))
                });
            // Given at the end, as diesel gives it.
            Query::start("query-test-scrub")
                .unwrap()
                .finish_failed(Some(sql), || {
                    Failure::new("client::Error", Some(&format!("{sql}: failed")))
                });
            // A fragment is not the statement: kept as the client wrote it.
            Query::start_with("query-test-scrub", sql)
                .unwrap()
                .finish_failed(None, || {
                    Failure::new("client::Error", Some(&"near \"SELEC\""))
                });
        });
        let messages: Vec<_> = captured
            .named("query-test-scrub")
            .iter()
            .map(|e| {
                e.failure
                    .as_deref()
                    .unwrap()
                    .exception_value
                    .clone()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            messages,
            [
                "syntax error in SELEC * FROM users WHERE email = ?",
                "SELEC * FROM users WHERE email = ?: failed",
                "near \"SELEC\"",
            ]
        );
    }

    /// rusqlite's errors quote the statement they could not prepare ("no such column: x in
    /// INSERT ... at offset 31"): a long one is cut with the message, and of a batch only the
    /// statement that failed is quoted. Neither was the statement whole, so the literals were
    /// kept in `exception_value`.
    #[test]
    fn a_statement_quoted_in_part_in_the_message_is_masked_there() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE users (email TEXT, note TEXT)")
            .unwrap();
        let long = format!(
            "INSERT INTO users (email, note) VALUES ('ann@example.com', '{}') RETURNING nope",
            "card 4111 1111 ".repeat(40)
        );
        let batch = "INSERT INTO users VALUES ('bob@example.com', 'ok'); \
                     DELETE FROM users WHERE email = 'bob@example.com' RETURNING nope";
        // Statements that begin alike: the quote of the one that failed is masked in context.
        let alike = "INSERT INTO users VALUES ('a@x.org', '1'); \
                     INSERT INTO users VALUES ('b@x.org', '2'); \
                     INSERT INTO users VALUES ('ann@example.com', '3') RETURNING nope";
        let ((), captured) = capture(|| {
            let cut = crate::db::query("query-test-quoted-part", &long, || conn.execute(&long, []));
            assert!(cut.is_err());
            let tail = crate::db::query("query-test-quoted-part", batch, || {
                conn.execute_batch(batch)
            });
            assert!(tail.is_err());
            let third = crate::db::query("query-test-quoted-part", alike, || {
                conn.execute_batch(alike)
            });
            assert!(third.is_err());
        });
        let messages: Vec<_> = captured
            .named("query-test-quoted-part")
            .iter()
            .map(|e| {
                let failure = e.failure.as_deref().expect("a failure");
                failure.exception_value.clone().expect("a message")
            })
            .collect();
        assert_eq!(messages.len(), 3);
        for message in &messages {
            assert!(
                !message.contains("example.com") && !message.contains("4111"),
                "a literal kept: {message}"
            );
        }
        assert!(
            messages[0].starts_with(
                "no such column: nope in INSERT INTO users (email, note) VALUES (?, ?"
            ),
            "{}",
            messages[0]
        );
        assert!(messages[0].ends_with('…'), "{}", messages[0]);
        assert!(
            messages[1].contains("DELETE FROM users WHERE email = ? RETURNING nope at offset 6"),
            "{}",
            messages[1]
        );
        assert!(
            messages[2].contains(" INSERT INTO users VALUES (?, ?) RETURNING nope at offset 6"),
            "{}",
            messages[2]
        );
    }

    #[cfg(feature = "rusqlite")]
    #[test]
    fn a_discarded_query_is_not_recorded() {
        let ((), captured) = capture(|| {
            Query::start("query-test-discarded").unwrap().discard();
            Query::start("query-test-discarded")
                .unwrap()
                .finish(None, false, None);
        });
        assert_eq!(captured.count("query-test-discarded"), (1, 0));
    }
}
