//! AFL++ target `context_json`: see `modulink_fuzz::context_json`.

fn main() {
    afl::fuzz!(|data: &[u8]| modulink_fuzz::context_json(data));
}
