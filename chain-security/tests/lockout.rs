//! Lockout under attack: concurrent guesses, a flood of made-up names, and
//! real lock durations on tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chain_core::{BoxFuture, Error, ErrorKind, Result};
use chain_security::auth::{
    AuthConfig, AuthFailure, AuthManager, JwtKeys, JwtSettings, LockoutPolicy, MemoryUserStore,
    Role, SigningKey, UserRecord, UserStore,
};

/// A store that counts lookups: every password checked is looked up first,
/// so the count bounds the passwords bcrypt compared.
#[derive(Debug, Default, Clone)]
struct CountingStore {
    users: Arc<MemoryUserStore>,
    lookups: Arc<AtomicUsize>,
}

impl UserStore for CountingStore {
    fn get<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Result<Option<UserRecord>>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.users.get(username)
    }
    fn insert(&self, user: UserRecord) -> BoxFuture<'_, Result<()>> {
        self.users.insert(user)
    }
    fn update(&self, user: UserRecord) -> BoxFuture<'_, Result<()>> {
        self.users.update(user)
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<UserRecord>>> {
        self.users.list()
    }
}

fn keys() -> JwtKeys {
    JwtKeys::new(
        SigningKey::hmac("k1", &[3; 32]).unwrap(),
        JwtSettings::default(),
    )
    .unwrap()
}

fn manager_with(store: CountingStore, lockout: LockoutPolicy) -> AuthManager {
    AuthManager::new(
        store,
        keys(),
        AuthConfig {
            bcrypt_cost: 4,
            lockout,
            max_concurrent_hashes: 2,
            ..AuthConfig::default()
        },
    )
}

fn failure(error: &Error) -> &AuthFailure {
    error
        .downcast_source::<AuthFailure>()
        .unwrap_or_else(|| panic!("an auth failure, got {error}"))
}

fn is_locked(error: &Error) -> bool {
    error.kind() == ErrorKind::Rejected
        && matches!(failure(error), AuthFailure::AccountLocked { .. })
}

const PASSWORD: &str = "Analytical1";

/// Fifty wrong guesses at once: at most `max_failures` are compared, the
/// rest are refused as locked, and the right password sent with them or
/// after them does not get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_cannot_outrun_the_lockout() {
    let store = CountingStore::default();
    let auth = manager_with(store.clone(), LockoutPolicy::default());
    auth.create_user("ada", PASSWORD, Role::User).await.unwrap();
    store.lookups.store(0, Ordering::SeqCst);

    let mut guesses = Vec::new();
    for i in 0..50 {
        let auth = auth.clone();
        guesses.push(tokio::spawn(async move {
            auth.authenticate("ada", &format!("Wrong-guess{i}")).await
        }));
    }
    let right = {
        let auth = auth.clone();
        tokio::spawn(async move { auth.authenticate("ada", PASSWORD).await })
    };
    let mut checked = 0;
    let mut refused = 0;
    for guess in guesses {
        let error = guess.await.unwrap().unwrap_err();
        if is_locked(&error) {
            refused += 1;
        } else {
            assert_eq!(failure(&error), &AuthFailure::InvalidCredentials);
            checked += 1;
        }
    }
    let max = LockoutPolicy::default().max_failures;
    assert!(checked <= max, "{checked} wrong passwords were compared");
    assert_eq!(checked + refused, 50);
    // The right guess may have taken one of the first slots (then it is a
    // fair login); it never comes on top of `max_failures` wrong ones.
    let right = right.await.unwrap();
    assert!(
        store.lookups.load(Ordering::SeqCst) <= max + 1,
        "{} passwords were compared",
        store.lookups.load(Ordering::SeqCst)
    );
    if right.is_ok() {
        assert!(checked < max, "a login succeeded after {checked} failures");
    }

    // Whatever the order, the account ends locked once five wrong
    // passwords were compared, and the right one is refused.
    if checked == max {
        let error = auth.authenticate("ada", PASSWORD).await.unwrap_err();
        assert!(is_locked(&error), "{error}");
    }
}

/// A lock taken while a right guess was being compared still holds: the
/// success that finishes after the lock does not clear it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_refuses_the_right_password_until_it_ends() {
    let store = CountingStore::default();
    let auth = manager_with(store.clone(), LockoutPolicy::default());
    auth.create_user("ada", PASSWORD, Role::User).await.unwrap();
    for _ in 0..5 {
        auth.authenticate("ada", "Wrong-guess1").await.unwrap_err();
    }
    let lookups = store.lookups.load(Ordering::SeqCst);
    let mut tries = Vec::new();
    for _ in 0..10 {
        let auth = auth.clone();
        tries.push(tokio::spawn(async move {
            auth.authenticate("ada", PASSWORD).await
        }));
    }
    for attempt in tries {
        let error = attempt.await.unwrap().unwrap_err();
        assert!(is_locked(&error), "{error}");
    }
    assert_eq!(
        store.lookups.load(Ordering::SeqCst),
        lookups,
        "a locked account compares no password"
    );
}

fn short_policy() -> LockoutPolicy {
    LockoutPolicy {
        max_failures: 3,
        window: Duration::from_secs(60),
        duration: Duration::from_secs(600),
    }
}

/// On tokio's paused clock: a ten-minute lock holds at nine minutes and
/// ends at eleven.
#[tokio::test(start_paused = true)]
async fn a_real_lock_expires_after_its_duration() {
    let auth = manager_with(CountingStore::default(), short_policy());
    auth.create_user("ada", PASSWORD, Role::User).await.unwrap();
    for _ in 0..3 {
        auth.authenticate("ada", "Wrong-guess1").await.unwrap_err();
    }
    let error = auth.authenticate("ada", PASSWORD).await.unwrap_err();
    let AuthFailure::AccountLocked { retry_after } = failure(&error) else {
        panic!("locked, got {error}");
    };
    assert!(*retry_after > Duration::from_secs(590), "{retry_after:?}");

    tokio::time::advance(Duration::from_secs(9 * 60)).await;
    let error = auth.authenticate("ada", PASSWORD).await.unwrap_err();
    assert!(is_locked(&error), "still locked at nine minutes: {error}");

    tokio::time::advance(Duration::from_secs(2 * 60)).await;
    auth.authenticate("ada", PASSWORD)
        .await
        .expect("the lock is over at eleven minutes");
}

/// Failures older than the window no longer count.
#[tokio::test(start_paused = true)]
async fn old_failures_leave_the_window() {
    let auth = manager_with(CountingStore::default(), short_policy());
    auth.create_user("ada", PASSWORD, Role::User).await.unwrap();
    for _ in 0..2 {
        auth.authenticate("ada", "Wrong-guess1").await.unwrap_err();
    }
    tokio::time::advance(Duration::from_secs(61)).await;
    for _ in 0..2 {
        let error = auth.authenticate("ada", "Wrong-guess1").await.unwrap_err();
        assert_eq!(failure(&error), &AuthFailure::InvalidCredentials);
    }
    auth.authenticate("ada", PASSWORD)
        .await
        .expect("two failures in the window do not lock");

    // Three within the window do.
    for _ in 0..3 {
        auth.authenticate("ada", "Wrong-guess1").await.unwrap_err();
    }
    assert!(is_locked(
        &auth.authenticate("ada", PASSWORD).await.unwrap_err()
    ));
}

/// A flood of made-up names keeps the table at its bound; the least
/// recently failed unlocked names go first, and a locked account outlives
/// the flood.
#[tokio::test(start_paused = true)]
async fn a_flood_of_made_up_names_stays_bounded_and_keeps_locks() {
    let auth = AuthManager::new(
        CountingStore::default(),
        keys(),
        AuthConfig {
            bcrypt_cost: 4,
            lockout: short_policy(),
            max_tracked_accounts: 16,
            max_concurrent_hashes: 2,
            ..AuthConfig::default()
        },
    );
    auth.create_user("ada", PASSWORD, Role::User).await.unwrap();
    for _ in 0..3 {
        auth.authenticate("ada", "Wrong-guess1").await.unwrap_err();
    }
    for i in 0..200 {
        tokio::time::advance(Duration::from_millis(10)).await;
        let error = auth
            .authenticate(&format!("made-up-{i}"), "Wrong-guess1")
            .await
            .unwrap_err();
        assert_eq!(failure(&error), &AuthFailure::InvalidCredentials);
        assert!(auth.tracked_accounts() <= 16, "{}", auth.tracked_accounts());
    }
    assert_eq!(auth.tracked_accounts(), 16);
    assert!(
        is_locked(&auth.authenticate("ada", PASSWORD).await.unwrap_err()),
        "the flood evicted a lock"
    );
    // The oldest made-up names were forgotten, the newest are kept: two
    // more failures lock the newest name, not the oldest.
    for name in ["made-up-0", "made-up-199"] {
        for _ in 0..2 {
            auth.authenticate(name, "Wrong-guess1").await.unwrap_err();
        }
    }
    assert_eq!(
        failure(&auth.authenticate("made-up-0", "x").await.unwrap_err()),
        &AuthFailure::InvalidCredentials
    );
    assert!(is_locked(
        &auth.authenticate("made-up-199", "x").await.unwrap_err()
    ));
}

/// Passwords longer than bcrypt reads cannot be right, so they are refused
/// at once, the same way for every name, and never enter the table: filling
/// it costs a bcrypt comparison per name.
#[tokio::test]
async fn overlong_passwords_leave_no_trace() {
    let store = CountingStore::default();
    let auth = manager_with(store.clone(), short_policy());
    auth.create_user("ada", PASSWORD, Role::User).await.unwrap();
    let long = "x".repeat(73);
    for name in ["ada", "nobody", "made-up"] {
        for _ in 0..5 {
            let error = auth.authenticate(name, &long).await.unwrap_err();
            assert_eq!(failure(&error), &AuthFailure::InvalidCredentials);
        }
    }
    assert_eq!(auth.tracked_accounts(), 0);
    auth.authenticate("ada", PASSWORD).await.unwrap();
}

/// A login whose caller went away (a dropped future) gives its slot back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_login_gives_its_slot_back() {
    // A bcrypt cost that takes tens of milliseconds, so no login can finish
    // within its first poll even on a busy machine (at cost 4 one did, now
    // and then, when the thread was descheduled for a millisecond).
    let auth = AuthManager::new(
        CountingStore::default(),
        keys(),
        AuthConfig {
            bcrypt_cost: 8,
            lockout: short_policy(),
            max_concurrent_hashes: 2,
            ..AuthConfig::default()
        },
    );
    auth.create_user("ada", PASSWORD, Role::User).await.unwrap();
    for _ in 0..20 {
        // Polled once (the slot is taken and bcrypt starts on a blocking
        // thread), then dropped before bcrypt can answer. A timeout instead
        // of one poll would let a slow machine's timer fire after bcrypt
        // finished, so the attempt would complete and count.
        let mut login = std::pin::pin!(auth.authenticate("ada", "Wrong-guess1"));
        let first =
            std::future::poll_fn(|cx| std::task::Poll::Ready(login.as_mut().poll(cx).is_pending()))
                .await;
        assert!(first, "a login waits for bcrypt");
    }
    auth.authenticate("ada", PASSWORD)
        .await
        .expect("cancelled attempts neither count nor hold a slot");
}

/// Lock durations of any size neither panic nor wrap.
#[tokio::test]
async fn huge_policy_durations_do_not_panic() {
    let policy = LockoutPolicy {
        max_failures: 1,
        window: Duration::MAX,
        duration: Duration::MAX,
    };
    let auth = manager_with(CountingStore::default(), policy);
    auth.create_user("ada", PASSWORD, Role::User).await.unwrap();
    auth.authenticate("ada", "Wrong-guess1").await.unwrap_err();
    assert!(is_locked(
        &auth.authenticate("ada", PASSWORD).await.unwrap_err()
    ));
}

/// A flood of logins for made-up names, far more than bcrypt can work
/// through, is shed once the hashing queue is full: the logins waiting for
/// bcrypt hold lockout entries, and without a bound they would fill the
/// table with entries that cannot be forgotten, refusing every other name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_shed_before_it_fills_the_lockout_table() {
    let store = CountingStore::default();
    let auth = AuthManager::new(
        store,
        keys(),
        AuthConfig {
            bcrypt_cost: 4,
            lockout: LockoutPolicy::default(),
            max_tracked_accounts: 64,
            max_concurrent_hashes: 1,
            max_queued_hashes: 8,
            ..AuthConfig::default()
        },
    );
    auth.create_user("ada", PASSWORD, Role::User).await.unwrap();

    let flood: Vec<_> = (0..400)
        .map(|i| {
            let auth = auth.clone();
            tokio::spawn(async move {
                auth.authenticate(&format!("made-up-{i}"), "Wrong-guess1")
                    .await
            })
        })
        .collect();
    let mut shed = 0;
    for login in flood {
        let error = login.await.unwrap().unwrap_err();
        match failure(&error) {
            AuthFailure::TooBusy => {
                assert_eq!(error.kind(), ErrorKind::Rejected);
                shed += 1;
            }
            AuthFailure::InvalidCredentials => {}
            other => panic!("a made-up name was refused with {other:?}"),
        }
        assert!(auth.tracked_accounts() <= 64);
    }
    assert!(shed > 0, "nothing was shed");
    auth.authenticate("ada", PASSWORD)
        .await
        .expect("a real user logs in after the flood");
}
