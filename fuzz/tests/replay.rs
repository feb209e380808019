//! Replays every saved input of every fuzz target through its oracle: the
//! seeds, the corpora the fuzzer minimized (`fuzz/run.sh`), and each crash
//! it found (kept under `regressions/` once fixed). A regression of a fixed
//! crash, or an oracle broken by a change, fails here in CI.

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for kind in ["seeds", "corpus", "regressions"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                found.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_saved_input_passes_its_oracle() {
    for (target, oracle) in modulink_fuzz::TARGETS {
        let inputs = inputs(target);
        assert!(
            !inputs.is_empty(),
            "no saved inputs for `{target}`: fuzz/seeds/{target} is missing"
        );
        for (path, bytes) in &inputs {
            if let Err(panic) = std::panic::catch_unwind(|| oracle(bytes)) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                panic!("{path} fails `{target}`: {message}");
            }
        }
        println!("{target}: {} inputs replayed", inputs.len());
    }
}
