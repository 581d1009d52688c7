//! Call sites: one `static` per instrumented function, made by `#[profiled]`, that carries the
//! function's name and sample rate and gets a dense id on its first recorded call.

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

/// A static call site. Made once per instrumented function; never freed.
#[derive(Debug)]
pub struct Site {
    name: &'static str,
    kind: SiteKind,
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

    /// A site of any kind.
    pub const fn new(name: &'static str, kind: SiteKind, sample: Option<f64>) -> Site {
        let threshold = match sample {
            Some(rate) => sampler::threshold(rate),
            None => sampler::INHERIT,
        };
        Site {
            name,
            kind,
            threshold,
            id: AtomicU32::new(0),
        }
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

static SITES: Mutex<Vec<&'static Site>> = Mutex::new(Vec::new());

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
}
