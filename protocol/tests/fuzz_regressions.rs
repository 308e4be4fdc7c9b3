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
fn frames_found_by_the_fuzzer_decode_without_crashing() {
    for (path, data) in inputs("frame") {
        eprintln!("{}", path.display());
        floe_protocol::fuzzing::frame(&data);
    }
}

#[test]
fn record_batches_found_by_the_fuzzer_decode_without_crashing() {
    for (path, data) in inputs("record_batches") {
        eprintln!("{}", path.display());
        floe_protocol::fuzzing::record_batches(&data);
    }
}
