//! The label sets of profilis's series, built in one place for every output: `service`,
//! `instance` and `worker`, then the site's own labels in the order its kind gives them.

/// The labels every profilis series carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalLabels {
    /// `service`: the application.
    pub service: String,
    /// `instance`: the host.
    pub instance: String,
    /// `worker`: the process.
    pub worker: String,
}

/// Whether `value` can be a `service`, `instance` or `worker` label, from code or the
/// environment: not empty nor only whitespace (Prometheus reads an empty label as none, and
/// the series it should tell apart would be one).
pub(crate) fn is_label_value(value: &str) -> bool {
    !value.trim().is_empty()
}

impl GlobalLabels {
    /// `service`, `instance` and `worker`, in contract order.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            ("service", &self.service),
            ("instance", &self.instance),
            ("worker", &self.worker),
        ]
    }

    /// The full label set of a site's series, in contract order: service, instance, worker,
    /// then the site's labels (`function`; or `route`, `status` and `method` if on; or
    /// `db_vendor`).
    pub fn for_site<'a>(
        &'a self,
        site: &'static profilis_core::Site,
    ) -> impl Iterator<Item = (&'static str, &'a str)> + 'a {
        let site_labels = site
            .labels()
            .map(|(key, value)| -> (&'static str, &'a str) { (key, value) });
        self.pairs().into_iter().chain(site_labels)
    }
}
