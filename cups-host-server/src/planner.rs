//! The planner: a pure function from (what the gateway reports, what the server holds) to which
//! response segments to send, each with its reason. No I/O, no clock: table-tested, and shown to
//! operators as a dry run (`cups-server plan`).
//!
//! SKELETON: API fixed, bodies to be written.
