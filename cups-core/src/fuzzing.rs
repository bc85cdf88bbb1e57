//! Fuzz entry points, shared by `fuzz/` and the unit tests. Every function here must return
//! without panicking for any input.
