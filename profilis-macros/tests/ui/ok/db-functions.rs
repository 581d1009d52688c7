use profilis::profiled;

#[profiled(db = "postgres")]
fn load_user(id: u64) -> Result<String, String> {
    Ok(format!("user {id}"))
}

#[profiled(db = "redis", sample = 0.5, name = "cache_get")]
async fn cache_get(key: &str) -> Option<String> {
    Some(key.to_owned())
}

struct Repo;

#[profiled(db = "sqlite")]
impl Repo {
    fn count(&self) -> usize {
        0
    }

    #[profiled(db = "postgres")]
    fn other_vendor(&self) -> usize {
        1
    }
}

fn main() {
    assert_eq!(load_user(1).unwrap(), "user 1");
    let _ = cache_get("k");
    assert_eq!(Repo.count() + Repo.other_vendor(), 1);
}
