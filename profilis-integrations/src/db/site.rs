//! The site of a database vendor: looked up once per query, so found per thread without a
//! lock, and interned in core only the first time a thread sees the vendor.

use std::cell::RefCell;

use profilis_core::{Site, DB};

/// The site of queries of `vendor` (`sqlite`, `postgres`, ...), made on first use and kept
/// for the process. A service talks to a few vendors, so each thread keeps a short list.
pub fn site(vendor: &str) -> &'static Site {
    thread_local! {
        static KNOWN: RefCell<Vec<&'static Site>> = const { RefCell::new(Vec::new()) };
    }
    let known = KNOWN.try_with(|known| {
        known
            .borrow()
            .iter()
            .copied()
            .find(|site| site.label() == vendor)
    });
    if let Ok(Some(site)) = known {
        return site;
    }
    let site = Site::interned(&DB, vendor, &[]);
    // A thread being torn down has no list; the site is still right.
    let _ = KNOWN.try_with(|known| known.borrow_mut().push(site));
    site
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_site_per_vendor_on_every_thread() {
        let sqlite = site("sqlite");
        assert!(std::ptr::eq(sqlite, site("sqlite")));
        assert!(!std::ptr::eq(sqlite, site("postgres")));
        assert_eq!(sqlite.kind(), &DB);
        assert_eq!(sqlite.label_value("db_vendor"), Some("sqlite"));
        let elsewhere = std::thread::spawn(|| site("sqlite") as *const Site as usize)
            .join()
            .unwrap();
        assert_eq!(elsewhere, sqlite as *const Site as usize);
        // The text decides, not where it is.
        let vendor = String::from("postgres");
        assert!(std::ptr::eq(site(&vendor), site("postgres")));
    }
}
