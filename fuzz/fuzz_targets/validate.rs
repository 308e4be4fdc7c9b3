#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| floe_schema::fuzzing::validate(data));
