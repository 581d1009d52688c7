//! `profilis::build_info!()` called in this crate publishes this crate's name and version, taken
//! where the macro is expanded, on the exporter's page.

use profilis_test_support::parse_exposition;

#[test]
fn build_info_names_the_calling_crate_and_its_version() {
    build_info_app::publish_build_info().unwrap();
    build_info_app::publish_namespaced_build_info().unwrap();
    // A bad namespace is a typed error naming it.
    let err = profilis::build_info!("build-info").unwrap_err();
    assert!(
        matches!(&err, profilis::MetricError::MetricName { name, .. } if name == "build-info_build_info"),
        "{err:?}"
    );

    let guard = profilis::Exporter::new()
        .without_listener()
        .process_metrics(false)
        .install()
        .unwrap();
    let text = guard.render();
    assert!(
        text.contains(
            "# TYPE rust_build_info gauge\n\
             rust_build_info{crate=\"build-info-app\",version=\"3.1.4-rc.2\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "build_info_app_build_info{crate=\"build-info-app\",version=\"3.1.4-rc.2\"} 1\n"
        ),
        "{text}"
    );
    let page = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let info: Vec<_> = page.named("rust_build_info").collect();
    assert_eq!(info.len(), 1, "{text}");
    // profilis's own name and version are nowhere in it.
    assert_ne!(info[0].label("crate"), Some("profilis"));
}
