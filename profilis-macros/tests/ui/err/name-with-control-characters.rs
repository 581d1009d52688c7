use profilis::profiled;

#[profiled(name = "load\nuser")]
fn line_feed() {}

#[profiled(name = "crlf
")]
fn raw_line_break() {}

#[profiled(name = "nul\0")]
fn nul() {}

#[profiled(name = "tab\tkey")]
fn tab() {}

#[profiled(name = "del\x7f")]
fn del() {}

// Quotes, backslashes and any other character are allowed.
#[profiled(name = "a\"b \\ ünï ✓")]
fn fine() {}

fn main() {}
