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
