//! Runs saved inputs through a target's oracle and prints what each one
//! breaks: `cargo run -p modulink-fuzz --bin triage -- TARGET FILE...`.

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(target) = args.next() else {
        eprintln!("usage: triage TARGET FILE...");
        std::process::exit(2);
    };
    let Some((_, oracle)) = modulink_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
    else {
        eprintln!("unknown target `{target}`");
        std::process::exit(2);
    };
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = 0;
    for path in args {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) => {
                eprintln!("{path}: {error}");
                std::process::exit(2);
            }
        };
        if let Err(panic) = std::panic::catch_unwind(|| oracle(&bytes)) {
            failed += 1;
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            println!(
                "{path}: {message}\n  input: {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    std::process::exit(i32::from(failed > 0));
}
