//! The orchestrator against real HTTP services on 127.0.0.1 that inject
//! faults on command.
#![cfg(feature = "http")]

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chain_core::{Context, ErrorKind};
use chain_resilience::{
    Backoff, CircuitBreakerConfig, Orchestrator, Retry, ServiceEndpoint, ServiceFailure, State,
};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// Faults the next requests will meet, and what the service saw.
#[derive(Default)]
struct Faults {
    fail_next: AtomicU32,
    fail_status: AtomicU16,
    delay_next: AtomicU32,
    delay_ms: AtomicU64,
    drop_next: AtomicU32,
    garbage_next: AtomicU32,
    hits: AtomicU32,
    hit: Notify,
    last_headers: Mutex<Option<HeaderMap>>,
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

struct Service {
    url: String,
    faults: Arc<Faults>,
}

impl Service {
    fn hits(&self) -> u32 {
        self.faults.hits.load(Ordering::SeqCst)
    }

    fn fail_next(&self, n: u32, status: u16) {
        self.faults.fail_status.store(status, Ordering::SeqCst);
        self.faults.fail_next.store(n, Ordering::SeqCst);
    }
}

async fn process(
    Shared((name, faults)): Shared<(&'static str, Arc<Faults>)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    faults.hits.fetch_add(1, Ordering::SeqCst);
    *faults.last_headers.lock().unwrap() = Some(headers);
    faults.hit.notify_waiters();
    if take(&faults.delay_next) {
        tokio::time::sleep(Duration::from_millis(
            faults.delay_ms.load(Ordering::SeqCst),
        ))
        .await;
    }
    if take(&faults.fail_next) {
        let status = StatusCode::from_u16(faults.fail_status.load(Ordering::SeqCst)).unwrap();
        return (status, "injected failure").into_response();
    }
    if take(&faults.drop_next) {
        let broken = futures_util::stream::iter([
            Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{\"partial\":")),
            Err(std::io::Error::other("connection dropped on purpose")),
        ]);
        return Response::new(Body::from_stream(broken));
    }
    if take(&faults.garbage_next) {
        return (StatusCode::OK, "<html>not json</html>").into_response();
    }
    Json(json!({"service": name, "received": body})).into_response()
}

async fn start(name: &'static str) -> Service {
    let faults = Arc::new(Faults::default());
    let app = Router::new()
        .route("/process", post(process))
        .with_state((name, faults.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Service {
        url: format!("http://{address}/process"),
        faults,
    }
}

fn quick_retry(attempts: u32) -> Retry {
    Retry::new(attempts).backoff(Backoff::Constant(Duration::from_millis(1)))
}

fn endpoint(name: &str, service: &Service) -> ServiceEndpoint {
    ServiceEndpoint::new(name, &service.url)
        .timeout(Duration::from_secs(5))
        .retry(quick_retry(1))
}

#[tokio::test]
async fn a_flow_posts_the_context_and_merges_each_answer() {
    let users = start("users").await;
    let inventory = start("inventory").await;
    let orchestrator = Orchestrator::new([
        endpoint("user_service", &users),
        endpoint("inventory_service", &inventory),
    ])
    .unwrap();
    let chain = orchestrator
        .chain(["user_service", "inventory_service"])
        .unwrap();
    let out = chain
        .execute(Context::new().with("order_id", "ORD-1"))
        .await
        .unwrap();
    assert_eq!(
        out.get_value("user_service_result").unwrap()["service"],
        "users"
    );
    let seen_by_inventory = &out.get_value("inventory_service_result").unwrap()["received"];
    assert_eq!(seen_by_inventory["order_id"], "ORD-1");
    assert_eq!(seen_by_inventory["user_service_result"]["service"], "users");
    assert_eq!(chain.name(), "user_service > inventory_service");
}

#[tokio::test]
async fn a_named_flow_reports_errors_under_its_own_name() {
    let users = start("users").await;
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let orchestrator = Orchestrator::new([
        endpoint("user_service", &users),
        ServiceEndpoint::new("gone_service", format!("http://{closed}/")).retry(quick_retry(1)),
    ])
    .unwrap();
    let chain = orchestrator
        .chain_named("checkout", ["user_service", "gone_service"])
        .unwrap();
    assert_eq!(chain.name(), "checkout");
    assert_eq!(chain.len(), 2);
    let error = chain.execute(Context::new()).await.unwrap_err();
    let location = error.location().expect("a failing link is located");
    assert_eq!(
        (location.chain(), location.index()),
        ("checkout", 1),
        "{error}"
    );

    let unknown = orchestrator
        .chain_named("checkout", ["user_service", "billing_service"])
        .unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);
    assert!(
        unknown.to_string().contains("`billing_service`"),
        "{unknown}"
    );
}

#[tokio::test]
async fn unknown_duplicate_and_malformed_services_are_errors() {
    let users = start("users").await;
    let orchestrator = Orchestrator::new([endpoint("user_service", &users)]).unwrap();
    let unknown = orchestrator
        .chain(["user_service", "billing_service"])
        .unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound);
    assert!(
        unknown.to_string().contains("`billing_service`"),
        "{unknown}"
    );

    let twice = Orchestrator::new([endpoint("a", &users), endpoint("a", &users)]).unwrap_err();
    assert!(
        twice.is_validation() && twice.to_string().contains("`a` is defined twice"),
        "{twice}"
    );

    let bad = Orchestrator::new([ServiceEndpoint::new("b", "not a url")]).unwrap_err();
    assert!(
        bad.is_validation() && bad.to_string().contains("service `b`"),
        "{bad}"
    );
}

#[tokio::test]
async fn each_kind_of_failure_is_a_distinct_error_naming_the_service() {
    let service = start("flaky").await;
    let orchestrator = Orchestrator::new([endpoint("flaky", &service)
        .breaker(CircuitBreakerConfig::consecutive_failures(
            1000,
            Duration::from_secs(1),
        ))
        .timeout(Duration::from_millis(100))])
    .unwrap();
    let chain = orchestrator.chain(["flaky"]).unwrap();
    let run = || chain.execute(Context::new());

    service.fail_next(1, 503);
    let err = run().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(matches!(
        err.downcast_source::<ServiceFailure>(),
        Some(ServiceFailure::Status { status: 503, .. })
    ));
    assert!(
        format!("{err:#}").contains("service `flaky` answered 503"),
        "{err:#}"
    );

    service.fail_next(1, 404);
    assert_eq!(run().await.unwrap_err().kind(), ErrorKind::NotFound);
    service.fail_next(1, 429);
    assert_eq!(run().await.unwrap_err().kind(), ErrorKind::Rejected);

    service.faults.garbage_next.store(1, Ordering::SeqCst);
    let err = run().await.unwrap_err();
    assert!(
        matches!(
            err.downcast_source::<ServiceFailure>(),
            Some(ServiceFailure::InvalidJson { .. })
        ),
        "{err:?}"
    );

    service.faults.drop_next.store(1, Ordering::SeqCst);
    let err = run().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        matches!(
            err.downcast_source::<ServiceFailure>(),
            Some(ServiceFailure::Transport { .. })
        ),
        "{err:?}"
    );

    service.faults.delay_ms.store(2_000, Ordering::SeqCst);
    service.faults.delay_next.store(1, Ordering::SeqCst);
    let err = run().await.unwrap_err();
    assert!(err.is_timeout());
    assert!(
        format!("{err:#}")
            .contains("call to service `flaky` failed: timeout error: attempt timed out"),
        "{err:#}"
    );

    let metrics = &orchestrator.metrics()[0];
    assert_eq!(
        (metrics.calls, metrics.successes, metrics.failures),
        (6, 0, 6)
    );
}

#[tokio::test]
async fn connection_refused_is_its_own_error() {
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let orchestrator =
        Orchestrator::new([
            ServiceEndpoint::new("gone", format!("http://{closed}/process")).retry(quick_retry(1)),
        ])
        .unwrap();
    let err = orchestrator
        .chain(["gone"])
        .unwrap()
        .execute(Context::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        matches!(
            err.downcast_source::<ServiceFailure>(),
            Some(ServiceFailure::ConnectionRefused { .. })
        ),
        "{err:?}"
    );
    assert!(
        format!("{err:#}").contains("service `gone` refused the connection"),
        "{err:#}"
    );
}

#[tokio::test]
async fn retries_recover_from_transient_faults() {
    let service = start("flaky").await;
    let orchestrator =
        Orchestrator::new([endpoint("flaky", &service).retry(quick_retry(3))]).unwrap();
    service.fail_next(2, 502);
    let out = orchestrator
        .chain(["flaky"])
        .unwrap()
        .execute(Context::new())
        .await
        .unwrap();
    assert!(out.contains_key("flaky_result"));
    assert_eq!(service.hits(), 3);
    let metrics = &orchestrator.metrics()[0];
    assert_eq!(
        (metrics.calls, metrics.successes, metrics.failures),
        (3, 1, 2)
    );
    assert!(metrics.average_latency.is_some() && metrics.p99_latency >= metrics.average_latency);
}

#[tokio::test]
async fn the_breaker_opens_and_spares_the_service_then_probes_and_closes() {
    let service = start("inventory").await;
    let orchestrator = Orchestrator::new([endpoint("inventory", &service).breaker(
        CircuitBreakerConfig::consecutive_failures(3, Duration::from_secs(3600)),
    )])
    .unwrap();
    let chain = orchestrator.chain(["inventory"]).unwrap();
    service.fail_next(1000, 503);
    for _ in 0..3 {
        assert_eq!(
            chain.execute(Context::new()).await.unwrap_err().kind(),
            ErrorKind::Unavailable
        );
    }
    assert_eq!(
        orchestrator.breaker("inventory").unwrap().state(),
        State::Open
    );
    for _ in 0..5 {
        let err = chain.execute(Context::new()).await.unwrap_err();
        assert!(err.is_rejected());
        assert!(err.to_string().contains("service `inventory`"), "{err}");
    }
    assert_eq!(service.hits(), 3, "no request while the circuit is open");
    assert_eq!(orchestrator.metrics()[0].breaker, State::Open);

    // Probing: a breaker whose wait has passed admits one probe, which
    // closes it when the service is back.
    let probing = Orchestrator::new([endpoint("inventory", &service).breaker(
        CircuitBreakerConfig::consecutive_failures(1, Duration::ZERO),
    )])
    .unwrap();
    let chain = probing.chain(["inventory"]).unwrap();
    let before = service.hits();
    assert!(chain.execute(Context::new()).await.is_err());
    assert_eq!(probing.breaker("inventory").unwrap().state(), State::Open);
    service.fail_next(0, 503);
    chain.execute(Context::new()).await.unwrap();
    assert_eq!(probing.breaker("inventory").unwrap().state(), State::Closed);
    assert_eq!(service.hits(), before + 2);
}

#[tokio::test]
async fn a_cancelled_probe_does_not_wedge_the_breaker() {
    let service = start("inventory").await;
    let orchestrator = Orchestrator::new([endpoint("inventory", &service).breaker(
        CircuitBreakerConfig::consecutive_failures(1, Duration::ZERO),
    )])
    .unwrap();
    let chain = orchestrator.chain(["inventory"]).unwrap();
    service.fail_next(1, 503);
    assert!(chain.execute(Context::new()).await.is_err());

    // The probe reaches the service, hangs there, and is cancelled.
    service.faults.delay_ms.store(60_000, Ordering::SeqCst);
    service.faults.delay_next.store(1, Ordering::SeqCst);
    let arrived = service.faults.hit.notified();
    let probe = tokio::spawn({
        let chain = chain.clone();
        async move { chain.execute(Context::new()).await }
    });
    tokio::time::timeout(Duration::from_secs(10), arrived)
        .await
        .expect("the probe reached the service");
    assert_eq!(
        orchestrator.breaker("inventory").unwrap().state(),
        State::HalfOpen
    );
    probe.abort();
    assert!(probe.await.unwrap_err().is_cancelled());

    // The probe slot came back: the next call probes and closes the circuit.
    chain.execute(Context::new()).await.unwrap();
    assert_eq!(
        orchestrator.breaker("inventory").unwrap().state(),
        State::Closed
    );
}

#[tokio::test]
async fn the_header_hook_propagates_trace_context() {
    let service = start("users").await;
    let orchestrator = Orchestrator::new([endpoint("users", &service)])
        .unwrap()
        .header_hook(|ctx, headers| {
            if let Some(Ok(value)) = ctx
                .get_value("traceparent")
                .and_then(Value::as_str)
                .map(str::parse)
            {
                headers.insert("traceparent", value);
            }
        });
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    orchestrator
        .chain(["users"])
        .unwrap()
        .execute(Context::new().with("traceparent", traceparent))
        .await
        .unwrap();
    let headers = service.faults.last_headers.lock().unwrap().clone().unwrap();
    assert_eq!(headers.get("traceparent").unwrap(), traceparent);
}

#[tokio::test]
async fn retries_stop_at_the_budget() {
    let service = start("flaky").await;
    // Retries may be at most a fifth of the calls: 10 failing calls with up
    // to 4 retries each make 10 + 2 requests, not 50.
    let budget = chain_resilience::RetryBudget::new(Duration::from_secs(60), 0.2, 0);
    let orchestrator = Orchestrator::new([endpoint("flaky", &service)
        .retry(quick_retry(5).budget(budget))
        .breaker(CircuitBreakerConfig::consecutive_failures(
            1000,
            Duration::from_secs(1),
        ))])
    .unwrap();
    let chain = orchestrator.chain(["flaky"]).unwrap();
    service.fail_next(1000, 503);
    for _ in 0..10 {
        assert!(chain.execute(Context::new()).await.is_err());
    }
    assert_eq!(service.hits(), 12);
}

/// A payment service whose side effect happens before its answer is lost:
/// each POST charges (once per `Idempotency-Key`, as a service honouring
/// the header does, or every time without one), then the first
/// `lose_answers` answers fail with a 503.
#[derive(Default)]
struct Payments {
    attempts: AtomicU32,
    charges: AtomicU32,
    lose_answers: AtomicU32,
    keys: Mutex<Vec<Option<String>>>,
}

async fn charge(Shared(payments): Shared<Arc<Payments>>, headers: HeaderMap) -> Response {
    payments.attempts.fetch_add(1, Ordering::SeqCst);
    let key = headers
        .get("idempotency-key")
        .map(|key| key.to_str().unwrap().to_owned());
    let mut keys = payments.keys.lock().unwrap();
    let seen = key.is_some() && keys.contains(&key);
    keys.push(key);
    drop(keys);
    if !seen {
        payments.charges.fetch_add(1, Ordering::SeqCst);
    }
    if take(&payments.lose_answers) {
        return (StatusCode::SERVICE_UNAVAILABLE, "answer lost").into_response();
    }
    Json(json!({"charged": true})).into_response()
}

async fn start_payments() -> (String, Arc<Payments>) {
    let payments = Arc::new(Payments::default());
    let app = Router::new()
        .route("/charge", post(charge))
        .with_state(payments.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/charge"), payments)
}

#[tokio::test]
async fn a_retried_post_carries_one_idempotency_key_per_execution() {
    let (url, payments) = start_payments().await;
    // The defaults: three attempts, and a key.
    let orchestrator = Orchestrator::new([ServiceEndpoint::new("payments", &url)]).unwrap();
    let chain = orchestrator.chain(["payments"]).unwrap();

    payments.lose_answers.store(2, Ordering::SeqCst);
    chain.execute(Context::new()).await.unwrap();
    assert_eq!(payments.attempts.load(Ordering::SeqCst), 3);
    assert_eq!(payments.charges.load(Ordering::SeqCst), 1, "charged twice");
    chain.execute(Context::new()).await.unwrap();
    assert_eq!(payments.charges.load(Ordering::SeqCst), 2);

    let keys = payments.keys.lock().unwrap().clone();
    let keys: Vec<String> = keys.into_iter().map(|key| key.expect("a key")).collect();
    assert!(keys[..3].iter().all(|key| *key == keys[0]), "{keys:?}");
    assert_ne!(
        keys[3], keys[0],
        "a second execution reused the first one's key"
    );
    assert!(
        keys[0].len() >= 32,
        "a key too short to be unique: {}",
        keys[0]
    );
}

#[tokio::test]
async fn a_key_the_caller_sends_is_kept() {
    let (url, payments) = start_payments().await;
    let orchestrator = Orchestrator::new([ServiceEndpoint::new("payments", &url)]).unwrap();
    let mut outgoing = chain_core::OutgoingHeaders::new();
    outgoing.set("Idempotency-Key", "order-17");
    let ctx = Context::new().with_ext(outgoing);
    orchestrator
        .chain(["payments"])
        .unwrap()
        .execute(ctx)
        .await
        .unwrap();
    assert_eq!(
        *payments.keys.lock().unwrap(),
        [Some("order-17".to_owned())]
    );
}

#[tokio::test]
async fn without_a_key_a_post_is_not_retried_unless_asked() {
    let (url, payments) = start_payments().await;
    let orchestrator =
        Orchestrator::new([ServiceEndpoint::new("payments", &url).without_idempotency_key()])
            .unwrap();
    payments.lose_answers.store(1, Ordering::SeqCst);
    let error = orchestrator
        .chain(["payments"])
        .unwrap()
        .execute(Context::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert_eq!(payments.attempts.load(Ordering::SeqCst), 1);
    assert_eq!(*payments.keys.lock().unwrap(), [None]);

    // Retries turned on explicitly: the caller's choice, and its risk.
    let (url, payments) = start_payments().await;
    let orchestrator = Orchestrator::new([ServiceEndpoint::new("payments", &url)
        .without_idempotency_key()
        .retry(quick_retry(3))])
    .unwrap();
    payments.lose_answers.store(1, Ordering::SeqCst);
    orchestrator
        .chain(["payments"])
        .unwrap()
        .execute(Context::new())
        .await
        .unwrap();
    assert_eq!(payments.attempts.load(Ordering::SeqCst), 2);
    assert_eq!(payments.charges.load(Ordering::SeqCst), 2);
}
