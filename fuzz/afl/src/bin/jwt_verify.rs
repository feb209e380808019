//! AFL++ target `jwt_verify`: see `modulink_fuzz::jwt_verify`.

fn main() {
    afl::fuzz!(|data: &[u8]| modulink_fuzz::jwt_verify(data));
}
