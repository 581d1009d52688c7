//! `crate = path` reaches profilis under another name.
#![deny(warnings)]

extern crate profilis as my_profilis;

mod renamed {
    // Only generated code uses it, so it is unused with the `enabled` feature off.
    #[allow(unused_imports)]
    pub use ::profilis as inner;
}

#[my_profilis::profiled(crate = my_profilis)]
fn through_extern_alias() -> Result<(), ()> {
    Ok(())
}

#[profiled_alias(crate = renamed::inner, sample = 1.0)]
async fn through_module_path() -> u32 {
    1
}

use my_profilis::profiled as profiled_alias;

pub struct Thing;

#[my_profilis::profiled(crate = crate::renamed::inner)]
impl Thing {
    fn method(&self) -> u32 {
        2
    }

    #[my_profilis::profiled(crate = ::profilis, name = "thing_other")]
    fn other(&self) -> u32 {
        3
    }
}

fn main() {
    let _ = through_extern_alias();
    let _ = through_module_path();
    let _ = Thing.method() + Thing.other();
}
