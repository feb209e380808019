//! AFL++ target `validate_input`: see `modulink_fuzz::validate_input_json`.

fn main() {
    afl::fuzz!(|data: &[u8]| modulink_fuzz::validate_input_json(data));
}
