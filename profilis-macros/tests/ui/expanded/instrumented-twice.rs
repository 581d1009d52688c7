//! A method of a `#[profiled]` impl block with its own attribute under another name: the
//! block cannot see it as `#[profiled]`, so the method would be instrumented twice. The same
//! for two `#[profiled]` on one function.
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

fn main() {
    let _ = Thing.other();
    twice();
}
