#![deny(unused_must_use)]

use profilis::profiled;

#[must_use = "the price must be charged"]
#[profiled]
fn price() -> u32 {
    1
}

#[profiled]
fn fallible() -> Result<(), String> {
    Ok(())
}

#[profiled]
async fn later() -> u32 {
    1
}

fn main() {
    price();
    fallible();
    later();
}
