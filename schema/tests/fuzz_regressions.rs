//! Replays every input the fuzzers found (`fuzz/regressions/<target>/`),
//! so that a crash, once fixed, stays fixed.

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != ".gitkeep"))
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn prefixes_found_by_the_fuzzer_parse_without_crashing() {
    for (path, data) in inputs("prefix") {
        eprintln!("{}", path.display());
        floe_schema::fuzzing::prefix(&data);
    }
}

#[test]
fn values_found_by_the_fuzzer_validate_without_crashing() {
    for (path, data) in inputs("validate") {
        eprintln!("{}", path.display());
        floe_schema::fuzzing::validate(&data);
    }
}

#[test]
fn values_found_by_the_fuzzer_round_trip_through_typed_columns() {
    for (path, data) in inputs("typed") {
        eprintln!("{}", path.display());
        floe_schema::fuzzing::typed(&data);
    }
}
