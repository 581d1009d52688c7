//! The dashboard mounted in an axum router and an actix-web app over real loopback HTTP:
//! `503` before the exporter is installed, the page without the token, the JSON with the
//! exporter's token only, `400` on a bad window, real calls listed; `404` once it is off.
//! The mounted `/metrics` beside it asks for the same token, as the listener's does.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use axum::Router;
use profilis::adapter::enter;
use profilis::Site;
use profilis_test_support::{get, wait_for};
use serde_json::Value;

const TOKEN: &str = "mounted-token";
const WAIT: Duration = Duration::from_secs(10);

fn serve_axum(runtime: &tokio::runtime::Runtime) -> SocketAddr {
    let app: Router = Router::new()
        .nest("/profilis/", profilis::http::axum::dashboard_router())
        .merge(profilis::http::axum::metrics_router());
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    })
}

/// An actix `HttpServer` (one worker) on its own thread and system, until the process ends.
fn serve_actix() -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(|| {
                App::new()
                    .service(
                        web::scope("/profilis").service(profilis::http::actix::dashboard_service()),
                    )
                    .service(profilis::http::actix::metrics_service())
            })
            .workers(1)
            .disable_signals()
            .shutdown_timeout(0)
            .bind(("127.0.0.1", 0))
            .expect("binds");
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.expect("server runs");
        });
    });
    rx.recv_timeout(WAIT).expect("server starts")
}

static MOUNTED: Site = Site::function("dashboard_mount::work", None);

#[test]
fn mounted_handlers_answer_like_the_listener_with_the_exporters_token() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let servers = [serve_axum(&runtime), serve_actix()];
    for addr in servers {
        let before = get(addr, "/profilis/metrics.json", &[]);
        assert_eq!(before.status, 503, "{addr}: {}", before.text());
        assert!(before.text().contains("not installed"));
        assert_eq!(get(addr, "/metrics", &[]).status, 503, "{addr}");
    }

    let guard = profilis::Exporter::new()
        .without_listener()
        .dashboard(true)
        .bearer_token(TOKEN)
        .flush_interval(Duration::from_millis(20))
        .install()
        .expect("install");
    for _ in 0..3 {
        enter(&MOUNTED).exit(false);
    }
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    for addr in servers {
        let page = get(addr, "/profilis/", &[]);
        assert_eq!(page.status, 200, "{addr}");
        assert_eq!(
            page.header("content-type"),
            Some(profilis::dashboard::HTML_CONTENT_TYPE)
        );
        assert!(page.text().contains("profilis dashboard"));
        for path in ["metrics.json", "errors.json", "slowest.json"] {
            let path = format!("/profilis/{path}");
            let refused = get(addr, &path, &[]);
            assert_eq!(refused.status, 401, "{addr}{path}");
            assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
            assert_eq!(get(addr, &path, &auth).status, 200, "{addr}{path}");
        }
        let bad = get(addr, "/profilis/metrics.json?window=7", &auth);
        assert_eq!(bad.status, 400, "{addr}");
        assert!(bad.text().contains("\"7\""), "{}", bad.text());
        let row = wait_for(WAIT, || {
            let body = get(addr, "/profilis/metrics.json?window=900", &auth);
            let json: Value = serde_json::from_slice(&body.body).ok()?;
            assert_eq!(json["window_s"], 900);
            json["rows"]
                .as_array()?
                .iter()
                .find(|r| r["name"] == "dashboard_mount::work" && r["calls"] == 3)
                .cloned()
        });
        assert!(row.is_some(), "{addr}: the calls never showed");
        let zipped = get(
            addr,
            "/profilis/errors.json",
            &[auth[0], ("Accept-Encoding", "gzip")],
        );
        assert_eq!(zipped.header("content-encoding"), Some("gzip"), "{addr}");
        // `/metrics` beside it: the same token, or 401 as the listener answers.
        let refused = get(addr, "/metrics", &[]);
        assert_eq!(refused.status, 401, "{addr}: {}", refused.text());
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        assert!(
            !refused.text().contains("dashboard_mount"),
            "{}",
            refused.text()
        );
        let wrong = get(addr, "/metrics", &[("Authorization", "Bearer not-it")]);
        assert_eq!(wrong.status, 401, "{addr}");
        let page = get(addr, "/metrics", &auth);
        assert_eq!(page.status, 200, "{addr}");
        assert!(
            page.text().contains("dashboard_mount::work"),
            "{}",
            page.text()
        );
    }

    drop(guard);
    for addr in servers {
        let off = get(addr, "/profilis/metrics.json", &auth);
        assert_eq!(off.status, 404, "{addr}");
        assert!(off.text().contains("dashboard is off"), "{}", off.text());
        // The page outlives the guard, and so does its token.
        assert_eq!(get(addr, "/metrics", &[]).status, 401, "{addr}");
        assert_eq!(get(addr, "/metrics", &auth).status, 200, "{addr}");
    }
}
