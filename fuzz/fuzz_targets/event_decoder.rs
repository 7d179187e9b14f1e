//! cargo fuzz target: `gatehouse::fuzzing::event_decoder` must answer any input without panicking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::event_decoder(data));
