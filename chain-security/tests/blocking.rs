//! bcrypt runs on blocking threads: 50 concurrent logins do not delay an
//! unrelated 1 ms timer task by more than 5 ms.
//!
//! Judged on the 99th percentile of the timer's lateness, and on its worst
//! tick beyond the worst of a plain OS thread sleeping 1 ms at the same
//! time: this machine is shared, and a descheduling of the whole process by
//! the OS says nothing about the runtime. Hashing on the runtime's own
//! threads would fail both bounds by far (each hash takes tens of
//! milliseconds) while leaving the OS thread on time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The worst lateness of a 1 ms sleep on an OS thread of its own, until
/// `stop` is set: what the machine alone does to a timer.
fn machine_lateness(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let mut worst = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            let asked = Instant::now();
            std::thread::sleep(Duration::from_millis(1));
            worst = worst.max(asked.elapsed().saturating_sub(Duration::from_millis(1)));
        }
        worst
    })
}

use chain_security::auth::{
    AuthConfig, AuthManager, JwtKeys, JwtSettings, MemoryUserStore, Role, SigningKey,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_do_not_stall_the_runtime() {
    let keys = JwtKeys::new(
        SigningKey::hmac("k1", &[9; 32]).unwrap(),
        JwtSettings::default(),
    )
    .unwrap();
    // Cost 8: each hash is still real work (tens of milliseconds in a test build).
    let auth = AuthManager::new(
        MemoryUserStore::new(),
        keys,
        AuthConfig {
            bcrypt_cost: 8,
            ..AuthConfig::default()
        },
    );
    auth.create_user("ada", "Analytical1", Role::User)
        .await
        .unwrap();

    let stop_reference = Arc::new(AtomicBool::new(false));
    let reference = machine_lateness(Arc::clone(&stop_reference));
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let timer = tokio::spawn(async move {
        let mut lateness = Vec::new();
        loop {
            let asked = Instant::now();
            tokio::select! {
                _ = &mut stopped => break,
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
            lateness.push(asked.elapsed().saturating_sub(Duration::from_millis(1)));
        }
        lateness
    });

    let logins: Vec<_> = (0..50)
        .map(|_| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.authenticate("ada", "Analytical1").await })
        })
        .collect();
    for login in logins {
        login.await.unwrap().unwrap();
    }
    stop.send(()).unwrap();
    let mut lateness = timer.await.unwrap();
    stop_reference.store(true, Ordering::Relaxed);
    let machine_worst = reference.join().unwrap();
    lateness.sort_unstable();
    let ticks = lateness.len();
    assert!(
        ticks > 100,
        "the timer kept ticking during the logins ({ticks} ticks)"
    );
    let p99 = lateness[ticks * 99 / 100];
    let worst = lateness[ticks - 1];
    assert!(
        p99 <= Duration::from_millis(5),
        "a 1 ms timer was late by {p99:?} at p99 (worst {worst:?})"
    );
    assert!(
        worst <= Duration::from_millis(20) + machine_worst,
        "a 1 ms timer was late by {worst:?}, an OS thread by at most {machine_worst:?}"
    );
}
