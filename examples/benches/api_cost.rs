//! What the API issue changed costs nothing: the renamed middleware
//! attachment (`around_each`, once `middleware`) and the sibling crates'
//! middleware made generic over the context (tracing, `auth()`, keyed rate
//! limits, `Parallel`), each measured on the same chain.
//!
//! `bench/api_cost.sh` runs this file at the commit before the change and
//! now, and writes the comparison table of `BENCHMARKS.md`. It uses only
//! what both versions have (the script spells `around_each` as the old
//! `middleware` for the old one), which is why it sets up its users itself
//! rather than with `examples::test_users`.

use std::hint::black_box;

use bench_support::{criterion, run_now};
use criterion::{Criterion, criterion_group, criterion_main};
use modulink::middleware::timing;
use modulink::observability::Tracer;
use modulink::resilience::RateLimiter;
use modulink::security::auth::{
    AuthConfig, AuthManager, JwtKeys, JwtSettings, MemoryUserStore, Role, SigningKey, auth,
};
use modulink::{Chain, Context, Parallel, RequestMeta};

fn links(n: usize) -> Chain {
    (0..n).fold(Chain::named("bench"), |chain, _| chain.link_sync(Ok))
}

fn api_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("api_cost");

    let each = links(10).around_each(timing());
    group.bench_function("around_each_timing_10_links", |b| {
        b.iter(|| run_now(each.execute(black_box(Context::new()))))
    });

    let parallel = Chain::new().parallel(
        Parallel::new()
            .branch(|ctx: Context| async move { Ok(ctx.with("a", 1)) })
            .branch(|ctx: Context| async move { Ok(ctx.with("b", 2)) })
            .branch(|ctx: Context| async move { Ok(ctx.with("c", 3)) }),
    );
    group.bench_function("parallel_3_branches", |b| {
        b.iter(|| run_now(parallel.execute(black_box(Context::new().with("id", 7)))))
    });

    let traced = Tracer::new().instrument(links(10));
    group.bench_function("tracer_10_links", |b| {
        b.iter(|| run_now(traced.execute(black_box(Context::new()))))
    });

    let keys = JwtKeys::new(
        SigningKey::hmac("k1", &[7; 32]).unwrap_or_else(|error| panic!("{error}")),
        JwtSettings::default(),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let users = AuthManager::new(
        MemoryUserStore::new(),
        keys,
        AuthConfig {
            bcrypt_cost: 4,
            ..AuthConfig::default()
        },
    );
    // Logging in hashes on a blocking thread: a runtime, for the setup only.
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|error| panic!("{error}"));
    let token = runtime.block_on(async {
        users
            .create_user("ada", "Analytical1", Role::User)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        users
            .authenticate("ada", "Analytical1")
            .await
            .unwrap_or_else(|error| panic!("{error}"))
            .access_token
    });
    let request = RequestMeta::new().with_header("Authorization", format!("Bearer {token}"));
    let authenticated = links(5).around(auth(&users, [Role::User]));
    group.bench_function("auth_around_5_links", |b| {
        b.iter(|| {
            run_now(authenticated.execute(black_box(Context::new().with_ext(request.clone()))))
        })
    });

    let limited = links(3).around(
        RateLimiter::per_second("bench", u32::MAX)
            .burst(1_000_000)
            .keyed_by("user_id"),
    );
    group.bench_function("keyed_limit_around_3_links", |b| {
        b.iter(|| run_now(limited.execute(black_box(Context::new().with("user_id", "ada")))))
    });

    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = api_cost
}
criterion_main!(benches);
