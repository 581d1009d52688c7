use profilis::profiled;

#[profiled(sampel = 0.5)]
fn typo() {}

#[profiled(name = "ok", level = "debug", skip)]
fn another() {}

fn main() {}
