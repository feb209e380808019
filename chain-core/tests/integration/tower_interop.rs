#![cfg(feature = "tower")]

use chain_core::tower::service;
use chain_core::{BoxError, Chain, Context, Error, ErrorKind};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

#[tokio::test]
async fn a_chain_is_a_tower_service_under_tower_layers() {
    let chain = Chain::named("svc").link_sync(|ctx: Context| {
        let n: i64 = ctx.require("n")?;
        Ok(ctx.with("n", n * 2))
    });
    let mut stack = ServiceBuilder::new()
        .map_request(|ctx: Context| ctx.with("n", 20))
        .service(chain);
    let out = stack
        .ready()
        .await
        .unwrap()
        .call(Context::new())
        .await
        .unwrap();
    assert_eq!(out.get::<i64>("n").unwrap(), Some(40));
}

#[tokio::test]
async fn a_tower_service_is_a_link() {
    let svc =
        service_fn(|ctx: Context| async move { Ok::<_, Error>(ctx.with("from_tower", true)) });
    let chain = Chain::new().link(service(svc).named("tower_step"));
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(out.get::<bool>("from_tower").unwrap(), Some(true));
    assert_eq!(chain.inspect().links[0].name, "tower_step");
}

#[tokio::test]
async fn chain_errors_from_a_service_come_through_unchanged() {
    let svc = service_fn(|_ctx: Context| async { Err::<Context, _>(Error::forbidden("nope")) });
    let err = Chain::new()
        .link(service(svc))
        .execute(Context::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert_eq!(err.message(), "nope");
}

#[tokio::test]
async fn other_service_errors_become_internal_with_their_source() {
    let svc = service_fn(|_ctx: Context| async {
        Err::<Context, BoxError>(Box::new(std::io::Error::other("socket closed")))
    });
    let err = Chain::new()
        .link(service(svc))
        .execute(Context::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(format!("{err:#}").contains("socket closed"), "{err:#}");
}

#[tokio::test]
async fn readiness_failures_are_unavailable() {
    #[derive(Clone)]
    struct NeverReady;
    impl Service<Context> for NeverReady {
        type Response = Context;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<Context, std::io::Error>>;
        fn poll_ready(
            &mut self,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Err(std::io::Error::other("overloaded")))
        }
        fn call(&mut self, ctx: Context) -> Self::Future {
            std::future::ready(Ok(ctx))
        }
    }
    let err = Chain::new()
        .link(service(NeverReady))
        .execute(Context::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.downcast_source::<std::io::Error>().is_some());
}

/// A `BoxCloneService` is `Send` but not `Sync`; it still becomes a link,
/// and every call gets a clone of it (the counter shows the clones share
/// their state, as the service's own clones do).
#[tokio::test]
async fn a_service_that_is_not_sync_is_a_link() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tower::util::BoxCloneService;

    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let svc: BoxCloneService<Context, Context, Error> =
        BoxCloneService::new(service_fn(move |ctx: Context| {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<_, Error>(ctx.with("calls", n)) }
        }));
    let chain = Chain::new().link(service(svc).named("boxed"));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let chain = chain.clone();
            tokio::spawn(async move { chain.execute(Context::new()).await })
        })
        .collect();
    for handle in handles {
        assert!(handle.await.unwrap().unwrap().contains_key("calls"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(chain.inspect().links[0].name, "boxed");
}
