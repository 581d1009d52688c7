use profilis::profiled;

#[profiled(name = "a", name = "b")]
fn twice() {}

#[profiled(sample = 0.5, skip, sample = 0.1, skip)]
fn twice_more() {}

fn main() {}
