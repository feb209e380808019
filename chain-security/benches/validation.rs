//! A full registration validation (deserialize, check every rule,
//! sanitize), side by side with deserialization alone.
//!
//! Run with `cargo bench -p chain-security --bench validation`.

/// The cookbook's models, which live with the workspace's examples.
#[path = "../../examples/src/models.rs"]
#[allow(dead_code, unreachable_pub)] // The bench uses the registration model only.
mod models;

use std::hint::black_box;

use bench_support::run_now;
use chain_core::{Chain, Context};
use chain_security::validation::{Sanitize, validate_input};
use criterion::{Criterion, criterion_group, criterion_main};
use models::UserRegistration;
use serde_json::json;

fn registration(c: &mut Criterion) {
    let input = json!({
        "username": "ada_1815",
        "email": "ada@example.com",
        "password": "Analytical1",
        "full_name": "Ada <em>Lovelace</em>",
        "phone": "555-123-4567",
    });
    let chain = Chain::named("registration")
        .link(validate_input::<UserRegistration>())
        .link(Sanitize::new());
    let mut group = c.benchmark_group("registration");
    group.bench_function("deserialize_only", |b| {
        b.iter(|| {
            black_box(serde_json::from_value::<UserRegistration>(black_box(
                input.clone(),
            )))
        })
    });
    group.bench_function("validate_and_sanitize", |b| {
        b.iter(|| {
            run_now(chain.execute(Context::new().with("input_data", black_box(input.clone()))))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = bench_support::criterion();
    targets = registration
}
criterion_main!(benches);
