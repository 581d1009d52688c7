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

/// An error type with no `From` impls, so the message does not list other crates' impls.
#[derive(Debug)]
struct PriceError;

#[profiled]
fn wrong_question_mark() -> Result<u32, PriceError> {
    let value: u32 = "1".parse()?;
    Ok(value)
}

#[profiled]
async fn wrong_async() -> u32 {
    "async text"
}

fn main() {}
