//! The `db_vendor` label is bounded whatever the application passes as a vendor: text that is
//! not a vendor's name (a statement given for the vendor, arguments swapped) and vendors past
//! the cap share one label value, so no query adds series without end or puts its literals in
//! a label. A process of its own: the cap is process-wide.

use profilis_core::testing::capture;
use profilis_integrations::db::{self, DbDetail, MAX_VENDORS, OTHER_VENDOR};

/// The vendors of the sites of the queries `f` records, in order.
fn vendors(f: impl FnOnce()) -> Vec<String> {
    let ((), captured) = capture(f);
    captured
        .events
        .iter()
        .filter(|e| e.detail::<DbDetail>().is_some())
        .map(|e| e.site.label().to_owned())
        .collect()
}

#[test]
fn text_that_is_not_a_vendor_and_vendors_past_the_cap_share_one_label() {
    let sql = "SELECT * FROM users WHERE email = 'ann@example.com'";
    // The statement given as the vendor, and the vendor as the statement: compiles.
    let seen = vendors(|| {
        let _ = db::query(sql, "postgres", || Ok::<_, String>(()));
        db::record_measured(
            "Postgres SQL",
            Some("SELECT 1"),
            std::time::Duration::from_millis(1),
            None,
            None,
        );
        db::record_measured("", None, std::time::Duration::from_millis(1), None, None);
        let _ = db::query("postgres", sql, || Ok::<_, String>(()));
        // A vendor's name in capitals is a name: kept as given.
        let _ = db::query("PostgreSQL", sql, || Ok::<_, String>(()));
    });
    assert_eq!(
        seen,
        [
            OTHER_VENDOR,
            OTHER_VENDOR,
            OTHER_VENDOR,
            "postgres",
            "PostgreSQL"
        ]
    );
    assert!(
        std::ptr::eq(db::site(sql), db::site("")),
        "one site for all"
    );

    // Vendors of a name's shape each get their label up to the cap, then share the other one.
    let names: Vec<String> = (0..MAX_VENDORS + 10)
        .map(|i| format!("vendor-{i}"))
        .collect();
    let seen = vendors(|| {
        for name in &names {
            let _ = db::query(name, "SELECT 1", || Ok::<_, String>(()));
        }
        // Those already labelled keep their label after the cap is reached.
        let _ = db::query("postgres", "SELECT 1", || Ok::<_, String>(()));
        let _ = db::query("vendor-0", "SELECT 1", || Ok::<_, String>(()));
    });
    let labelled = seen.iter().filter(|v| v.starts_with("vendor-")).count();
    // `postgres` and `PostgreSQL` took two places of the cap above.
    assert_eq!(labelled, MAX_VENDORS - 2 + 1, "{seen:?}");
    assert_eq!(
        seen.iter().filter(|v| *v == OTHER_VENDOR).count(),
        names.len() - (MAX_VENDORS - 2),
        "{seen:?}"
    );
    assert_eq!(&seen[seen.len() - 2..], ["postgres", "vendor-0"]);

    // A vendor past the cap keeps its dialect: MySQL's double-quoted strings are masked.
    let ((), captured) = capture(|| {
        let _ = db::query(
            "mysql",
            "SELECT \"ann@example.com\"",
            || Ok::<_, String>(()),
        );
    });
    let queries: Vec<_> = captured
        .events
        .iter()
        .filter_map(|e| Some((e.site.label(), e.detail::<DbDetail>()?.query.clone()?)))
        .collect();
    assert_eq!(queries.len(), 1, "{queries:?}");
    assert_eq!(queries[0].0, OTHER_VENDOR, "{queries:?}");
    assert_eq!(&*queries[0].1, "SELECT ?", "{queries:?}");
}
