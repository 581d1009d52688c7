//! The site of a database vendor: looked up once per query, so found per thread without a
//! lock, and interned in core only the first time a thread sees the vendor. The vendor is the
//! `db_vendor` label, so what gets a label of its own is bounded: text of a vendor name's
//! shape, up to [`MAX_VENDORS`] of them; anything else is [`OTHER_VENDOR`].

use std::cell::RefCell;
use std::sync::{Mutex, OnceLock};

use profilis_core::{Site, DB};

/// The `db_vendor` of queries whose vendor is not a vendor's name (empty, longer than
/// [`MAX_VENDOR_LEN`] bytes, or with other characters than ASCII letters, digits, `_`, `-`
/// and `.`: a statement passed for the vendor, say), or is a new one past
/// [`MAX_VENDORS`].
pub const OTHER_VENDOR: &str = "<other>";

/// How many vendors get a `db_vendor` label of their own in a process.
pub const MAX_VENDORS: usize = 64;

/// The longest vendor name, in bytes.
pub const MAX_VENDOR_LEN: usize = 64;

/// The vendors given a label so far, at most [`MAX_VENDORS`].
static VENDORS: Mutex<Vec<&'static Site>> = Mutex::new(Vec::new());

/// Whether `vendor` has a vendor name's shape (`postgres`, `sql-server`, `db2.zos`,
/// `PostgreSQL`): as `#[profiled(db = ..)]` takes it, and `.` and uppercase letters (kept as
/// given: `PostgreSQL` and `postgresql` are two labels, as they were before the shape was
/// checked).
fn is_vendor(vendor: &str) -> bool {
    !vendor.is_empty()
        && vendor.len() <= MAX_VENDOR_LEN
        && vendor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The site of [`OTHER_VENDOR`].
fn other() -> &'static Site {
    static OTHER: OnceLock<&'static Site> = OnceLock::new();
    OTHER.get_or_init(|| Site::interned(&DB, OTHER_VENDOR, &[]))
}

/// The site of queries of `vendor` (`sqlite`, `postgres`, ...), made on first use and kept
/// for the process. A service talks to a few vendors, so each thread keeps a short list.
/// Text that is not a vendor's name, and new vendors past [`MAX_VENDORS`], get the site of
/// [`OTHER_VENDOR`]: no query can add series without end, nor put a statement in a label.
pub fn site(vendor: &str) -> &'static Site {
    thread_local! {
        static KNOWN: RefCell<Vec<&'static Site>> = const { RefCell::new(Vec::new()) };
        /// Vendors this thread found past the cap (at most `MAX_VENDORS` of them), so their
        /// queries take no lock either.
        static PAST_CAP: RefCell<Vec<Box<str>>> = const { RefCell::new(Vec::new()) };
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
    if !is_vendor(vendor) {
        return other();
    }
    let past_cap = PAST_CAP.try_with(|past| past.borrow().iter().any(|v| &**v == vendor));
    if past_cap == Ok(true) {
        return other();
    }
    let site = {
        let mut vendors = VENDORS.lock().unwrap_or_else(|e| e.into_inner());
        match vendors.iter().copied().find(|site| site.label() == vendor) {
            Some(site) => site,
            None if vendors.len() < MAX_VENDORS => {
                let site = Site::interned(&DB, vendor, &[]);
                vendors.push(site);
                site
            }
            // Kept apart: the thread's list of sites holds the labelled vendors only.
            None => {
                drop(vendors);
                let _ = PAST_CAP.try_with(|past| {
                    let mut past = past.borrow_mut();
                    if past.len() < MAX_VENDORS {
                        past.push(vendor.into());
                    }
                });
                return other();
            }
        }
    };
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
