//! Instructions per request of the minimal axum app of `benches/http_layer.rs`, without a
//! layer, with a pass-through layer and with `ProfilisLayer`, for `valgrind --tool=callgrind`:
//! repeatable on a noisy machine, where wall-clock figures are not.
//!
//! ```sh
//! cargo bench --features axum --bench http_layer_instructions --no-run
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured*' \
//!     target/release/deps/http_layer_instructions-<hash> profilis 10000
//! ```
//!
//! The arguments are the case (`none`, `pass-through`, `profilis`) and the number of requests;
//! only the requests after a warm-up are counted (the `measured` function). Divide the `Ir`
//! total by the number of requests.

use axum::Router;
use profilis::Exporter;

#[macro_use]
mod common {
    #[macro_use]
    pub mod http;
}

// `app`, `Layered` and `send!`: shared with `benches/http_layer.rs`, defined here at the root.
http_app!();

async fn drive(app: &Router, requests: u64) {
    send!(app, requests);
}

#[inline(never)]
fn measured(runtime: &tokio::runtime::Runtime, app: &Router, requests: u64) {
    runtime.block_on(drive(app, requests));
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let case = args.next().unwrap_or_else(|| "profilis".to_owned());
    let requests: u64 = args.next().map_or(10_000, |n| n.parse().expect("a number"));
    let _profilis = Exporter::new()
        .without_listener()
        .install()
        .expect("exporter installs");
    let app = app(match case.as_str() {
        "none" => Layered::No,
        "pass-through" => Layered::PassThrough,
        "profilis" => Layered::Profilis,
        other => panic!("unknown case {other:?}: expected none, pass-through or profilis"),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(drive(&app, 1_000));
    measured(&runtime, &app, requests);
    println!("{case}: {requests} requests");
}
