//! gateway-sim: simulated LoRa Basics Station fleets (see the crate README section in the
//! repository README).
