use profilis::profiled;

#[profiled]
const fn answer() -> u32 {
    42
}

pub struct Thing;

#[profiled]
impl Thing {
    // Left alone by the block's attribute, an error when asked for explicitly.
    const fn fine() -> u32 {
        1
    }

    #[profiled(sample = 0.5)]
    const fn explicit() -> u32 {
        2
    }
}

fn main() {
    let _ = answer() + Thing::fine() + Thing::explicit();
}
