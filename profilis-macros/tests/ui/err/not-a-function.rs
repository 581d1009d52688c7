use profilis::profiled;

#[profiled]
struct Order {
    id: u64,
}

#[profiled(sample = 3)]
trait Priced {
    fn price(&self) -> u32;
}

trait Named {
    #[profiled]
    fn name(&self) -> String;
}

#[profiled]
mod inner {}

extern "C" {
    #[profiled]
    fn abs(x: i32) -> i32;
}

fn main() {
    let _ = Order { id: 1 }.id;
}
