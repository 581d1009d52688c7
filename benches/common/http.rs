//! The minimal axum app of `benches/http_layer.rs` and `benches/http_layer_instructions.rs`, and
//! the requests both send through it, as macros each bench invokes at its root: the app's items
//! in a module of their own, or the request loop in an async fn, changed how the compiler inlines
//! the loop (callgrind: about 25 more instructions per request in `http_layer_instructions` with
//! a module, 17 more in `http_layer` with an async fn). Expanded in the bench, each loop compiles
//! as if written there. Paths are written in full: the invoking file has its own `use` lines.

/// Defines `hello`, `Layered` and `app` where it is invoked.
macro_rules! http_app {
    () => {
        async fn hello() -> &'static str {
            "hello"
        }

        #[derive(Clone, Copy)]
        enum Layered {
            No,
            /// A layer that does nothing: what axum's `Router::layer` itself costs per request.
            PassThrough,
            Profilis,
        }

        /// One route, `/users/{id}`, answering "hello", behind the layer `layered`. Build it after
        /// installing the exporter.
        fn app(layered: Layered) -> axum::Router {
            let app = axum::Router::new().route("/users/{id}", axum::routing::get(hello));
            match layered {
                Layered::No => app,
                Layered::PassThrough => app.layer(tower::layer::layer_fn(|inner| inner)),
                Layered::Profilis => app.layer(profilis::http::tower::ProfilisLayer::new(
                    profilis::http::HttpConfig::new().build(),
                )),
            }
        }
    };
}

/// Sends `$requests` requests for `/users/42` through the router `$app` with
/// `tower::ServiceExt::oneshot`, one after the other, each response body read to its end; in an
/// async context (`benches/http_layer.rs` times it inside its own async block).
macro_rules! send {
    ($app:expr, $requests:expr) => {{
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        for _ in 0..$requests {
            let request = axum::http::Request::get("/users/42")
                .body(axum::body::Body::empty())
                .unwrap();
            let response = $app.clone().oneshot(request).await.unwrap();
            let body = response.into_body().collect().await.unwrap();
            std::hint::black_box(body);
        }
    }};
}
