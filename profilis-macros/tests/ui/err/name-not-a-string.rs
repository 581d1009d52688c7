use profilis::profiled;

#[profiled(name = load_user)]
fn ident() {}

#[profiled(name = "")]
fn empty() {}

#[profiled(name = concat!("a", "b"))]
fn macro_call() {}

fn main() {}
