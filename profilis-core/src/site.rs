//! Call sites: what one instrumented function, route or database vendor records under. A
//! function's site is a `static` made by `#[profiled]`; an adapter's sites (a route and status,
//! a vendor) are interned on first use and kept. A site gets a dense id on its first recorded
//! call, which indexes the per-thread counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::kind::{Kind, DB, FUNCTION};
use crate::sampler;

/// A call site: its kind, name, labels and sample rate. Never freed.
#[derive(Debug)]
pub struct Site {
    kind: &'static Kind,
    /// The `fn` of events for a function's site; the label value for an adapter's.
    name: &'static str,
    /// The value of the kind's label ([`Kind::label`]).
    label: &'static str,
    /// Labels after the kind's own, in order (HTTP: `status`, `method`).
    extra: &'static [(&'static str, &'static str)],
    /// Made for a function (`#[profiled]`): its events carry its name as `fn`.
    function: bool,
    /// `sampler::INHERIT` means "use the global rate".
    threshold: u64,
    /// The site's id (low 32 bits, from 1) and its kind's (high 32 bits); 0 until registered.
    key: AtomicU64,
    /// A timed call longer than this (ticks) is a candidate for the slowest recent calls and
    /// for exemplars (only when a sink wants details or exemplars): raised to each candidate's
    /// duration, forgotten every collector cycle.
    slow: AtomicU64,
}

impl Site {
    /// The site of a function named `name` (its `function` label and the `fn` of its events),
    /// sampled at `sample` (`None`: the global rate). Rates outside `0..=1` are clamped; the
    /// macro rejects them.
    pub const fn function(name: &'static str, sample: Option<f64>) -> Site {
        Site::of_function(&FUNCTION, name, name, sample)
    }

    /// The site of a function whose calls are database queries of `vendor`
    /// (`#[profiled(db = "...")]`): counted and timed under `db_vendor = vendor` with every
    /// other query of that vendor, and recorded as DB events that also carry the function's
    /// `name`.
    pub const fn db_function(
        name: &'static str,
        vendor: &'static str,
        sample: Option<f64>,
    ) -> Site {
        Site::of_function(&DB, name, vendor, sample)
    }

    /// The site of a function named `name` whose calls count as calls of `kind`, under the
    /// value `label` of the kind's label.
    pub const fn of_function(
        kind: &'static Kind,
        name: &'static str,
        label: &'static str,
        sample: Option<f64>,
    ) -> Site {
        let threshold = match sample {
            Some(rate) => sampler::threshold(rate),
            None => sampler::INHERIT,
        };
        Site {
            kind,
            name,
            label,
            extra: &[],
            function: true,
            threshold,
            key: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    /// The one site of `kind` with label value `label` and the further labels `extra` (keys
    /// and values, in order), made on first use and kept for the process. Takes a lock: an
    /// adapter caches what it gets (per thread, say). Label values come from route templates,
    /// statuses, vendors: finitely many.
    pub fn interned(
        kind: &'static Kind,
        label: &str,
        extra: &[(&'static str, &str)],
    ) -> &'static Site {
        let key = (
            kind.id(),
            Box::<str>::from(label),
            extra
                .iter()
                .map(|&(k, v)| (k, Box::<str>::from(v)))
                .collect::<Vec<_>>(),
        );
        let mut interned = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
        interned
            .get_or_insert_with(HashMap::new)
            .entry(key)
            .or_insert_with(|| {
                let leak = |s: &str| -> &'static str { Box::leak(s.into()) };
                let label = leak(label);
                let extra: Vec<(&'static str, &'static str)> =
                    extra.iter().map(|&(k, v)| (k, leak(v))).collect();
                Box::leak(Box::new(Site {
                    kind,
                    name: label,
                    label,
                    extra: Box::leak(extra.into_boxed_slice()),
                    // A function's site made at run time (a call recorded by name).
                    function: std::ptr::eq(kind, &FUNCTION),
                    threshold: sampler::INHERIT,
                    key: AtomicU64::new(0),
                    slow: AtomicU64::new(0),
                }))
            })
    }

    /// The name: the `fn` of a function's events; the label value of an adapter's site.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The kind of calls this site records.
    pub fn kind(&self) -> &'static Kind {
        self.kind
    }

    /// The value of the kind's label ([`Kind::label`]): a function's name, a route template,
    /// a database vendor.
    pub fn label(&self) -> &'static str {
        self.label
    }

    /// Whether this is a function's site (made by `#[profiled]`), whose events carry `fn`.
    pub fn is_function(&self) -> bool {
        self.function
    }

    /// Every label of the site's series after `service`, `instance` and `worker`, in order:
    /// the kind's own, then the adapter's (HTTP: `status`, then `method` if on).
    pub fn labels(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        std::iter::once((self.kind.label(), self.label)).chain(self.extra.iter().copied())
    }

    /// The value of label `key`, if the site has it.
    pub fn label_value(&self, key: &str) -> Option<&'static str> {
        self.labels().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The site's own sample rate, if it has one.
    pub fn sample_rate(&self) -> Option<f64> {
        (self.threshold != sampler::INHERIT).then(|| sampler::rate_of(self.threshold))
    }

    #[inline]
    pub(crate) fn threshold(&self) -> u64 {
        self.threshold
    }

    /// Ticks above which a timed call is a slow-call candidate.
    #[inline(always)]
    pub(crate) fn slow_ticks(&self) -> u64 {
        self.slow.load(Ordering::Relaxed)
    }

    /// A candidate of `ticks` was taken: later ones must be slower.
    pub(crate) fn raise_slow(&self, ticks: u64) {
        self.slow.fetch_max(ticks, Ordering::Relaxed);
    }

    /// Forgets the threshold (each collector cycle): the next timed call is a candidate.
    pub(crate) fn reset_slow(&self) {
        self.slow.store(0, Ordering::Relaxed);
    }

    /// The site's id: dense, from 1, in order of first use; for outputs that keep something per
    /// site (a metric handle, say) in a `Vec`.
    #[inline]
    pub fn id(&'static self) -> u32 {
        self.ids().0
    }

    /// The site's dense id and its kind's id, if it is registered (`None` before its first
    /// use: then [`Site::ids`] registers it).
    #[inline(always)]
    pub(crate) fn ids_if_registered(&self) -> Option<(u32, u32)> {
        let key = self.key.load(Ordering::Relaxed);
        (key != 0).then(|| split_key(key))
    }

    /// The site's dense id (from 1) and its kind's id, registering the site on first use.
    #[inline]
    pub(crate) fn ids(&'static self) -> (u32, u32) {
        self.ids_if_registered()
            .unwrap_or_else(|| split_key(self.register()))
    }

    #[cold]
    fn register(&'static self) -> u64 {
        let kind = u64::from(self.kind.id());
        let mut sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
        let key = self.key.load(Ordering::Relaxed);
        if key != 0 {
            return key;
        }
        sites.push(self);
        let key = sites.len() as u64 | kind << 32;
        self.key.store(key, Ordering::Release);
        key
    }
}

static SITES: Mutex<Vec<&'static Site>> = Mutex::new(Vec::new());

/// Adapter sites, by kind id, label and further labels.
type Interned = HashMap<(u32, Box<str>, Vec<(&'static str, Box<str>)>), &'static Site>;
static INTERNED: Mutex<Option<Interned>> = Mutex::new(None);

/// A copy of the registered sites, in id order (the site of id `n` at `n - 1`).
pub(crate) fn all() -> Vec<&'static Site> {
    SITES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A site's key: its id (low 32 bits) and its kind's id (high 32 bits).
#[inline(always)]
fn split_key(key: u64) -> (u32, u32) {
    (key as u32, (key >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::HTTP;

    #[test]
    fn ids_are_dense_and_stable() {
        static A: Site = Site::function("a", None);
        static B: Site = Site::function("b", Some(0.5));
        let a = A.ids().0;
        let b = B.ids().0;
        assert_ne!(a, b);
        assert_eq!(A.ids().0, a);
        assert_eq!(B.ids().1, 0, "the function kind's id");
        let sites = all();
        assert_eq!(sites[a as usize - 1].name(), "a");
        assert_eq!(sites[b as usize - 1].sample_rate(), Some(0.5));
        assert_eq!(A.sample_rate(), None);
    }

    #[test]
    fn interned_sites_are_made_once_per_label_set() {
        let a = Site::interned(&HTTP, "/users/{id}", &[("status", "200")]);
        assert!(std::ptr::eq(
            a,
            Site::interned(&HTTP, "/users/{id}", &[("status", "200")])
        ));
        let from_other_thread = std::thread::spawn(|| {
            Site::interned(&HTTP, "/users/{id}", &[("status", "200")]) as *const Site as usize
        })
        .join()
        .unwrap();
        assert_eq!(from_other_thread, a as *const Site as usize);
        assert!(!std::ptr::eq(
            a,
            Site::interned(&HTTP, "/users/{id}", &[("status", "404")])
        ));
        assert!(!std::ptr::eq(
            a,
            Site::interned(
                &HTTP,
                "/users/{id}",
                &[("status", "200"), ("method", "GET")]
            )
        ));
        assert_eq!(
            a.labels().collect::<Vec<_>>(),
            [("route", "/users/{id}"), ("status", "200")]
        );
        assert_eq!(
            (a.name(), a.kind(), a.is_function()),
            ("/users/{id}", &HTTP, false)
        );
        assert!(std::ptr::eq(
            Site::interned(&DB, "sqlite", &[]),
            Site::interned(&DB, "sqlite", &[])
        ));
        assert!(!std::ptr::eq(
            Site::interned(&DB, "sqlite", &[]),
            Site::interned(&HTTP, "sqlite", &[])
        ));
    }

    #[test]
    fn db_functions_name_the_function_and_count_under_the_vendor() {
        static LOAD: Site = Site::db_function("app::load_user", "postgres", None);
        assert_eq!(LOAD.kind(), &DB);
        assert_eq!(LOAD.name(), "app::load_user");
        assert_eq!(LOAD.label_value("db_vendor"), Some("postgres"));
        assert!(LOAD.is_function());
        assert_eq!(Site::function("f", None).label_value("db_vendor"), None);
    }
}
