#![no_main]

#[global_allocator]
static ALLOCATOR: floe_alloc::LazyHuge = floe_alloc::LazyHuge;

libfuzzer_sys::fuzz_target!(|data: &[u8]| floe_schema::fuzzing::compile_schema(data));
