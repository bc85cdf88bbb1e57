//! Shared freestanding runtime for the no_std check binaries: a panic handler and the C entry
//! point glue. Deliberately no global allocator: if cups-core (default features off) pulled in
//! `alloc`, linking the binaries fails with "no global memory allocator found"; if it pulled in
//! `std`, the `#[panic_handler]` below collides with std's and the build fails.
#![no_std]

use core::panic::PanicInfo;

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

// The host's C runtime (crt1.o) calls `main` through `__libc_start_main`; link libc for it.
// Nothing of Rust's std is linked.
#[link(name = "c")]
unsafe extern "C" {}
