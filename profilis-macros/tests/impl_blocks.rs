//! `#[profiled]` on impl blocks and methods: naming, receivers, per-method arguments, `skip`,
//! trait impls.

use std::fmt;

use profilis::profiled;
use profilis::testing::capture;

#[derive(Debug, Default, Clone, PartialEq)]
struct Cart {
    items: Vec<u32>,
    note: String,
}

#[profiled]
impl Cart {
    /// An empty cart.
    fn new() -> Self {
        Cart::default()
    }

    fn total(&self) -> u32 {
        self.items.iter().sum()
    }

    fn add(&mut self, price: u32) -> &mut Self {
        self.items.push(price);
        self
    }

    fn note_mut(&mut self) -> &mut String {
        &mut self.note
    }

    fn into_items(self) -> Vec<u32> {
        self.items
    }

    fn checkout(&self) -> Result<u32, String> {
        if self.items.is_empty() {
            Err("empty cart".into())
        } else {
            Ok(self.total())
        }
    }

    #[profiled(name = "cart_clear", sample = 1.0)]
    fn clear(&mut self) {
        self.items.clear();
    }

    #[profiled(skip)]
    fn len(&self) -> usize {
        self.items.len()
    }

    const LIMIT: usize = 10;

    const fn limit() -> usize {
        Self::LIMIT
    }
}

struct Wrapper<T>(T);

#[profiled(sample = 0)]
impl<T> Wrapper<T>
where
    T: Clone,
{
    fn get(&self) -> T {
        self.0.clone()
    }

    #[profiled(sample = 1)]
    fn get_sampled(&self) -> T {
        self.0.clone()
    }
}

#[profiled]
impl fmt::Display for Cart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} items", self.items.len())
    }
}

struct Plain;

impl Plain {
    #[profiled]
    fn alone(&self) -> u8 {
        1
    }
}

trait Greeter {
    fn greet(&self) -> String;

    #[profiled]
    fn greet_twice(&self) -> String {
        format!("{0} {0}", self.greet())
    }
}

#[profiled]
impl Greeter for Plain {
    fn greet(&self) -> String {
        "hi".into()
    }
}

#[test]
fn methods_are_named_after_the_type() {
    let (items, captured) = capture(|| {
        let mut cart = Cart::new();
        cart.add(2).add(3);
        cart.note_mut().push_str("gift");
        assert_eq!(cart.total(), 5);
        assert_eq!(cart.checkout(), Ok(5));
        assert_eq!(cart.len(), 2);
        assert_eq!(Cart::limit(), 10);
        assert_eq!(cart.note, "gift");
        cart.into_items()
    });
    assert_eq!(items, [2, 3]);
    captured.one("impl_blocks::Cart::new");
    assert_eq!(captured.named("impl_blocks::Cart::add").len(), 2);
    captured.one("impl_blocks::Cart::note_mut");
    captured.one("impl_blocks::Cart::into_items");
    captured.one("impl_blocks::Cart::checkout");
    // `total` is called directly and from `checkout`, where it is a child.
    let totals = captured.named("impl_blocks::Cart::total");
    assert_eq!(totals.len(), 2);
    let checkout = captured.one("impl_blocks::Cart::checkout");
    assert_eq!(totals[1].parent_span_id, Some(checkout.span_id));
}

#[test]
fn skip_and_const_fns_are_left_alone() {
    let ((), captured) = capture(|| {
        let cart = Cart::new();
        assert_eq!(cart.len(), 0);
        assert_eq!(Cart::limit(), 10);
    });
    assert!(captured.named("impl_blocks::Cart::len").is_empty());
    assert!(captured.named("impl_blocks::Cart::limit").is_empty());
    assert_eq!(captured.count("impl_blocks::Cart::len"), (0, 0));
}

#[test]
fn method_arguments_win_over_the_block() {
    let ((), captured) = capture(|| {
        let mut cart = Cart::new();
        cart.add(1);
        cart.clear();
        assert!(cart.checkout().is_err());
        let wrapper = Wrapper(7u8);
        assert_eq!(wrapper.get(), 7);
        assert_eq!(wrapper.get_sampled(), 7);
    });
    captured.one("cart_clear");
    assert!(captured.one("impl_blocks::Cart::checkout").error);
    assert_eq!(captured.count("impl_blocks::Cart::checkout"), (1, 1));
    // The block's `sample = 0` applies to `get`, the method's `sample = 1` to `get_sampled`.
    assert!(captured.named("impl_blocks::Wrapper::get").is_empty());
    assert_eq!(captured.count("impl_blocks::Wrapper::get"), (1, 0));
    captured.one("impl_blocks::Wrapper::get_sampled");
}

#[test]
fn trait_impls_and_lone_methods() {
    let ((), captured) = capture(|| {
        let cart = Cart {
            items: vec![1, 2],
            ..Cart::default()
        };
        assert_eq!(cart.to_string(), "2 items");
        assert_eq!(Plain.alone(), 1);
        assert_eq!(Plain.greet_twice(), "hi hi");
    });
    captured.one("impl_blocks::Cart::fmt");
    // Without the impl block's attribute the macro cannot see the type.
    captured.one("impl_blocks::alone");
    let twice = captured.one("impl_blocks::greet_twice");
    let greet = captured.one("impl_blocks::Plain::greet");
    assert_eq!(greet.parent_span_id, Some(twice.span_id));
}
