//! The site of a route template answered with a status (and method, with the `method` label):
//! looked up once per request, so found per thread without a lock, and interned in core only
//! the first time a thread sees it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use profilis_core::{Site, HTTP};
use rustc_hash::FxBuildHasher;

/// A site with the labels it was found by, so a check needs no look-up among its labels.
#[derive(Debug, Clone, Copy)]
struct Known {
    site: &'static Site,
    status: u16,
    method: Option<&'static str>,
}

impl Known {
    #[inline]
    fn is(&self, route: &str, status: u16, method: Option<&str>) -> bool {
        self.status == status && self.method == method && self.site.label() == route
    }
}

/// Slots of the per-thread table of recently used sites (a power of two).
const RECENT_SLOTS: usize = 64;

thread_local! {
    static RECENT: [Cell<Option<Known>>; RECENT_SLOTS] =
        const { [const { Cell::new(None) }; RECENT_SLOTS] };
}

/// The site of HTTP requests of `route` answered with `status`, labelled with `method` if it
/// is given (the opt-in `method` label: a standard method by name, any other as `OTHER`, so a
/// client cannot add series by inventing methods), made on first use and kept for the process.
///
/// Called once per request, so it is cached per thread twice over: a small table indexed by
/// the address of `route` (a route template is usually one string that lives as long as the
/// router, so the same address comes back request after request), checked against the text,
/// status and method; behind it, a map from the route text; then core's interned sites.
#[inline]
pub fn site(route: &str, status: u16, method: Option<&str>) -> &'static Site {
    let method = method.map(super::method_label);
    let slot = recent_slot(route, status);
    if let Ok(Some(known)) = RECENT.try_with(|recent| recent[slot].get()) {
        if known.is(route, status, method) {
            return known.site;
        }
    }
    let known = lookup(route, status, method);
    // A thread being torn down has no table; the site is still right.
    let _ = RECENT.try_with(|recent| recent[slot].set(Some(known)));
    known.site
}

/// The slot of `route` (by its address) and `status` in [`RECENT`].
#[inline]
fn recent_slot(route: &str, status: u16) -> usize {
    let key = (route.as_ptr() as u64 ^ u64::from(status)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (key >> (64 - RECENT_SLOTS.trailing_zeros())) as usize
}

#[cold]
#[inline(never)]
fn lookup(route: &str, status: u16, method: Option<&str>) -> Known {
    thread_local! {
        static KNOWN: RefCell<HashMap<Box<str>, Vec<Known>, FxBuildHasher>> =
            RefCell::new(HashMap::default());
    }
    let cached = KNOWN.try_with(|known| {
        let known = known.borrow();
        known
            .get(route)?
            .iter()
            .copied()
            .find(|k| k.status == status && k.method == method)
    });
    if let Ok(Some(known)) = cached {
        return known;
    }
    let known = intern(route, status, method);
    let _ = KNOWN.try_with(|map| {
        map.borrow_mut()
            .entry(route.into())
            .or_default()
            .push(known)
    });
    known
}

/// The process-wide site, from core (under its lock).
fn intern(route: &str, status: u16, method: Option<&str>) -> Known {
    let status_text = status.to_string();
    let labels = [
        ("status", status_text.as_str()),
        ("method", method.unwrap_or_default()),
    ];
    let labels = if method.is_some() {
        &labels[..]
    } else {
        &labels[..1]
    };
    let site = Site::interned(&HTTP, route, labels);
    Known {
        site,
        status,
        method: site.label_value("method"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_made_once_per_route_status_and_method() {
        let a = site("/users/{id}", 200, None);
        assert!(std::ptr::eq(a, site("/users/{id}", 200, None)));
        let from_other_thread =
            std::thread::spawn(|| site("/users/{id}", 200, None) as *const Site as usize)
                .join()
                .unwrap();
        assert_eq!(from_other_thread, a as *const Site as usize);
        assert!(!std::ptr::eq(a, site("/users/{id}", 404, None)));
        let with_method = site("/users/{id}", 200, Some("GET"));
        assert!(!std::ptr::eq(a, with_method));
        assert!(!std::ptr::eq(
            with_method,
            site("/users/{id}", 200, Some("PUT"))
        ));
        assert_eq!(
            a.labels().collect::<Vec<_>>(),
            [("route", "/users/{id}"), ("status", "200")]
        );
        assert_eq!(
            with_method.labels().collect::<Vec<_>>(),
            [
                ("route", "/users/{id}"),
                ("status", "200"),
                ("method", "GET")
            ]
        );
        // Any method but the standard ones is one label value.
        let other = site("/users/{id}", 200, Some("FOO1"));
        assert!(std::ptr::eq(
            other,
            site("/users/{id}", 200, Some("PROPFIND"))
        ));
        assert_eq!(other.label_value("method"), Some("OTHER"));
        assert_eq!(a.kind(), &HTTP);
        assert!(std::ptr::eq(
            a,
            Site::interned(&HTTP, "/users/{id}", &[("status", "200")])
        ));
    }

    #[test]
    fn another_route_at_a_reused_address_is_another_site() {
        // The per-thread table is indexed by the string's address: another route at the same
        // address (a reused buffer) is another site, the same route elsewhere the same one.
        let mut buffer = String::from("/reused/{a}");
        let first = site(&buffer, 200, None);
        buffer.replace_range(9..10, "b");
        let second = site(&buffer, 200, None);
        assert_eq!(
            (first.label(), second.label()),
            ("/reused/{a}", "/reused/{b}")
        );
        let copy = String::from("/reused/{b}");
        assert!(std::ptr::eq(second, site(&copy, 200, None)));
        // Same address and text, another method or status: the slot is checked for both.
        let get = site(&buffer, 200, Some("GET"));
        assert_eq!(get.label_value("method"), Some("GET"));
        assert_eq!(site(&buffer, 200, None).label_value("method"), None);
        assert_eq!(site(&buffer, 500, None).label_value("status"), Some("500"));
        assert_eq!(site(&buffer, 200, None).label_value("status"), Some("200"));
    }

    #[test]
    fn slots_of_one_address_differ_by_status() {
        let route = "/slots";
        let slots: std::collections::HashSet<_> = (200..264)
            .map(|status| recent_slot(route, status))
            .collect();
        assert!(slots.len() > 32, "{} slots for 64 statuses", slots.len());
        assert!(slots.iter().all(|&slot| slot < RECENT_SLOTS));
    }
}
