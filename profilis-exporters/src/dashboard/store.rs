//! What the dashboard remembers: per site (kind and name) a slot per second for the last
//! minute and a slot per minute for the last quarter of an hour, the last errors, and the
//! slowest calls of each minute. Bounded whatever the traffic: fixed rings per site, a site
//! idle for 15 minutes is dropped, 500 errors, 100 slow calls a minute.

use std::collections::{HashMap, VecDeque};

use profilis_core::{Batch, CallCount, Event, Kind, Latency, Stats, HTTP};

/// Second slots: the 60 whole seconds of the sparkline, the current one, and room to spare.
const SECOND_SLOTS: u64 = 64;
/// Minute slots: the current minute and the 15 before it.
const MINUTE_SLOTS: u64 = 16;
/// Errors kept, newest last.
pub(crate) const KEPT_ERRORS: usize = 500;
/// Slowest calls kept per minute.
pub(crate) const SLOWEST_PER_MINUTE: usize = 100;
/// A site with no call for this long is forgotten.
pub(crate) const IDLE_LIMIT_MS: u64 = 15 * 60 * 1000;
/// Points of a sparkline: calls per second of the last 60 whole seconds.
pub(crate) const SPARK_POINTS: usize = 60;
/// A stamp no slot ever holds.
const EMPTY: u64 = u64::MAX;

/// What one site did in one second or one minute.
#[derive(Clone)]
struct Slot {
    /// The second or minute (since the Unix epoch) the slot holds; `EMPTY` when none.
    stamp: u64,
    calls: u64,
    errors: u64,
    /// Calls per HTTP status (or any site label `status`), in order of first sight.
    statuses: Vec<(&'static str, u64)>,
    latency: Latency,
}

impl Slot {
    fn empty() -> Slot {
        Slot {
            stamp: EMPTY,
            calls: 0,
            errors: 0,
            statuses: Vec::new(),
            latency: Latency::default(),
        }
    }

    /// The slot, emptied first if it held an older second or minute.
    fn at(&mut self, stamp: u64) -> &mut Slot {
        if self.stamp != stamp {
            self.stamp = stamp;
            self.calls = 0;
            self.errors = 0;
            self.statuses.clear();
            self.latency = Latency::default();
        }
        self
    }

    fn add(&mut self, count: &CallCount, status: Option<&'static str>) {
        self.calls += count.calls;
        self.errors += count.errors;
        if let Some(status) = status {
            add_status(&mut self.statuses, status, count.calls);
        }
        if let Some(latency) = &count.latency {
            self.latency.add(latency);
        }
    }
}

fn add_status(statuses: &mut Vec<(&'static str, u64)>, status: &'static str, calls: u64) {
    match statuses.iter_mut().find(|(s, _)| *s == status) {
        Some((_, n)) => *n += calls,
        None => statuses.push((status, calls)),
    }
}

/// One row of the dashboard: a site's kind and name (a function, a route, a vendor).
struct Series {
    kind: &'static Kind,
    name: &'static str,
    seconds: Vec<Slot>,
    minutes: Vec<Slot>,
    last_seen_ms: u64,
}

impl Series {
    fn new(kind: &'static Kind, name: &'static str) -> Series {
        Series {
            kind,
            name,
            seconds: vec![Slot::empty(); SECOND_SLOTS as usize],
            minutes: vec![Slot::empty(); MINUTE_SLOTS as usize],
            last_seen_ms: 0,
        }
    }

    fn second(&self, second: u64) -> Option<&Slot> {
        let slot = &self.seconds[(second % SECOND_SLOTS) as usize];
        (slot.stamp == second).then_some(slot)
    }

    fn minute(&self, minute: u64) -> Option<&Slot> {
        let slot = &self.minutes[(minute % MINUTE_SLOTS) as usize];
        (slot.stamp == minute).then_some(slot)
    }
}

/// A slow call, with the second its batch arrived in (which window it belongs to).
#[derive(Clone)]
struct SlowCall {
    second: u64,
    event: Event,
}

/// The slowest calls of one minute, slowest first.
#[derive(Clone)]
struct SlowMinute {
    stamp: u64,
    calls: Vec<SlowCall>,
}

/// A dashboard window: the last 1, 5 or 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// The last 60 seconds, from second slots.
    OneMinute,
    /// The last 5 minutes, from minute slots.
    FiveMinutes,
    /// The last 15 minutes, from minute slots.
    FifteenMinutes,
}

impl Window {
    /// The windows there are, shortest first.
    pub const ALL: [Window; 3] = [
        Window::OneMinute,
        Window::FiveMinutes,
        Window::FifteenMinutes,
    ];

    /// Its length in seconds: 60, 300 or 900.
    pub fn seconds(self) -> u64 {
        match self {
            Window::OneMinute => 60,
            Window::FiveMinutes => 300,
            Window::FifteenMinutes => 900,
        }
    }

    /// The window of `seconds` (60, 300 or 900), if there is one.
    pub fn from_seconds(seconds: u64) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.seconds() == seconds)
    }
}

/// Calls, errors and durations added up over a window.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) latency: Latency,
}

/// One row of a summary.
pub(crate) struct RowSummary {
    pub(crate) kind: &'static Kind,
    pub(crate) name: &'static str,
    pub(crate) tally: Tally,
    /// `Some` for HTTP rows: calls per status over the window.
    pub(crate) statuses: Option<Vec<(&'static str, u64)>>,
    pub(crate) spark: [u64; SPARK_POINTS],
}

/// Everything `/metrics.json` shows, added up under the lock and written out after it.
pub(crate) struct Summary {
    pub(crate) now_ms: u64,
    pub(crate) window: Window,
    /// Milliseconds of data the window covers.
    pub(crate) covered_ms: u64,
    pub(crate) totals: Tally,
    pub(crate) spark: [u64; SPARK_POINTS],
    pub(crate) rows: Vec<RowSummary>,
    pub(crate) stats: Stats,
}

/// The dashboard's memory. Times are wall-clock milliseconds since the Unix epoch, given by
/// the caller: when a batch arrived, when a summary is asked for.
pub(crate) struct Store {
    started_ms: u64,
    series: HashMap<(&'static Kind, &'static str), Series>,
    errors: VecDeque<Event>,
    errors_total: u64,
    slowest: Vec<SlowMinute>,
    stats: Stats,
    /// The second of the last sweep of idle sites.
    swept: u64,
}

impl Store {
    /// An empty store whose data starts at `now_ms`.
    pub(crate) fn new(now_ms: u64) -> Store {
        Store {
            started_ms: now_ms,
            series: HashMap::new(),
            errors: VecDeque::new(),
            errors_total: 0,
            slowest: vec![
                SlowMinute {
                    stamp: EMPTY,
                    calls: Vec::new(),
                };
                MINUTE_SLOTS as usize
            ],
            stats: Stats::default(),
            swept: 0,
        }
    }

    /// Files a batch that arrived at `now_ms`.
    pub(crate) fn ingest(&mut self, now_ms: u64, batch: &Batch<'_>) {
        let second = now_ms / 1000;
        let minute = second / 60;
        // Batches filed with earlier times (a replay) cover the time since the first of them.
        self.started_ms = self.started_ms.min(now_ms);
        self.stats = batch.stats;
        for count in batch.counts {
            // Nothing new (a count may carry only the durations of calls counted in the
            // previous batch).
            if count.calls == 0
                && count.errors == 0
                && count.durations.iter().all(|b| b.count == 0)
                && count.latency.as_ref().is_none_or(|l| l.count() == 0)
            {
                continue;
            }
            let site = count.site;
            let series = self
                .series
                .entry((site.kind(), site.label()))
                .or_insert_with(|| Series::new(site.kind(), site.label()));
            series.last_seen_ms = now_ms;
            let status = site.label_value("status");
            series.seconds[(second % SECOND_SLOTS) as usize]
                .at(second)
                .add(count, status);
            series.minutes[(minute % MINUTE_SLOTS) as usize]
                .at(minute)
                .add(count, status);
        }
        self.errors_total += batch.errors.len() as u64;
        let newest = &batch.errors[batch.errors.len().saturating_sub(KEPT_ERRORS)..];
        let room = KEPT_ERRORS - newest.len();
        while self.errors.len() > room {
            self.errors.pop_front();
        }
        self.errors.extend(newest.iter().cloned());
        if !batch.slow.is_empty() {
            self.keep_slowest(second, batch.slow);
        }
        if second != self.swept {
            self.swept = second;
            self.series
                .retain(|_, s| now_ms.saturating_sub(s.last_seen_ms) <= IDLE_LIMIT_MS);
        }
    }

    fn keep_slowest(&mut self, second: u64, slow: &[Event]) {
        let minute = second / 60;
        let slot = &mut self.slowest[(minute % MINUTE_SLOTS) as usize];
        if slot.stamp != minute {
            slot.stamp = minute;
            slot.calls.clear();
        }
        for event in slow {
            let full = slot.calls.len() >= SLOWEST_PER_MINUTE;
            if full
                && slot
                    .calls
                    .last()
                    .is_some_and(|c| c.event.dur_ns >= event.dur_ns)
            {
                continue;
            }
            let at = slot
                .calls
                .partition_point(|c| c.event.dur_ns >= event.dur_ns);
            slot.calls.insert(
                at,
                SlowCall {
                    second,
                    event: event.clone(),
                },
            );
            slot.calls.truncate(SLOWEST_PER_MINUTE);
        }
    }

    /// The slots of `window` at `now_ms`: seconds or minutes, and where their data starts.
    fn span(&self, now_ms: u64, window: Window) -> Span {
        let second = now_ms / 1000;
        let minute = second / 60;
        let (first, last, start_ms) = match window {
            Window::OneMinute => {
                let first = second.saturating_sub(SPARK_POINTS as u64 - 1);
                (first, second, first * 1000)
            }
            _ => {
                // The current minute so far and the whole minutes before it: at most the
                // window's length, never more.
                let first = minute.saturating_sub(window.seconds() / 60 - 1);
                (first, minute, first * 60_000)
            }
        };
        let covered_ms = now_ms.saturating_sub(start_ms.max(self.started_ms));
        Span {
            by_second: window == Window::OneMinute,
            first,
            last,
            covered_ms,
        }
    }

    /// What `/metrics.json` shows for `window` at `now_ms`.
    pub(crate) fn summary(&self, now_ms: u64, window: Window) -> Summary {
        let span = self.span(now_ms, window);
        let second = now_ms / 1000;
        let spark_first = second.saturating_sub(SPARK_POINTS as u64);
        let mut totals = Tally::default();
        let mut spark = [0; SPARK_POINTS];
        let mut rows = Vec::with_capacity(self.series.len());
        let mut all_latencies = Vec::with_capacity(self.series.len());
        for series in self.series.values() {
            if now_ms.saturating_sub(series.last_seen_ms) > IDLE_LIMIT_MS {
                continue;
            }
            let http = std::ptr::eq(series.kind, &HTTP);
            let mut tally = Tally::default();
            let mut statuses = http.then(Vec::new);
            let mut latencies = Vec::with_capacity(SPARK_POINTS);
            for stamp in span.first..=span.last {
                let slot = if span.by_second {
                    series.second(stamp)
                } else {
                    series.minute(stamp)
                };
                let Some(slot) = slot else { continue };
                tally.calls += slot.calls;
                tally.errors += slot.errors;
                latencies.push(&slot.latency);
                if let Some(statuses) = &mut statuses {
                    for &(status, n) in &slot.statuses {
                        add_status(statuses, status, n);
                    }
                }
            }
            tally.latency = Latency::sum(latencies);
            let mut row_spark = [0; SPARK_POINTS];
            for (i, point) in row_spark.iter_mut().enumerate() {
                if let Some(slot) = series.second(spark_first + i as u64) {
                    *point = slot.calls;
                    spark[i] += slot.calls;
                }
            }
            if let Some(statuses) = &mut statuses {
                statuses.sort_unstable();
            }
            totals.calls += tally.calls;
            totals.errors += tally.errors;
            rows.push(RowSummary {
                kind: series.kind,
                name: series.name,
                tally,
                statuses,
                spark: row_spark,
            });
        }
        all_latencies.extend(rows.iter().map(|r| &r.tally.latency));
        totals.latency = Latency::sum(all_latencies);
        rows.sort_unstable_by(|a, b| (a.kind.name(), a.name).cmp(&(b.kind.name(), b.name)));
        Summary {
            now_ms,
            window,
            covered_ms: span.covered_ms,
            totals,
            spark,
            rows,
            stats: self.stats,
        }
    }

    /// The errors kept (newest first, at most `limit`) and how many there were in all.
    pub(crate) fn errors(&self, limit: usize) -> (u64, usize, Vec<Event>) {
        let newest = self.errors.iter().rev().take(limit).cloned().collect();
        (self.errors_total, self.errors.len(), newest)
    }

    /// The slowest calls of `window` at `now_ms`, slowest first, at most `limit`.
    pub(crate) fn slowest(&self, now_ms: u64, window: Window, limit: usize) -> Vec<Event> {
        let second = now_ms / 1000;
        let span = self.span(now_ms, window);
        let (first_minute, first_second) = if span.by_second {
            (span.first / 60, span.first)
        } else {
            (span.first, span.first * 60)
        };
        let mut calls: Vec<&SlowCall> = (first_minute..=second / 60)
            .filter_map(|minute| {
                let slot = &self.slowest[(minute % MINUTE_SLOTS) as usize];
                (slot.stamp == minute).then_some(&slot.calls)
            })
            .flatten()
            .filter(|call| call.second >= first_second && call.second <= second)
            .collect();
        calls.sort_by_key(|c| std::cmp::Reverse(c.event.dur_ns));
        calls
            .into_iter()
            .take(limit)
            .map(|c| c.event.clone())
            .collect()
    }

    /// Sites remembered now (idle ones included until they are swept).
    #[cfg(test)]
    pub(crate) fn sites(&self) -> usize {
        self.series.len()
    }
}

struct Span {
    by_second: bool,
    first: u64,
    last: u64,
    covered_ms: u64,
}
