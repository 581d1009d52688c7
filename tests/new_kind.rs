//! A kind of call profilis does not know, added the way ARCHITECTURE.md says ("Adding a kind"):
//! one `static` description and an adapter, here a message-queue consumer defined in this test
//! alone. With no other edit, its calls are counted, timed in buckets of its own, exported on
//! `/metrics` under its metric names and labels, and written as events with its JSON kind and
//! fields.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use profilis::adapter::{Abandon, RecordOnce, Timer};
use profilis::{ConsoleSink, Detail, Exporter, Kind, Metric, Outcome, Site, Value};

/// The description: names, help texts, label, JSON kind and event fields.
static MESSAGE: Kind = Kind::new(
    "message",
    "MSG",
    "queue",
    Metric {
        name: "app_messages_total",
        help: "Messages handled",
    },
    Metric {
        name: "app_message_duration_seconds",
        help: "Message handling duration",
    },
)
.with_errors(Metric {
    name: "app_message_errors_total",
    help: "Messages whose handling failed",
})
.with_event_fields(&["queue", "message_id"]);

/// What the adapter adds to an event: the message's id.
#[derive(Debug)]
struct MessageDetail {
    id: u64,
}

impl Detail for MessageDetail {
    fn field(&self, key: &str) -> Option<Value<'_>> {
        (key == "message_id").then_some(Value::U64(self.id))
    }
}

/// The adapter: one message handled, kept in a `RecordOnce` so that a panic is recorded too.
struct Handling {
    site: &'static Site,
    timer: Timer,
    id: u64,
}

impl Handling {
    fn finish(self, error: bool, outcome: Outcome) {
        let id = self.id;
        self.timer
            .finish(self.site, true, error, outcome, || MessageDetail { id });
    }
}

impl Abandon for Handling {
    fn abandon(self, outcome: Outcome) {
        self.finish(true, outcome);
    }
}

fn consume(queue: &str, id: u64, handle: impl FnOnce() -> Result<(), String>) {
    let site = Site::interned(&MESSAGE, queue, &[]);
    let mut call =
        RecordOnce::maybe(Timer::start_sampled(site).map(|timer| Handling { site, timer, id }));
    let result = call.run(handle);
    if let Some(handling) = call.take() {
        handling.finish(result.is_err(), Outcome::Returned);
    }
}

/// A writer whose bytes the test reads back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_kind_described_outside_profilis_is_counted_exported_and_written() {
    let out = Shared::default();
    let guard = Exporter::new()
        .without_listener()
        .service("shop")
        .instance("host")
        .worker("1")
        .kind_buckets(&MESSAGE, &[0.001, 0.1])
        .unwrap()
        .flush_interval(Duration::from_millis(5))
        .enabled(true)
        .console(ConsoleSink::to_writer(out.clone()))
        .install()
        .unwrap();
    consume("orders", 7, || Ok(()));
    consume("orders", 8, || Err("malformed".to_owned()));
    consume("refunds", 9, || {
        std::thread::sleep(Duration::from_millis(2));
        Ok(())
    });
    let panicked = std::panic::catch_unwind(|| consume("orders", 10, || panic!("poison message")));
    assert!(panicked.is_err());
    // Shutting down drains every call into the recorder and the console sink.
    let report = guard.shutdown();
    assert!(report.is_clean(), "{report}");
    let text = profilis::render().unwrap();

    let labels =
        |queue: &str| format!("service=\"shop\",instance=\"host\",worker=\"1\",queue=\"{queue}\"");
    assert!(
        text.contains(&format!("app_messages_total{{{}}} 3", labels("orders"))),
        "{text}"
    );
    assert!(text.contains(&format!(
        "app_message_errors_total{{{}}} 2",
        labels("orders")
    )));
    assert!(text.contains("# HELP app_messages_total Messages handled"));
    // Its own buckets: 0.001 and 0.1 seconds, then +Inf.
    let refunds = labels("refunds");
    assert!(
        text.contains(&format!(
            "app_message_duration_seconds_bucket{{{refunds},le=\"0.001\"}} 0"
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        "app_message_duration_seconds_bucket{{{refunds},le=\"0.1\"}} 1"
    )));
    assert!(text.contains(&format!(
        "app_message_duration_seconds_bucket{{{refunds},le=\"+Inf\"}} 1"
    )));

    let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let events: Vec<serde_json::Value> = written
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{written}");
    let poisoned = events.iter().find(|e| e["message_id"] == 10).unwrap();
    assert_eq!(poisoned["kind"], "MSG");
    assert_eq!(poisoned["queue"], "orders");
    assert_eq!(poisoned["error"], true);
    assert_eq!(poisoned["outcome"], "panicked");
    let malformed = events.iter().find(|e| e["message_id"] == 8).unwrap();
    assert_eq!(
        (malformed["error"].as_bool(), malformed.get("outcome")),
        (Some(true), None)
    );
    assert!(
        events.iter().all(|e| e.get("fn").is_none()),
        "no function: {written}"
    );
}
