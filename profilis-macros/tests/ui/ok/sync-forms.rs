//! Every sync signature shape keeps compiling, with the user's lints still at `deny`.
#![deny(warnings)]

use std::fmt::Display;

use profilis::profiled;

#[derive(Debug)]
pub struct Error;

impl From<std::num::ParseIntError> for Error {
    fn from(_: std::num::ParseIntError) -> Self {
        Error
    }
}

/// Documented, `#[must_use]`, `#[inline]`, `pub(crate)`: all kept.
#[must_use]
#[inline]
#[profiled]
pub(crate) fn question_mark(text: &str) -> Result<u32, Error> {
    let value: u32 = text.parse()?;
    Ok(value)
}

#[profiled]
fn early_return(flag: bool) -> u32 {
    if flag {
        return 1;
    }
    2
}

#[profiled]
fn only_returns() -> u32 {
    return 3;
}

#[profiled]
fn unit(counter: &mut u32) {
    *counter += 1;
}

#[profiled]
fn unit_early(counter: &mut u32) {
    if *counter > 10 {
        return;
    }
    *counter += 1;
}

#[profiled]
fn generic<T, U>(items: Vec<T>, f: impl Fn(T) -> U) -> Vec<U>
where
    T: Clone,
    U: Display,
{
    items.into_iter().map(f).collect()
}

#[profiled]
fn impl_return(n: u32) -> impl Iterator<Item = u32> + Clone {
    (0..n).map(|x| x * 2)
}

#[profiled]
fn nested_impl(n: u32) -> Result<Box<dyn Iterator<Item = u32>>, impl Display> {
    if n == 0 {
        return Err("zero");
    }
    Ok(Box::new(0..n))
}

#[profiled]
fn borrows<'a>(a: &'a str, _b: &str) -> &'a str {
    &a[..1]
}

#[profiled]
fn elided(a: &str) -> &str {
    a.trim()
}

#[profiled]
fn mut_param(mut total: u32, (a, b): (u32, u32)) -> u32 {
    total += a + b;
    total
}

/// # Safety
/// `ptr` must be valid for reads.
#[profiled]
unsafe fn unsafe_fn(ptr: *const u8) -> u8 {
    unsafe { *ptr }
}

#[profiled]
extern "C" fn extern_fn(x: u32) -> u32 {
    x + 1
}

#[profiled]
fn never() -> ! {
    panic!("never")
}

#[profiled]
fn diverging_body() -> u32 {
    panic!("no value")
}

#[profiled]
fn looping() -> u32 {
    loop {
        break 4;
    }
}

#[profiled]
fn shadows(__profilis_ret: u32, __profilis_guard: u32) -> u32 {
    __profilis_ret + __profilis_guard
}

#[profiled]
fn items_inside() -> u32 {
    const INNER: u32 = 5;
    fn helper() -> u32 {
        INNER
    }
    helper()
}

#[profiled]
fn r#match() -> bool {
    true
}

pub struct Counter {
    count: u32,
    name: String,
}

impl Counter {
    #[profiled]
    fn bump(&mut self) -> &mut u32 {
        self.count += 1;
        &mut self.count
    }

    #[profiled]
    fn name(&self) -> &str {
        &self.name
    }

    #[profiled]
    fn into_name(self) -> String {
        self.name
    }

    #[profiled]
    fn boxed(self: Box<Self>) -> u32 {
        self.count
    }

    #[profiled]
    fn new() -> Self {
        Counter {
            count: 0,
            name: String::new(),
        }
    }
}

fn main() {
    let _ = question_mark("1");
    let _ = early_return(true) + only_returns();
    let mut counter = 0;
    unit(&mut counter);
    unit_early(&mut counter);
    let _ = generic(vec![1], |x| x + 1);
    let _ = impl_return(3).clone().count();
    let _ = nested_impl(2).map(|it| it.count());
    let _ = borrows("ab", "c");
    let _ = elided(" a ");
    let _ = mut_param(1, (2, 3));
    let _ = unsafe { unsafe_fn(&1) };
    let _ = extern_fn(1);
    let _ = looping() + shadows(1, 2) + items_inside();
    let _ = r#match();
    if counter > 100 {
        let _ = diverging_body();
        never();
    }
    let mut c = Counter::new();
    *c.bump() += 1;
    let _ = c.name();
    let _ = Box::new(Counter::new()).boxed();
    let _ = c.into_name();
}
