use profilis::profiled;

pub struct Cart;

#[profiled(name = "cart")]
impl Cart {
    #[profiled(smaple = 0.5)]
    fn total(&self) -> u32 {
        1
    }

    #[profiled]
    #[profiled(skip)]
    fn twice(&self) {}

    #[profiled = "x"]
    fn name_value(&self) {}
}

fn main() {
    let _ = Cart.total();
    Cart.twice();
    Cart.name_value();
}
