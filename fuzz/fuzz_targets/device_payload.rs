//! cargo fuzz target: `gatehouse::fuzzing::device_payload` must answer any input without panicking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::device_payload(data));
