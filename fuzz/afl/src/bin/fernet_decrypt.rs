//! AFL++ target `fernet_decrypt`: see `modulink_fuzz::fernet_decrypt`.

fn main() {
    afl::fuzz!(|data: &[u8]| modulink_fuzz::fernet_decrypt(data));
}
