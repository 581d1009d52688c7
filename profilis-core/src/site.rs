//! Call sites: one `static` per instrumented function, made by `#[profiled]`, that carries the
//! function's name and sample rate and gets a dense id on its first recorded call. HTTP routes
//! (per status) and database vendors get sites too, made once on first use and kept: their
//! calls are counted and timed on the calling thread exactly like a function's.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use crate::sampler;

/// What kind of events a site records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SiteKind {
    /// A function (`#[profiled]`): FN events.
    Function,
    /// An HTTP route: HTTP events.
    Http,
    /// A database client: DB events.
    Db,
}

/// A static call site. Made once per instrumented function, route and status, or database
/// vendor; never freed.
#[derive(Debug)]
pub struct Site {
    name: &'static str,
    kind: SiteKind,
    /// HTTP sites: the response status.
    status: u16,
    /// HTTP sites: the request method, when the `method` label is on.
    method: Option<&'static str>,
    /// DB sites: the database vendor (the `db_vendor` label).
    vendor: Option<&'static str>,
    /// `sampler::INHERIT` means "use the global rate".
    threshold: u64,
    id: AtomicU32,
}

impl Site {
    /// A function site named `name` (the label value of `function`), sampled at `sample`
    /// (`None`: the global rate). Rates outside `0..=1` are clamped; the macro rejects them.
    pub const fn function(name: &'static str, sample: Option<f64>) -> Site {
        Site::new(name, SiteKind::Function, sample)
    }

    /// A site of any kind. A [`SiteKind::Db`] site made here counts under the vendor `name`;
    /// [`Site::db_function`] names a function and a vendor apart.
    pub const fn new(name: &'static str, kind: SiteKind, sample: Option<f64>) -> Site {
        let threshold = match sample {
            Some(rate) => sampler::threshold(rate),
            None => sampler::INHERIT,
        };
        Site {
            name,
            kind,
            status: 0,
            method: None,
            vendor: match kind {
                SiteKind::Db => Some(name),
                _ => None,
            },
            threshold,
            id: AtomicU32::new(0),
        }
    }

    /// A function whose calls are database queries of `vendor` (`#[profiled(db = "...")]`):
    /// counted and timed under `db_vendor = vendor` with every other query of that vendor, and
    /// recorded as DB events that also carry the function's `name`.
    pub const fn db_function(
        name: &'static str,
        vendor: &'static str,
        sample: Option<f64>,
    ) -> Site {
        let mut site = Site::new(name, SiteKind::Db, sample);
        site.vendor = Some(vendor);
        site
    }

    /// The site of an HTTP route template answered with `status` (and `method`, if the
    /// `method` label is wanted), made on first use and kept for the process.
    ///
    /// Called once per request, so it is cached per thread twice over: a small table indexed
    /// by the address of `route` (a route template is usually one string that lives as long
    /// as the router, so the same address comes back request after request), checked against
    /// the site's own labels; behind it, a map from the labels, then the process-wide one.
    #[inline]
    pub fn http(route: &str, status: u16, method: Option<&str>) -> &'static Site {
        let slot = recent_slot(route, status);
        let recent = RECENT.try_with(|recent| recent[slot].get());
        if let Ok(Some(site)) = recent {
            if site.status == status && site.method == method && site.name == route {
                return site;
            }
        }
        let site = Site::http_slow(route, status, method);
        let _ = RECENT.try_with(|recent| recent[slot].set(Some(site)));
        site
    }

    #[cold]
    #[inline(never)]
    fn http_slow(route: &str, status: u16, method: Option<&str>) -> &'static Site {
        thread_local! {
            // FxHash: route templates are not chosen by clients, so no need for SipHash's defence.
            static CACHE: RefCell<HashMap<Box<str>, Vec<&'static Site>, rustc_hash::FxBuildHasher>> =
                RefCell::new(HashMap::default());
        }
        let cached = CACHE.try_with(|c| {
            let cache = c.borrow();
            let sites = cache.get(route)?;
            sites
                .iter()
                .copied()
                .find(|s| s.status == status && s.method == method)
        });
        if let Ok(Some(site)) = cached {
            return site;
        }
        let site = intern(SiteKind::Http, route, status, method);
        let _ = CACHE.try_with(|c| c.borrow_mut().entry(route.into()).or_default().push(site));
        site
    }

    /// The site of a database vendor (`sqlite`, `postgres`, ...), made on first use and kept.
    /// Found again through a per-thread cache, without a lock.
    pub fn db(vendor: &str) -> &'static Site {
        thread_local! {
            static CACHE: RefCell<Vec<&'static Site>> = const { RefCell::new(Vec::new()) };
        }
        let cached = CACHE.try_with(|c| c.borrow().iter().copied().find(|s| s.name == vendor));
        if let Ok(Some(site)) = cached {
            return site;
        }
        let site = intern(SiteKind::Db, vendor, 0, None);
        let _ = CACHE.try_with(|c| c.borrow_mut().push(site));
        site
    }

    /// DB sites: the database vendor, the value of the `db_vendor` label.
    pub fn db_vendor(&self) -> Option<&'static str> {
        self.vendor
    }

    /// HTTP sites: the response status (0 for other kinds).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// HTTP sites: the request method, when the `method` label is on.
    pub fn method(&self) -> Option<&'static str> {
        self.method
    }

    /// The name, as it appears in the `function` label and the `fn` key of events.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The kind of events this site records.
    pub fn kind(&self) -> SiteKind {
        self.kind
    }

    /// The site's own sample rate, if it has one.
    pub fn sample_rate(&self) -> Option<f64> {
        (self.threshold != sampler::INHERIT).then(|| sampler::rate_of(self.threshold))
    }

    #[inline]
    pub(crate) fn threshold(&self) -> u64 {
        self.threshold
    }

    /// The dense id of this site (1-based), registering it on first use.
    #[inline]
    pub(crate) fn id(&'static self) -> u32 {
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 {
            id
        } else {
            self.register()
        }
    }

    #[cold]
    fn register(&'static self) -> u32 {
        let mut sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 {
            return id;
        }
        sites.push(self);
        let id = sites.len() as u32;
        self.id.store(id, Ordering::Release);
        id
    }
}

/// Slots of the per-thread table of recently used HTTP sites (a power of two).
const RECENT_SLOTS: usize = 64;

thread_local! {
    static RECENT: [Cell<Option<&'static Site>>; RECENT_SLOTS] =
        const { [const { Cell::new(None) }; RECENT_SLOTS] };
}

/// The slot of `route` (by its address) and `status` in [`RECENT`].
#[inline]
fn recent_slot(route: &str, status: u16) -> usize {
    let key = (route.as_ptr() as u64 ^ u64::from(status)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (key >> (64 - RECENT_SLOTS.trailing_zeros())) as usize
}

static SITES: Mutex<Vec<&'static Site>> = Mutex::new(Vec::new());

/// Sites made at run time, by kind, name, status and method.
type Interned = HashMap<(SiteKind, Box<str>, u16, Option<Box<str>>), &'static Site>;
static INTERNED: Mutex<Option<Interned>> = Mutex::new(None);

/// The one site with these labels, leaked on first use. The label values come from route
/// templates, statuses and vendors, so there are finitely many.
fn intern(kind: SiteKind, name: &str, status: u16, method: Option<&str>) -> &'static Site {
    let mut interned = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    let key = (kind, Box::from(name), status, method.map(Box::from));
    interned
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert_with(|| {
            let leak = |s: &str| -> &'static str { Box::leak(s.into()) };
            let name = leak(name);
            Box::leak(Box::new(Site {
                name,
                kind,
                status,
                method: method.map(leak),
                vendor: (kind == SiteKind::Db).then_some(name),
                threshold: sampler::INHERIT,
                id: AtomicU32::new(0),
            }))
        })
}

/// A copy of the registered sites, in id order.
pub(crate) fn all() -> Vec<&'static Site> {
    SITES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dense_and_stable() {
        static A: Site = Site::function("a", None);
        static B: Site = Site::function("b", Some(0.5));
        let a = A.id();
        let b = B.id();
        assert_ne!(a, b);
        assert_eq!(A.id(), a);
        let sites = all();
        assert_eq!(sites[a as usize - 1].name(), "a");
        assert_eq!(sites[b as usize - 1].sample_rate(), Some(0.5));
        assert_eq!(A.sample_rate(), None);
    }

    #[test]
    fn http_and_db_sites_are_made_once_per_label_set() {
        let a = Site::http("/users/{id}", 200, None);
        assert!(std::ptr::eq(a, Site::http("/users/{id}", 200, None)));
        let from_other_thread =
            std::thread::spawn(|| Site::http("/users/{id}", 200, None) as *const Site as usize)
                .join()
                .unwrap();
        assert_eq!(from_other_thread, a as *const Site as usize);
        assert!(!std::ptr::eq(a, Site::http("/users/{id}", 404, None)));
        assert!(!std::ptr::eq(
            a,
            Site::http("/users/{id}", 200, Some("GET"))
        ));
        assert_eq!(
            (a.name(), a.status(), a.kind()),
            ("/users/{id}", 200, SiteKind::Http)
        );
        // The per-thread table is indexed by the string's address: another route at the same
        // address (a reused buffer) is another site, the same route elsewhere the same one.
        let mut buffer = String::from("/reused/{a}");
        let first = Site::http(&buffer, 200, None);
        buffer.replace_range(9..10, "b");
        let second = Site::http(&buffer, 200, None);
        assert_eq!(
            (first.name(), second.name()),
            ("/reused/{a}", "/reused/{b}")
        );
        let copy = String::from("/reused/{b}");
        assert!(std::ptr::eq(second, Site::http(&copy, 200, None)));
        assert!(std::ptr::eq(Site::db("sqlite"), Site::db("sqlite")));
        assert_eq!(Site::db("sqlite").kind(), SiteKind::Db);
        assert_eq!(Site::db("sqlite").db_vendor(), Some("sqlite"));
        assert!(!std::ptr::eq(Site::db("sqlite"), Site::db("postgres")));
    }

    #[test]
    fn db_functions_name_the_function_and_count_under_the_vendor() {
        static LOAD: Site = Site::db_function("app::load_user", "postgres", None);
        assert_eq!(LOAD.kind(), SiteKind::Db);
        assert_eq!(LOAD.name(), "app::load_user");
        assert_eq!(LOAD.db_vendor(), Some("postgres"));
        assert_eq!(Site::function("f", None).db_vendor(), None);
    }
}
