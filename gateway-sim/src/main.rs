//! `gateway-sim`: see the README.
fn main() {}
