use profilis::profiled;

#[profiled]
fn wrong_tail() -> u32 {
    "not a number"
}

#[profiled]
fn wrong_return(flag: bool) -> Result<u32, String> {
    if flag {
        return Ok("text");
    }
    Ok(1)
}

#[profiled]
fn wrong_question_mark() -> Result<u32, String> {
    let value: u32 = "1".parse()?;
    Ok(value)
}

#[profiled]
async fn wrong_async() -> u32 {
    "async text"
}

fn main() {}
