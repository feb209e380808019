//! HS256 verification through `JwtKeys::verify` (alg check, key lookup,
//! claims), side by side with a bare `jsonwebtoken::decode`.
//!
//! Run with `cargo bench -p chain-security --bench jwt`.

use std::hint::black_box;

use chain_security::auth::{Claims, JwtKeys, JwtSettings, Role, SigningKey};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

fn hs256_verification(c: &mut Criterion) {
    let secret = [42_u8; 32];
    let keys = JwtKeys::new(
        SigningKey::hmac("k1", &secret).unwrap_or_else(|e| panic!("{e}")),
        JwtSettings::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let token = keys
        .sign(&keys.claims_for("ada", &Role::User))
        .unwrap_or_else(|e| panic!("{e}"));
    let bare_key = DecodingKey::from_secret(&secret).unwrap_or_else(|e| panic!("{e}"));
    let bare_validation = Validation::new(Algorithm::HS256);

    let mut group = c.benchmark_group("hs256_verify");
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            black_box(
                jsonwebtoken::decode::<Claims>(black_box(&token), &bare_key, &bare_validation)
                    .is_ok(),
            )
        })
    });
    group.bench_function("jwt_keys_verify", |b| {
        b.iter(|| black_box(keys.verify(black_box(&token)).is_ok()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = bench_support::criterion();
    targets = hs256_verification
}
criterion_main!(benches);
