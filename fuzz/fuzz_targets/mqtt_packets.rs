//! cargo fuzz target: `gatehouse::fuzzing::mqtt_packets` must answer any input without panicking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::mqtt_packets(data));
