use profilis::profiled;

#[profiled(sample = "0.5")]
fn string() {}

#[profiled(sample = RATE)]
fn constant() {}

#[profiled(sample)]
fn missing() {}

const RATE: f64 = 0.5;

fn main() {}
