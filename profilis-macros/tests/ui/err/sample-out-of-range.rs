use profilis::profiled;

#[profiled(sample = 1.5)]
fn too_high() {}

#[profiled(sample = -0.5)]
fn negative() {}

#[profiled(sample = 2)]
fn integer() {}

fn main() {}
