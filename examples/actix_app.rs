//! An actix-web service profiled by the `Profilis` middleware: a route with a path parameter,
//! one that fails, one that is slow and one that streams, with `/metrics` served both by the
//! built-in listener and by the application itself.
//!
//! `cargo run --example actix_app --features actix`, then `curl` the printed URLs. Ctrl-C
//! stops it; dropping the exporter guard flushes every queued event first.
//! `APP_LISTEN=127.0.0.1:8081` moves the application, `PROFILIS_LISTEN` the built-in listener.

use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use profilis::http::actix::{metrics_service, Profilis};
use profilis::http::HttpConfig;
use profilis::profiled;

/// A profiled lookup: its calls become children of the request that made them.
#[profiled]
fn find_user(id: u64) -> Result<String, String> {
    if id == 0 {
        Err("no user 0".into())
    } else {
        Ok(format!("user {id}"))
    }
}

async fn user(id: web::Path<u64>) -> HttpResponse {
    match find_user(*id) {
        Ok(name) => HttpResponse::Ok().body(name),
        Err(e) => HttpResponse::NotFound().body(e),
    }
}

/// Always fails: recorded with status 500, and always timed (`always_sample_errors`).
async fn fail() -> HttpResponse {
    HttpResponse::InternalServerError().body("the payment service is down\n")
}

async fn slow() -> &'static str {
    actix_web::rt::time::sleep(Duration::from_millis(250)).await;
    "done, slowly\n"
}

/// Returns at once, but the body takes half a second: the recorded duration includes it.
async fn report() -> HttpResponse {
    let lines = futures::stream::unfold(0u32, |line| async move {
        if line == 5 {
            return None;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        let chunk = Bytes::from(format!("line {line}\n"));
        Some((Ok::<_, std::io::Error>(chunk), line + 1))
    });
    HttpResponse::Ok().streaming(lines)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let profilis = profilis::install_exporter()?;
    let rules = HttpConfig::new()
        // Scrapes and health checks are not application traffic.
        .exclude_routes(&["/metrics", "/healthz"])?
        .build();
    let builtin = profilis.listen_addr();
    let listen = std::env::var("APP_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());

    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .wrap(Profilis::new(rules.clone()))
                .route("/users/{id}", web::get().to(user))
                .route("/fail", web::get().to(fail))
                .route("/slow", web::get().to(slow))
                .route("/report", web::get().to(report))
                .route("/healthz", web::get().to(|| async { "ok\n" }))
                .service(metrics_service())
        })
        .bind(&listen)?;
        let app = server.addrs()[0];
        println!("application on http://{app}: /users/42, /fail, /slow, /report (Ctrl-C to stop)");
        println!("metrics on http://{app}/metrics");
        if let Some(addr) = builtin {
            println!("  and on the built-in listener, http://{addr}/metrics");
        }
        // Runs until Ctrl-C (actix stops gracefully on SIGINT and SIGTERM).
        server.run().await
    })?;

    // Dropping the guard flushes what is still queued.
    drop(profilis);
    Ok(())
}
