//! The resource pool: fan-out modes, limits, rejection, statistics and the
//! performance report.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use chain_core::{Chain, Context, Error, ErrorKind};
use chain_scaling::parallel::{Mode, Overflow, PoolSettings, ResourcePool};
use tokio::sync::{Barrier, Semaphore};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn async_fan_out_runs_branches_concurrently_and_merges_in_order() {
    let pool = ResourcePool::new(PoolSettings::named("io"));
    let barrier = Arc::new(Barrier::new(2));
    let branch = |name: &'static str| {
        let barrier = Arc::clone(&barrier);
        Chain::named(name).link(move |ctx: Context| {
            let barrier = Arc::clone(&barrier);
            async move {
                // Both branches must be running for either to pass.
                barrier.wait().await;
                Ok(ctx.with(name, "done"))
            }
        })
    };
    let chain = Chain::named("io").link(pool.fan_out(Mode::Async, [branch("a"), branch("b")]));
    let out = tokio::time::timeout(WAIT, chain.execute(Context::new().with("id", 1)))
        .await
        .expect("branches ran concurrently")
        .unwrap();
    assert_eq!(out.keys().collect::<Vec<_>>(), ["id", "a", "b"]);
    let stats = pool.stats(Mode::Async);
    assert_eq!((stats.count, stats.failures), (1, 0));
}

/// A typed context fans out on blocking threads and is merged by the
/// caller's function, outputs in branch order.
#[tokio::test]
async fn a_typed_context_fans_out_and_merges_by_its_own_rule() {
    #[derive(Clone, Debug, Default, PartialEq)]
    struct Sums {
        input: u64,
        parts: Vec<u64>,
    }
    let pool = ResourcePool::new(PoolSettings::named("typed"));
    let part = |factor: u64| {
        Chain::<Sums>::named(format!("x{factor}")).link_sync(move |mut sums: Sums| {
            sums.parts = vec![sums.input * factor];
            Ok(sums)
        })
    };
    let fan_out = pool.fan_out_merging(
        Mode::Blocking,
        [part(2), part(3), part(5)],
        |mut sums: Sums, outputs: Vec<Sums>| {
            sums.parts = outputs.into_iter().flat_map(|out| out.parts).collect();
            Ok(sums)
        },
    );
    let out = Chain::named("typed")
        .link(fan_out)
        .execute(Sums {
            input: 7,
            parts: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(out.parts, [14, 21, 35]);
    assert_eq!(pool.stats(Mode::Blocking).count, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_fan_out_runs_cpu_work_on_parallel_threads_off_the_runtime() {
    let pool = ResourcePool::new(PoolSettings::named("cpu").blocking_threads(2));
    let (to_b, from_a) = mpsc::channel::<()>();
    let (to_a, from_b) = mpsc::channel::<()>();
    let meet = |name: &'static str, send: mpsc::Sender<()>, receive: mpsc::Receiver<()>| {
        let receive = std::sync::Mutex::new(receive);
        Chain::named(name).link_sync(move |ctx: Context| {
            // A synchronous rendezvous: only possible if both branches run
            // at the same time on threads other than the runtime's one.
            send.send(()).map_err(Error::internal_from)?;
            receive
                .lock()
                .unwrap()
                .recv_timeout(WAIT)
                .map_err(|_| Error::timeout(format!("{name} ran alone")))?;
            Ok(ctx.with(name, format!("{:?}", std::thread::current().id())))
        })
    };
    let chain = Chain::named("cpu").link(pool.fan_out(
        Mode::Blocking,
        [meet("a", to_b, from_b), meet("b", to_a, from_a)],
    ));
    let out = chain.execute(Context::new()).await.unwrap();
    assert_ne!(out.get_value("a"), out.get_value("b"), "two threads");
    assert_eq!(pool.stats(Mode::Blocking).count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_threads_are_bounded() {
    let pool = ResourcePool::new(PoolSettings::named("cpu").blocking_threads(2));
    let active = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let branch = |name: &'static str| {
        let (active, most) = (Arc::clone(&active), Arc::clone(&most));
        Chain::named(name).link_sync(move |ctx: Context| {
            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            // CPU-bound work stand-in that holds the thread.
            std::thread::sleep(Duration::from_millis(30));
            active.fetch_sub(1, Ordering::SeqCst);
            Ok(ctx.with(name, true))
        })
    };
    let chain = Chain::named("cpu").link(pool.fan_out(
        Mode::Blocking,
        [branch("a"), branch("b"), branch("c"), branch("d")],
    ));
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(most.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failing_branch_is_named_in_the_error() {
    let pool = ResourcePool::new(PoolSettings::named("io"));
    let ok = Chain::named("fine").link_sync(|ctx: Context| Ok(ctx.with("fine", true)));
    let bad = Chain::named("inventory")
        .link_sync(|_: Context| Err::<Context, _>(Error::unavailable("inventory is down")));
    let chain = Chain::named("order").link(pool.fan_out(Mode::Blocking, [ok, bad]));
    let error = chain.execute(Context::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert!(error.to_string().contains("`inventory`"), "{error}");
    assert_eq!(pool.stats(Mode::Blocking).failures, 1);
}

/// A chain that holds its pool slot until `gate` gets a permit.
fn held(gate: Arc<Semaphore>, started: Arc<Semaphore>) -> Chain {
    Chain::named("held").link(move |ctx: Context| {
        let (gate, started) = (Arc::clone(&gate), Arc::clone(&started));
        async move {
            started.add_permits(1);
            gate.acquire().await.map_err(Error::internal_from)?.forget();
            Ok(ctx)
        }
    })
}

#[tokio::test]
async fn the_excess_is_rejected_when_the_pool_does_not_queue() {
    let pool = ResourcePool::new(
        PoolSettings::named("tight")
            .max_concurrent_chains(1)
            .overflow(Overflow::Reject),
    );
    let (gate, started) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
    let chain = held(Arc::clone(&gate), Arc::clone(&started));
    let first = tokio::spawn({
        let (pool, chain) = (pool.clone(), chain.clone());
        async move { pool.execute(Mode::Async, &chain, Context::new()).await }
    });
    tokio::time::timeout(WAIT, started.acquire())
        .await
        .unwrap()
        .unwrap()
        .forget();

    let error = pool
        .execute(Mode::Async, &chain, Context::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert!(
        error.to_string().contains("resource pool `tight` is full"),
        "{error}"
    );

    gate.add_permits(1);
    first.await.unwrap().unwrap();
    let report = pool.report();
    assert_eq!(report.resource_utilization.rejected, 1);
    assert!(
        report
            .recommendations
            .iter()
            .any(|r| r.contains("1 chains were rejected"))
    );
}

#[tokio::test]
async fn the_excess_waits_in_a_bounded_queue() {
    let pool = ResourcePool::new(
        PoolSettings::named("queued")
            .max_concurrent_chains(1)
            .overflow(Overflow::Queue(1)),
    );
    let (gate, started) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
    let chain = held(Arc::clone(&gate), Arc::clone(&started));
    let spawn = || {
        let (pool, chain) = (pool.clone(), chain.clone());
        tokio::spawn(async move { pool.execute(Mode::Async, &chain, Context::new()).await })
    };
    let first = spawn();
    tokio::time::timeout(WAIT, started.acquire())
        .await
        .unwrap()
        .unwrap()
        .forget();
    let second = spawn();
    // The second is queued once the pool reports it waiting.
    tokio::time::timeout(WAIT, async {
        while pool.report().resource_utilization.waiting == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the second chain queues");
    let error = pool
        .execute(Mode::Async, &chain, Context::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(pool.report().resource_utilization.running, 1);

    gate.add_permits(2);
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    let stats = pool.stats(Mode::Async);
    assert_eq!(stats.count, 2);
    assert!(stats.max_wait > Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_chains_run_in_blocking_mode_and_statistics_feed_the_report() {
    let pool = ResourcePool::new(PoolSettings::named("typed").blocking_threads(2));
    let square = Chain::<u64>::named("square").link_sync(|n: u64| Ok(n * n));
    for n in 0..30u64 {
        assert_eq!(
            pool.execute(Mode::Blocking, &square, n).await.unwrap(),
            n * n
        );
    }
    let stats = pool.stats(Mode::Blocking);
    assert_eq!(stats.count, 30);
    assert!(stats.min <= stats.average && stats.average <= stats.max);
    assert!(stats.p99 <= stats.max);

    let report = pool.report();
    // Squaring a number is far cheaper than a hand-off to a thread.
    assert!(
        report
            .recommendations
            .iter()
            .any(|r| r.contains("run them in async mode")),
        "{report}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["metrics"]["blocking"]["count"], 30);
    assert_eq!(json["resource_utilization"]["blocking_threads"], 2);
    assert!(report.to_string().contains("blocking: 30 runs"));
}

#[tokio::test]
async fn slow_chains_and_outliers_are_recommended_against() {
    let pool =
        ResourcePool::new(PoolSettings::named("slow").slow_average(Duration::from_millis(1)));
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    // Every 25th run is 40x slower than the rest.
    let uneven = Chain::named("uneven").link(move |ctx: Context| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        async move {
            let pause = if n % 25 == 24 { 40 } else { 1 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
            Ok(ctx)
        }
    });
    for _ in 0..50 {
        pool.execute(Mode::Async, &uneven, Context::new())
            .await
            .unwrap();
    }
    let report = pool.report();
    assert!(
        report
            .recommendations
            .iter()
            .any(|r| r.contains("break them down")),
        "{report}"
    );
    assert!(
        report
            .recommendations
            .iter()
            .any(|r| r.contains("high variability")),
        "{report}"
    );
}
