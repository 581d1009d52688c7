//! `#[async_trait]` in both orders, on blocks and methods, including `?Send` traits.
#![deny(warnings)]

use async_trait::async_trait;
use profilis::profiled;

#[async_trait]
pub trait Repo: Send + Sync {
    async fn get(&self, id: u32) -> Result<String, String>;
    async fn put(&mut self, id: u32, value: String);
    async fn into_len(self: Box<Self>) -> usize;
    async fn default_method(&self) -> u32 {
        1
    }
}

pub struct Mem(Vec<String>);

#[async_trait]
#[profiled]
impl Repo for Mem {
    async fn get(&self, id: u32) -> Result<String, String> {
        let index: usize = id.try_into().map_err(|_| "too big".to_string())?;
        self.0.get(index).cloned().ok_or_else(|| "missing".into())
    }

    #[profiled(name = "mem_put")]
    async fn put(&mut self, _id: u32, value: String) {
        self.0.push(value);
    }

    #[profiled(skip)]
    async fn into_len(self: Box<Self>) -> usize {
        self.0.len()
    }
}

pub struct Other(u32);

#[profiled(sample = 0.1)]
#[async_trait]
impl Repo for Other {
    async fn get(&self, id: u32) -> Result<String, String> {
        if id == self.0 {
            return Err("same".into());
        }
        Ok(format!("{id}"))
    }

    async fn put(&mut self, id: u32, _value: String) {
        self.0 = id;
    }

    async fn into_len(self: Box<Self>) -> usize {
        self.0 as usize
    }

    async fn default_method(&self) -> u32 {
        self.0
    }
}

#[async_trait(?Send)]
pub trait Local {
    async fn local(&self) -> u32;
}

#[async_trait(?Send)]
impl Local for Other {
    #[profiled]
    async fn local(&self) -> u32 {
        self.0
    }
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    let mem = Mem(Vec::new());
    assert_send(mem.get(1));
    let other = Other(1);
    assert_send(other.get(1));
    let _ = other.local();
}
