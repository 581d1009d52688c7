//! The allow-list and bearer token from `PROFILIS_ALLOW` and `PROFILIS_BEARER_TOKEN` (read by
//! the exporter the kit installs). A file of its own: it sets the process's environment.

mod common;

use common::{start, TURN};
use profilis_exporter_kit::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_and_token_come_from_the_environment() {
    let _turn = TURN.lock().await;

    std::env::set_var("PROFILIS_ALLOW", "10.0.0.0/33");
    let error = start(&[]).await.err().expect("a bad allow-list refused");
    std::env::remove_var("PROFILIS_ALLOW");
    assert!(
        matches!(error, Error::Exporter(profilis_exporters::Error::Config(_))),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("PROFILIS_ALLOW") && message.contains("10.0.0.0/33"),
        "{message}"
    );

    // Only 127.0.0.2 let in: a client from 127.0.0.1 gets 403, and the token is asked for.
    std::env::set_var("PROFILIS_ALLOW", "127.0.0.2");
    std::env::set_var("PROFILIS_BEARER_TOKEN", "s3cret");
    let started = start(&[]).await;
    std::env::remove_var("PROFILIS_ALLOW");
    std::env::remove_var("PROFILIS_BEARER_TOKEN");
    let running = started.expect("started");
    let addr = running.local_addr();
    let statuses = tokio::task::spawn_blocking(move || {
        let refused = profilis_test_support::get(addr, "/metrics", &[]).status;
        let from = |token: Option<&str>| {
            use std::io::{Read, Write};
            let mut stream = profilis_test_support::connect_from(
                "127.0.0.2".parse().unwrap(),
                addr,
                std::time::Duration::from_secs(5),
            )
            .expect("connected from 127.0.0.2");
            let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
            write!(
                stream,
                "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
            )
            .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer[9..12].to_owned()
        };
        (refused, from(None), from(Some("s3cret")))
    })
    .await
    .unwrap();
    assert_eq!(statuses, (403, "401".to_owned(), "200".to_owned()));
    running.shutdown().await;
}
