//! Every policy wraps a tower service through `Pipeline`'s `Layer`.
#![cfg(feature = "tower")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chain_core::{Error, ErrorKind};
use chain_resilience::{
    Backoff, CircuitBreaker, CircuitBreakerConfig, Pipeline, RateLimiter, Retry, State, Timeout,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

fn flaky(
    failures: u32,
) -> (
    Arc<AtomicU32>,
    impl Fn(u32) -> std::future::Ready<Result<u32, std::io::Error>> + Clone,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    (calls, move |request: u32| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        std::future::ready(if n <= failures {
            Err(std::io::Error::other("reset"))
        } else {
            Ok(request * 2)
        })
    })
}

#[tokio::test]
async fn retry_as_a_layer_retries_the_inner_service() {
    let (calls, inner) = flaky(2);
    let service = ServiceBuilder::new()
        .layer(Pipeline::from(
            Retry::new(3).backoff(Backoff::Constant(Duration::from_millis(1))),
        ))
        .service(service_fn(inner));
    assert_eq!(service.oneshot(21).await.unwrap(), 42);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_breaker_layer_opens_and_rejects_without_calling_the_service() {
    let (calls, inner) = flaky(u32::MAX);
    let breaker = CircuitBreaker::new(
        "svc",
        CircuitBreakerConfig::consecutive_failures(2, Duration::from_secs(60)),
    );
    let service = ServiceBuilder::new()
        .layer(Pipeline::from(breaker.clone()))
        .service(service_fn(inner));
    for _ in 0..2 {
        let err = service.clone().oneshot(1).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert!(err.downcast_source::<std::io::Error>().is_some());
    }
    assert_eq!(breaker.state(), State::Open);
    assert!(service.clone().oneshot(1).await.unwrap_err().is_rejected());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn timeout_and_rate_limiter_layers() {
    let slow = ServiceBuilder::new()
        .layer(Pipeline::from(Timeout::total(Duration::from_millis(20))))
        .service(service_fn(|_: u32| {
            std::future::pending::<Result<u32, Error>>()
        }));
    assert!(slow.oneshot(1).await.unwrap_err().is_timeout());

    let (_, inner) = flaky(0);
    let limited = ServiceBuilder::new()
        .layer(Pipeline::from(RateLimiter::new(
            "one",
            1,
            Duration::from_secs(3600),
        )))
        .service(service_fn(inner));
    assert!(limited.clone().oneshot(1).await.is_ok());
    assert!(limited.oneshot(1).await.unwrap_err().is_rejected());
}

#[tokio::test]
async fn a_fallback_layer_answers_for_a_failing_service() {
    use chain_core::Context;
    use chain_resilience::Fallback;

    let failing =
        service_fn(|_ctx: Context| async { Err::<Context, _>(Error::unavailable("down")) });
    let service = ServiceBuilder::new()
        .layer(Fallback::value(Context::new().with("source", "fallback")))
        .service(failing);
    let out = service.oneshot(Context::new()).await.unwrap();
    assert_eq!(
        out.get::<String>("source").unwrap().as_deref(),
        Some("fallback")
    );

    let invalid = service_fn(|_ctx: Context| async { Err::<Context, _>(Error::validation("bad")) });
    let service = ServiceBuilder::new()
        .layer(Fallback::value(Context::new()))
        .service(invalid);
    assert!(
        service
            .oneshot(Context::new())
            .await
            .unwrap_err()
            .is_validation()
    );
}
