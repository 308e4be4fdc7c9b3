#![no_main]

#[global_allocator]
static ALLOCATOR: floe_alloc::LazyHuge = floe_alloc::LazyHuge;

libfuzzer_sys::fuzz_target!(
    init: {
        // floe catches a panic of prost-reflect on malformed descriptors
        // (see `floe_schema::compile`); libFuzzer's hook would abort on it
        // before the catch. Without the hook, a panic nobody catches still
        // aborts where it leaves the target, and is reported.
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| floe_schema::fuzzing::compile_schema(data)
);
