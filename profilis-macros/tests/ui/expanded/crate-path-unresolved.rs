use profilis::profiled;

#[profiled(crate = not_profilis)]
fn unresolved() {}

fn main() {
    unresolved();
}
