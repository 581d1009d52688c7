use profilis::profiled;

#[profiled(db = postgres)]
fn ident() {}

#[profiled(db = "")]
fn empty() {}

#[profiled(db = "Postgres SQL")]
fn not_plain() {}

#[profiled(db)]
fn no_value() {}

fn main() {}
