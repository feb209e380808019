//! Chain overhead against its baselines, measured side by side in one run:
//!
//! - `typed`: 10 trivial links on a typed context vs the same 10 async
//!   functions awaited by hand (the physical limit);
//! - `context_insert`: 10 links on `Context`, each inserting one key, vs the
//!   hand-written equivalent, vs the same steps type-erased and looped over
//!   by hand (the floor for any dynamic chain), and vs the same 10 steps as
//!   a tower stack, statically typed from `ServiceBuilder` as tower's users
//!   write it and as `BoxService`s; also as one fused run and as sync links;
//! - `timing`: timing over 10 links, as an observer and as middleware, vs
//!   hand-written timing (one clock read per link boundary); plus a
//!   pass-through middleware to isolate the cost of the middleware
//!   mechanism, and the floor of any type-erased middleware (links and a
//!   pass-through middleware boxed and looped by hand).
//!
//! Every future here completes without waiting, so each is polled once with
//! a no-op waker: no runtime is in the measurement, for the chain or the
//! baselines. Run with `cargo bench -p chain-core --bench chain_overhead`.

use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use bench_support::run_now;
use chain_core::middleware::{LinkTiming, from_fn, timing};
use chain_core::{Chain, Context, Error, Next, Result, fused};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::util::BoxService;
use tower::{Service, ServiceExt};

#[derive(Default)]
struct Typed {
    n: u64,
}

async fn bump(mut ctx: Typed) -> Result<Typed> {
    ctx.n = black_box(ctx.n + 1);
    Ok(ctx)
}

async fn typed_by_hand(ctx: Typed) -> Result<Typed> {
    let ctx = bump(ctx).await?;
    let ctx = bump(ctx).await?;
    let ctx = bump(ctx).await?;
    let ctx = bump(ctx).await?;
    let ctx = bump(ctx).await?;
    let ctx = bump(ctx).await?;
    let ctx = bump(ctx).await?;
    let ctx = bump(ctx).await?;
    let ctx = bump(ctx).await?;
    bump(ctx).await
}

fn typed(c: &mut Criterion) {
    let chain = (0..10).fold(Chain::<Typed>::new(), |chain, _| chain.link(bump));
    let mut group = c.benchmark_group("typed_10_links");
    group.bench_function("hand_written", |b| {
        b.iter(|| run_now(typed_by_hand(black_box(Typed::default()))))
    });
    group.bench_function("chain", |b| {
        b.iter(|| run_now(chain.execute(black_box(Typed::default()))))
    });
    group.finish();
}

const KEYS: [&str; 10] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"];

macro_rules! insert_steps {
    ($($name:ident => $index:literal),*) => {
        $(
            async fn $name(mut ctx: Context) -> Result<Context> {
                ctx.insert(KEYS[$index], $index);
                Ok(ctx)
            }
        )*
    };
}

insert_steps!(s0 => 0, s1 => 1, s2 => 2, s3 => 3, s4 => 4, s5 => 5, s6 => 6, s7 => 7, s8 => 8, s9 => 9);

async fn inserts_by_hand(ctx: Context) -> Result<Context> {
    let ctx = s0(ctx).await?;
    let ctx = s1(ctx).await?;
    let ctx = s2(ctx).await?;
    let ctx = s3(ctx).await?;
    let ctx = s4(ctx).await?;
    let ctx = s5(ctx).await?;
    let ctx = s6(ctx).await?;
    let ctx = s7(ctx).await?;
    let ctx = s8(ctx).await?;
    s9(ctx).await
}

/// The floor for any chain that stores its links type-erased: the same ten
/// steps as boxed closures returning boxed futures, looped over by hand,
/// with no names, error locations or panic capture.
type ErasedStep = Box<dyn Fn(Context) -> chain_core::BoxFuture<'static, Result<Context>>>;

fn erased_steps() -> Vec<ErasedStep> {
    fn erase<F, Fut>(step: F) -> ErasedStep
    where
        F: Fn(Context) -> Fut + 'static,
        Fut: Future<Output = Result<Context>> + Send + 'static,
    {
        Box::new(move |ctx| Box::pin(step(ctx)))
    }
    vec![
        erase(s0),
        erase(s1),
        erase(s2),
        erase(s3),
        erase(s4),
        erase(s5),
        erase(s6),
        erase(s7),
        erase(s8),
        erase(s9),
    ]
}

async fn erased_by_hand(mut ctx: Context, steps: &[ErasedStep]) -> Result<Context> {
    for step in steps {
        ctx = step(ctx).await?;
    }
    Ok(ctx)
}

macro_rules! insert_steps_sync {
    ($($name:ident => $index:literal),*) => {
        $(
            fn $name(mut ctx: Context) -> Result<Context> {
                ctx.insert(KEYS[$index], $index);
                Ok(ctx)
            }
        )*
    };
}

insert_steps_sync!(y0 => 0, y1 => 1, y2 => 2, y3 => 3, y4 => 4, y5 => 5, y6 => 6, y7 => 7, y8 => 8, y9 => 9);

fn insert_chain_sync() -> Chain {
    Chain::new()
        .link_sync(y0)
        .link_sync(y1)
        .link_sync(y2)
        .link_sync(y3)
        .link_sync(y4)
        .link_sync(y5)
        .link_sync(y6)
        .link_sync(y7)
        .link_sync(y8)
        .link_sync(y9)
}

fn insert_chain() -> Chain {
    Chain::new()
        .link(s0)
        .link(s1)
        .link(s2)
        .link(s3)
        .link(s4)
        .link(s5)
        .link(s6)
        .link(s7)
        .link(s8)
        .link(s9)
}

/// One tower layer per step: inserts its key, then calls the inner service.
struct InsertThen {
    key: &'static str,
    value: usize,
    inner: BoxService<Context, Context, Error>,
}

impl Service<Context> for InsertThen {
    type Response = Context;
    type Error = Error;
    type Future = <BoxService<Context, Context, Error> as Service<Context>>::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut ctx: Context) -> Self::Future {
        ctx.insert(self.key, self.value);
        self.inner.call(ctx)
    }
}

/// The same step as a layer, for a statically typed `ServiceBuilder` stack:
/// the way tower's users build one, every layer's type known, nothing
/// boxed.
#[derive(Clone)]
struct InsertLayer {
    key: &'static str,
    value: usize,
}

impl<S> tower::Layer<S> for InsertLayer {
    type Service = Insert<S>;

    fn layer(&self, inner: S) -> Insert<S> {
        Insert {
            key: self.key,
            value: self.value,
            inner,
        }
    }
}

struct Insert<S> {
    key: &'static str,
    value: usize,
    inner: S,
}

impl<S: Service<Context, Response = Context, Error = Error>> Service<Context> for Insert<S> {
    type Response = Context;
    type Error = Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut ctx: Context) -> Self::Future {
        ctx.insert(self.key, self.value);
        self.inner.call(ctx)
    }
}

fn tower_static_stack() -> impl Service<Context, Response = Context, Error = Error> {
    let layer = |index: usize| InsertLayer {
        key: KEYS[index],
        value: index,
    };
    tower::ServiceBuilder::new()
        .layer(layer(0))
        .layer(layer(1))
        .layer(layer(2))
        .layer(layer(3))
        .layer(layer(4))
        .layer(layer(5))
        .layer(layer(6))
        .layer(layer(7))
        .layer(layer(8))
        .layer(layer(9))
        .service(tower::service_fn(|ctx: Context| async move {
            Ok::<_, Error>(ctx)
        }))
}

fn tower_stack() -> BoxService<Context, Context, Error> {
    let innermost = BoxService::new(tower::service_fn(|ctx: Context| async move { Ok(ctx) }));
    (0..10).rev().fold(innermost, |inner, index| {
        BoxService::new(InsertThen {
            key: KEYS[index],
            value: index,
            inner,
        })
    })
}

fn context_insert(c: &mut Criterion) {
    let chain = insert_chain();
    let mut stack = tower_stack();
    let mut group = c.benchmark_group("context_10_inserts");
    group.bench_function("hand_written", |b| {
        b.iter(|| run_now(inserts_by_hand(black_box(Context::new()))))
    });
    let erased = erased_steps();
    group.bench_function("erased_by_hand", |b| {
        b.iter(|| run_now(erased_by_hand(black_box(Context::new()), &erased)))
    });
    group.bench_function("chain", |b| {
        b.iter(|| run_now(chain.execute(black_box(Context::new()))))
    });
    let fused_chain = Chain::new().link(fused("inserts", (s0, s1, s2, s3, s4, s5, s6, s7, s8, s9)));
    group.bench_function("chain_fused_links", |b| {
        b.iter(|| run_now(fused_chain.execute(black_box(Context::new()))))
    });
    let sync_chain = insert_chain_sync();
    group.bench_function("chain_sync_links", |b| {
        b.iter(|| run_now(sync_chain.execute(black_box(Context::new()))))
    });
    let mut static_stack = tower_static_stack();
    group.bench_function("tower_service_builder", |b| {
        b.iter(|| {
            run_now(async {
                static_stack
                    .ready()
                    .await?
                    .call(black_box(Context::new()))
                    .await
            })
        })
    });
    group.bench_function("tower_box_service", |b| {
        b.iter(|| run_now(async { stack.ready().await?.call(black_box(Context::new())).await }))
    });
    group.finish();
}

async fn pass(ctx: Context) -> Result<Context> {
    Ok(black_box(ctx))
}

/// What the timing middleware does, written out as a careful person would:
/// one clock read per link boundary (the end of one link is the start of
/// the next), and the record allocated once at its final size.
async fn timed_by_hand(mut ctx: Context, names: &[Arc<str>]) -> Result<Context> {
    let mut timings = Vec::with_capacity(names.len());
    let mut boundary = Instant::now();
    for (index, name) in names.iter().enumerate() {
        ctx = pass(ctx).await?;
        let now = Instant::now();
        timings.push(LinkTiming {
            name: Arc::clone(name),
            index: Some(index),
            duration: now - boundary,
        });
        boundary = now;
    }
    ctx.insert_ext(timings);
    Ok(ctx)
}

async fn plain_by_hand(mut ctx: Context) -> Result<Context> {
    for _ in 0..10 {
        ctx = pass(ctx).await?;
    }
    Ok(ctx)
}

/// The floor for a type-erased middleware around type-erased links, the
/// way the erased-link floor is measured: each link a boxed closure
/// returning a boxed future, each middleware a boxed closure handed the
/// link by reference (no reference count) returning a boxed future of its
/// own, looped over by hand with no names, error locations or panic
/// capture. Two boxed futures per link is the least any chain pays that
/// stores both type-erased.
type ErasedPass = Box<dyn Fn(Context) -> chain_core::BoxFuture<'static, Result<Context>> + Sync>;
type ErasedAround =
    Box<dyn for<'a> Fn(Context, &'a ErasedPass) -> chain_core::BoxFuture<'a, Result<Context>>>;

fn erased_passes() -> Vec<ErasedPass> {
    (0..10)
        .map(|_| {
            Box::new(|ctx| Box::pin(pass(ctx)) as chain_core::BoxFuture<'static, _>) as ErasedPass
        })
        .collect()
}

fn erased_around() -> ErasedAround {
    Box::new(|ctx, next| Box::pin(async move { next(ctx).await }))
}

async fn erased_plain_by_hand(mut ctx: Context, links: &[ErasedPass]) -> Result<Context> {
    for link in links {
        ctx = link(ctx).await?;
    }
    Ok(ctx)
}

async fn erased_around_by_hand(
    mut ctx: Context,
    links: &[ErasedPass],
    around: &ErasedAround,
) -> Result<Context> {
    for link in links {
        ctx = around(ctx, link).await?;
    }
    Ok(ctx)
}

fn timing_middleware(c: &mut Criterion) {
    let names: Vec<Arc<str>> = (0..10).map(|_| Arc::from("pass")).collect();
    let plain = (0..10).fold(Chain::new(), |chain, _| chain.link(pass));
    let observed = plain.clone().observe(timing());
    let wrapped = plain.clone().around_each(timing());
    let passthrough = plain
        .clone()
        .around_each(from_fn(|ctx: Context, next: Next<Context>| next.run(ctx)));
    let mut group = c.benchmark_group("timing_10_links");
    group.bench_function("hand_written_plain", |b| {
        b.iter(|| run_now(plain_by_hand(black_box(Context::new()))))
    });
    group.bench_function("hand_written_timed", |b| {
        b.iter(|| run_now(timed_by_hand(black_box(Context::new()), &names)))
    });
    group.bench_function("chain_plain", |b| {
        b.iter(|| run_now(plain.execute(black_box(Context::new()))))
    });
    group.bench_function("chain_timing_observer", |b| {
        b.iter(|| run_now(observed.execute(black_box(Context::new()))))
    });
    group.bench_function("chain_timing_middleware", |b| {
        b.iter(|| run_now(wrapped.execute(black_box(Context::new()))))
    });
    group.bench_function("chain_passthrough_middleware", |b| {
        b.iter(|| run_now(passthrough.execute(black_box(Context::new()))))
    });
    let links = erased_passes();
    let around = erased_around();
    group.bench_function("erased_plain_by_hand", |b| {
        b.iter(|| run_now(erased_plain_by_hand(black_box(Context::new()), &links)))
    });
    group.bench_function("erased_passthrough_by_hand", |b| {
        b.iter(|| {
            run_now(erased_around_by_hand(
                black_box(Context::new()),
                &links,
                &around,
            ))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = bench_support::criterion();
    targets = typed, context_insert, timing_middleware
}
criterion_main!(benches);
