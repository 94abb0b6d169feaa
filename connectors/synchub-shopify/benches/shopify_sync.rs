//! Pull benchmark.
fn main() {}
