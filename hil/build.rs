//! Declares the `hil_lns` cfg (see `src/lns_glue.rs`) so `unexpected_cfgs` accepts it.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(hil_lns)");
}
