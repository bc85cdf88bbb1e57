//! `cups-server`: see the README.
fn main() {}
