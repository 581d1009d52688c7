use profilis::profiled;

#[profiled(skip = true)]
fn valued() {}

#[profiled(crate = "profilis")]
fn not_a_path() {}

#[profiled(name = )]
fn empty_value() {}

fn main() {}
