//! An application crate, as far as profilis can tell: it calls `profilis::build_info!()`, which
//! must publish this crate's name and version (`build-info-app`, `3.1.4-rc.2`), not profilis's.
//! Not published; its test is `tests/build_info.rs`.

/// Publishes this application's build info, as an application would at start-up.
///
/// # Errors
/// None in practice: `build_info!()` with its default name cannot fail.
pub fn publish_build_info() -> Result<(), profilis::MetricError> {
    profilis::build_info!()
}

/// Publishes it under this application's own namespace, `build_info_app_build_info`.
///
/// # Errors
/// None in practice: the namespace is a valid metric name.
pub fn publish_namespaced_build_info() -> Result<(), profilis::MetricError> {
    profilis::build_info!("build_info_app")
}
