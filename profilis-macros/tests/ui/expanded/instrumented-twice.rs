//! A method of a `#[profiled]` impl block with its own attribute under another name: the
//! block cannot see it as `#[profiled]`, so the method would be instrumented twice. The same
//! for two `#[profiled]` on one function or impl block, and a skip under a `#[profiled]`.
use profilis::profiled as timed;

pub struct Thing;

#[profilis::profiled]
impl Thing {
    #[timed(name = "thing_other")]
    fn other(&self) -> u32 {
        3
    }
}

#[profilis::profiled]
#[profilis::profiled(sample = 0.5)]
fn twice() {}

pub struct Other;

#[profilis::profiled]
#[profilis::profiled(sample = 0.5)]
impl Other {
    fn method(&self) {}
}

// A skip under a #[profiled] cannot take effect: said, not ignored.
#[profilis::profiled]
#[profilis::profiled(skip)]
fn skipped() {}

fn main() {
    let _ = Thing.other();
    twice();
    Other.method();
    skipped();
}
