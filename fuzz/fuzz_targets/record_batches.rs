#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| floe_protocol::fuzzing::record_batches(data));
