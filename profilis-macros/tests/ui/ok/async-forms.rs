//! `async fn` shapes keep compiling, stay `Send`, and trigger no lints.
#![deny(warnings)]

use std::future::Future;

use profilis::profiled;

#[derive(Debug)]
pub struct Error;

impl From<std::num::ParseIntError> for Error {
    fn from(_: std::num::ParseIntError) -> Self {
        Error
    }
}

#[profiled]
async fn question_mark(text: String) -> Result<u32, Error> {
    let value: u32 = text.parse()?;
    Ok(value)
}

#[profiled]
async fn no_return(counter: &mut u32) {
    *counter += 1;
}

#[profiled]
async fn always_returns() -> u32 {
    return 1;
}

#[profiled]
async fn impl_return(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

#[profiled]
async fn partly_impl(n: u32) -> Result<impl Iterator<Item = u32>, Error> {
    let limit: u32 = format!("{n}").parse()?;
    Ok(0..limit)
}

#[profiled]
async fn early_unsize(n: u32) -> Result<Box<dyn Iterator<Item = u32> + Send>, String> {
    if n == 0 {
        return Ok(Box::new(std::iter::empty()));
    }
    Ok(Box::new(0..n))
}

#[profiled]
async fn borrows<'a>(items: &'a [u32], _other: &str) -> Option<&'a u32> {
    items.first()
}

#[profiled]
async fn generic<T>(value: T) -> T
where
    T: Send + Clone,
{
    value.clone()
}

#[profiled(sample = 0.5)]
async fn calls_others() -> Result<u32, Error> {
    let a = question_mark("1".into()).await?;
    let b = always_returns().await;
    Ok(a + b)
}

pub struct Service {
    hits: u32,
}

#[profiled]
impl Service {
    async fn hit(&mut self) -> &mut u32 {
        self.hits += 1;
        &mut self.hits
    }

    async fn read(&self) -> u32 {
        self.hits
    }

    async fn finish(self) -> u32 {
        self.hits
    }
}

trait Native {
    fn run(&self) -> impl Future<Output = u32> + Send;
    async fn run_local(&self) -> u32;
}

#[profiled]
impl Native for Service {
    #[allow(clippy::manual_async_fn)]
    fn run(&self) -> impl Future<Output = u32> + Send {
        async { 1 }
    }

    async fn run_local(&self) -> u32 {
        self.hits
    }
}

fn assert_send<T: Send>(_: T) {}

/// A body that is one value: its braces must not be linted as unnecessary.
#[profiled]
async fn one_value() -> u32 { 4 }

fn main() {
    assert_send(one_value());
    assert_send(question_mark("1".into()));
    assert_send(calls_others());
    assert_send(generic(1u8));
    let mut counter = 0;
    assert_send(no_return(&mut counter));
    assert_send(impl_return(2));
    assert_send(partly_impl(2));
    assert_send(early_unsize(2));
    assert_send(borrows(&[1], "x"));
    let mut service = Service { hits: 0 };
    assert_send(service.read());
    assert_send(service.hit());
    assert_send(service.run());
    assert_send(service.run_local());
    assert_send(Service { hits: 0 }.finish());
}
