//! AFL++ target `sanitize`: see `modulink_fuzz::sanitize`.

fn main() {
    afl::fuzz!(|data: &[u8]| modulink_fuzz::sanitize(data));
}
