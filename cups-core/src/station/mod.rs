//! A sans-IO LoRa Basics Station CUPS client state machine.
//!
//! SKELETON: to be written.
