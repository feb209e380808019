//! AFL++ target `validators`: see `modulink_fuzz::validators`.

fn main() {
    afl::fuzz!(|data: &[u8]| modulink_fuzz::validators(data));
}
