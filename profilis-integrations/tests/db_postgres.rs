//! sqlx's profiled executor against a real PostgreSQL server: a private cluster made with
//! `initdb` in a temporary directory and started with `pg_ctl` on a free loopback port (as the
//! `postgres` user when the tests run as root). Needs PostgreSQL's server programs (Debian
//! `postgresql`, which `.ci/run` installs); without them the test fails under `CI=true` and
//! says it was skipped otherwise.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use profilis::db::sqlx::profiled;
use profilis::db::DbDetail;
use profilis::testing::CaptureSink;
use profilis::{Event, Exporter};
use profilis_test_support::{self as support, sample};

/// The DB part of an event; panics for events of other kinds or without one.
fn db_detail(e: &Event) -> &DbDetail {
    assert_eq!(e.kind(), &profilis::DB, "not a DB event: {e:?}");
    e.detail::<DbDetail>()
        .unwrap_or_else(|| panic!("a DB event without its detail: {e:?}"))
}

/// A PostgreSQL cluster of its own, stopped and removed when dropped.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The directory holding `initdb` and `pg_ctl`: on `PATH`, else Debian's versioned directory.
fn server_bin() -> Option<PathBuf> {
    if let Some(initdb) = support::find_on_path("initdb") {
        return initdb.parent().map(Path::to_path_buf);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    /// A command running one of the server's programs, as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program).args(args).output().expect("runs");
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> Option<Cluster> {
        let Some(bin) = server_bin() else {
            support::missing(
                "PostgreSQL's server (initdb, pg_ctl)",
                "apt-get install postgresql",
            );
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "profilis-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["postgres:", dir.to_str().unwrap()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of {} to postgres", dir.display());
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster {
            bin,
            dir,
            port,
            as_postgres,
        };
        let data = cluster.dir.join("data");
        let data = data.to_str().unwrap();
        cluster.run(
            "initdb",
            &["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            cluster.dir.display()
        );
        let log = cluster.dir.join("server.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                data,
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(cluster)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn sqlx_queries_on_a_real_postgres_server() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let captured = CaptureSink::new();
    let guard = Exporter::new()
        .service("pg-test")
        .listen("127.0.0.1:0")
        .unwrap()
        .flush_interval(Duration::from_millis(10))
        .sink(captured.clone())
        .install()
        .expect("exporter installs");
    let metrics = guard.listen_addr().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let failed = runtime.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&cluster.url())
            .await
            .expect("connects to the test cluster");
        sqlx::query("CREATE TABLE accounts (id SERIAL PRIMARY KEY, owner TEXT NOT NULL)")
            .execute(profiled(&pool))
            .await
            .unwrap();
        let inserted =
            sqlx::query("INSERT INTO accounts (owner) VALUES ('secret-a'), ('secret-b'), ($1)")
                .bind("c")
                .execute(profiled(&pool))
                .await
                .unwrap();
        assert_eq!(inserted.rows_affected(), 3);
        let owners: Vec<(String,)> = sqlx::query_as("SELECT owner FROM accounts ORDER BY id")
            .fetch_all(profiled(&pool))
            .await
            .unwrap();
        assert_eq!(owners.len(), 3);
        let failed = sqlx::query("SELECT * FROM missing_table")
            .fetch_all(profiled(&pool))
            .await;
        let failed = failed.expect_err("no such table").to_string();
        sqlx::query("SELECT pg_sleep(0.05)")
            .execute(profiled(&pool))
            .await
            .unwrap();
        let (one,): (i32,) = sqlx::query_as("SELECT 1")
            .fetch_one(profiled(&pool))
            .await
            .unwrap();
        assert_eq!(one, 1);
        failed
    });

    let counts = |text: &str| {
        let get = |name: &str| sample(text, name, &[("db_vendor", "postgres")]);
        (
            get("profilis_db_queries_total"),
            get("profilis_db_query_errors_total"),
        )
    };
    let text = support::wait_for(Duration::from_secs(10), || {
        let text = support::get(metrics, "/metrics", &[]).text();
        (counts(&text).0 == Some(6.0)).then_some(text)
    })
    .expect("6 postgres queries on /metrics");
    assert_eq!(counts(&text), (Some(6.0), Some(1.0)), "{text}");

    // An event can come a batch after its count: wait for the sixth.
    let mut events: Vec<Event> = Vec::new();
    support::wait_for(Duration::from_secs(10), || {
        let batch = captured.take().events;
        events.extend(batch.into_iter().filter(|e| e.kind() == &profilis::DB));
        (events.len() >= 6).then_some(())
    });
    assert_eq!(events.len(), 6, "{events:#?}");
    for e in &events {
        assert!(
            !db_detail(e)
                .query
                .as_deref()
                .unwrap_or("")
                .contains("secret"),
            "{e:?}"
        );
    }
    let find = |q: &str| {
        events
            .iter()
            .find(|e| db_detail(e).query.as_deref() == Some(q))
            .unwrap_or_else(|| panic!("no event for {q}: {events:#?}"))
    };
    let insert = find("INSERT INTO accounts (owner) VALUES (?), (?), ($1)");
    assert_eq!(db_detail(insert).rows, Some(3), "rows affected");
    assert_eq!(
        db_detail(find("SELECT owner FROM accounts ORDER BY id")).rows,
        Some(3)
    );
    // The failure carries PostgreSQL's message, as sqlx gave it to the caller.
    let missing = find("SELECT * FROM missing_table");
    assert!(missing.error);
    assert!(
        failed.contains("relation \"missing_table\" does not exist"),
        "{failed}"
    );
    let failure = missing
        .failure
        .as_deref()
        .expect("the failure was captured");
    assert_eq!(failure.exception_type.as_deref(), Some("sqlx::Error"));
    assert_eq!(failure.exception_value.as_deref(), Some(failed.as_str()));
    assert_eq!(
        events.iter().filter(|e| e.failure.is_some()).count(),
        1,
        "{events:#?}"
    );
    let slow = find("SELECT pg_sleep(?)").dur_ns;
    let trivial = find("SELECT ?").dur_ns;
    assert!(slow >= 50_000_000, "pg_sleep(0.05) took {slow} ns");
    assert!(slow > trivial, "{slow} ns vs {trivial} ns");
    drop(guard);
}
