//! # cups-core — the CUPS protocol of LoRa Basics Station, without std and without a heap
//!
//! A gateway running LoRa Basics Station asks its CUPS server, in one `POST /update-info`,
//! "here is what I hold — is there anything new?" and gets back one binary body:
//!
//! ```text
//!  request (JSON, compact, field order fixed)          response (binary, little-endian)
//!  {"router":"16:c001:ff10:a235",                      u8  len | cupsUri  (ASCII)
//!   "cupsUri":"https://host:port"|null,                u8  len | tcUri    (ASCII)
//!   "tcUri":"wss://host:port"|null,                    u16 len | cupsCred (blob)
//!   "cupsCredCrc":u32, "tcCredCrc":u32,                u16 len | tcCred   (blob)
//!   "station":"2.0.6(...) ...", "model":"linux",       u32 len | sig = u32 keyCRC ‖ DER ECDSA
//!   "package":"1.0.0"|null, "keys":[u32,...]}          u32 len | update (streamed)
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`eui`] | EUI-64 parsing in every form the station accepts; ID6 and canonical rendering |
//! | [`crc`] | the station's CRC-32 and credential-set CRC |
//! | [`request`] | `UpdateInfo`: decode without allocation, encode byte-exact |
//! | [`cred`] | credential blobs: build, split exactly as the station does, station-safety check |
//! | [`response`] | response encoder (head + streamed update) and sans-IO push decoder |
//! | [`sig`] | streaming SHA-512 + ECDSA P-256 update verification; signer behind a feature |
//! | [`station`] | a sans-IO Basics Station client state machine |
//!
//! ## Features
//!
//! | feature | default | effect |
//! |---|---|---|
//! | `alloc` | no | owned conveniences (`String`/`Vec` outputs) |
//! | `std` | no | implies `alloc` |
//! | `rustcrypto` | no | ECDSA P-256 verifier from RustCrypto (`p256`) |
//! | `signer` | no | update signer (implies `rustcrypto`) |
//! | `log` / `defmt` | no | logging facade (mutually exclusive) |
//!
//! The core never reads a clock, a socket, a file or a random number generator: callers pass
//! bytes and `now` in and get events and deadlines out. Every buffer belongs to the caller.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
    )
)]

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!("features `log` and `defmt` are mutually exclusive");

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod crc;
pub mod cred;
pub mod error;
pub mod eui;
pub mod request;
pub mod response;
pub mod sig;
pub mod station;

#[cfg(any(fuzzing, test))]
pub mod fuzzing;

pub use error::Error;
pub use eui::Eui64;
