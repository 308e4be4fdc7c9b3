//! Replays every input the fuzzers found (`fuzz/regressions/<target>/`)
//! through the same entry points the fuzzers call, so that a crash, once
//! fixed, stays fixed.

use std::path::PathBuf;

/// The broker's allocator: frames that claim huge counts reserve address
/// space, as in `floe`.
#[global_allocator]
static ALLOCATOR: floe_alloc::LazyHuge = floe_alloc::LazyHuge;

fn replay(target: &str, run: fn(&[u8])) {
    // Where cargo runs the test from (it sets the variable at run time
    // too): a build cache shared between checkouts may hold a binary
    // compiled in another one.
    let manifest_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = PathBuf::from(manifest_dir)
        .join("../fuzz/regressions")
        .join(target);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    inputs.sort();
    for path in inputs {
        eprintln!("{}", path.display());
        run(&std::fs::read(&path).unwrap());
    }
}

#[test]
fn frames_found_by_the_fuzzer_decode_without_crashing() {
    replay("frame", floe_protocol::fuzzing::frame);
}

#[test]
fn record_batches_found_by_the_fuzzer_decode_without_crashing() {
    replay("record_batches", floe_protocol::fuzzing::record_batches);
}

#[test]
fn prefixes_found_by_the_fuzzer_parse_without_crashing() {
    replay("prefix", floe_schema::fuzzing::prefix);
}

#[test]
fn values_found_by_the_fuzzer_validate_without_crashing() {
    replay("validate", floe_schema::fuzzing::validate);
}

#[test]
fn values_found_by_the_fuzzer_round_trip_through_typed_columns() {
    replay("typed", floe_schema::fuzzing::typed);
}

#[test]
fn schemas_found_by_the_fuzzer_compile_without_crashing() {
    replay("compile", floe_schema::fuzzing::compile_schema);
}
