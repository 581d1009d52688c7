//! An axum app profiled by profilis: every request lands in `profilis_http_requests_total` and
//! `profilis_http_request_duration_seconds`, labelled by route template, served on `/metrics`
//! both by the built-in listener and by the app's own router.
//!
//! ```sh
//! cargo run --release --features axum --example axum_app
//! curl http://127.0.0.1:3000/users/42; curl http://127.0.0.1:3000/metrics
//! ```
//!
//! Options: `--addr HOST:PORT` (default `127.0.0.1:3000`); `--no-layer` leaves requests
//! unprofiled, `--pass-through-layer` wraps the routes in a layer that does nothing instead
//! (the baselines of `benches/http_load.sh`: the app is otherwise the same, exporter
//! included). The built-in listener's address comes from `PROFILIS_LISTEN` (default
//! `127.0.0.1:9464`). Runs until Ctrl-C.

use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use profilis::http::axum::metrics_router;
use profilis::http::tower::ProfilisLayer;
use profilis::http::HttpConfig;
use profilis::profiled;

#[profiled]
async fn load_user(id: u64) -> Result<String, String> {
    if id == 0 {
        return Err("no user 0".into());
    }
    Ok(format!("user {id}\n"))
}

async fn user(Path(id): Path<u64>) -> Result<String, StatusCode> {
    load_user(id).await.map_err(|_| StatusCode::NOT_FOUND)
}

async fn fail() -> (StatusCode, &'static str) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "this route always fails\n",
    )
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(250)).await;
    "slow\n"
}

async fn hello() -> &'static str {
    "hello\n"
}

/// What wraps the routes.
#[derive(Clone, Copy)]
enum Layer {
    Profilis,
    /// A layer that does nothing: what any layer costs in axum.
    PassThrough,
    None,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr = "127.0.0.1:3000".to_owned();
    let mut layer = Layer::Profilis;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-layer" => layer = Layer::None,
            "--pass-through-layer" => layer = Layer::PassThrough,
            "--addr" => addr = args.next().ok_or("--addr needs HOST:PORT")?,
            other => {
                return Err(format!(
                    "unknown argument {other:?}: expected --addr HOST:PORT, --no-layer or \
                     --pass-through-layer"
                )
                .into())
            }
        }
    }

    let profilis = profilis::install_exporter()?;

    let mut app = Router::new()
        .route("/", get(hello))
        .route("/users/{id}", get(user))
        .route("/fail", get(fail))
        .route("/slow", get(slow))
        // Before the layer, so that requests matching no route are recorded (`<unmatched>`).
        .fallback(|| async { StatusCode::NOT_FOUND });
    match layer {
        Layer::Profilis => {
            let rules = HttpConfig::new().exclude_routes(&["/favicon.ico"])?.build();
            app = app.layer(ProfilisLayer::new(rules));
        }
        Layer::PassThrough => app = app.layer(tower::layer::layer_fn(|inner| inner)),
        Layer::None => {}
    }
    // Merged after the layer, so scrapes are not profiled themselves.
    let app = app.merge(metrics_router());

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    println!(
        "axum app on http://{local} ({})",
        match layer {
            Layer::Profilis => "profiling on",
            Layer::PassThrough => "profiling off, a pass-through layer",
            Layer::None => "profiling off",
        }
    );
    for path in ["/", "/users/42", "/fail", "/slow", "/metrics"] {
        println!("  http://{local}{path}");
    }
    if let Some(metrics) = profilis.listen_addr() {
        println!("built-in listener: http://{metrics}/metrics");
    }
    println!("Ctrl-C to stop");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // Dropping `profilis` flushes what is still queued.
    Ok(())
}
