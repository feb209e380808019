use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chain_core::middleware::from_fn;
use chain_core::{Chain, Context, Error, ErrorKind, Result, Step, named};

async fn ok(ctx: Context) -> Result<Context> {
    Ok(ctx)
}

async fn reject_payment(_ctx: Context) -> Result<Context> {
    Err(Error::unavailable("payment provider down"))
}

#[tokio::test]
async fn a_failing_link_stops_the_chain_and_is_named() {
    let after = Arc::new(AtomicUsize::new(0));
    let counter = after.clone();
    let chain = Chain::named("checkout")
        .link(ok)
        .link(reject_payment)
        .link_sync(move |ctx: Context| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(ctx)
        });
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.message(), "payment provider down");
    let location = err.location().unwrap();
    assert_eq!(
        (location.chain(), location.link(), location.index()),
        ("checkout", "reject_payment", 1)
    );
    assert_eq!(
        after.load(Ordering::SeqCst),
        0,
        "links after the failure must not run"
    );
}

#[tokio::test]
async fn a_panic_in_an_async_link_comes_back_as_an_error_naming_it() {
    let chain = Chain::named("c")
        .link(ok)
        .link(named("boom", |_ctx: Context| async move {
            if true {
                panic!("inventory index out of range");
            }
            Ok::<Context, Error>(Context::new())
        }));
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.location().unwrap().link(), "boom");
    assert!(
        err.to_string().contains("inventory index out of range"),
        "{err}"
    );
}

#[tokio::test]
async fn a_panic_in_a_sync_link_is_caught() {
    let chain = Chain::named("c").step(
        Step::sync(|_ctx: Context| -> Result<Context> {
            panic!("{}", String::from("formatted payload"))
        })
        .named("sync_boom"),
    );
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert_eq!(err.location().unwrap().link(), "sync_boom");
    assert!(err.message().contains("formatted payload"), "{err}");
}

#[tokio::test]
async fn failures_inside_a_run_of_sync_links_name_the_link_and_its_index() {
    let fail_third = Chain::named("c")
        .link(ok)
        .link_sync(Ok)
        .step(Step::sync(|_ctx: Context| Err(Error::validation("bad sku"))).named("check_sku"))
        .link_sync(|_ctx: Context| -> Result<Context> { panic!("must not run") });
    let err = fail_third.execute(Context::new()).await.unwrap_err();
    let location = err.location().unwrap();
    assert_eq!((location.link(), location.index()), ("check_sku", 2));

    let panic_fourth = Chain::named("c").link_sync(Ok).link(ok).link_sync(Ok).step(
        Step::sync(|_ctx: Context| -> Result<Context> { panic!("stock underflow") })
            .named("reserve"),
    );
    let err = panic_fourth.execute(Context::new()).await.unwrap_err();
    assert!(err.is_panic());
    let location = err.location().unwrap();
    assert_eq!((location.link(), location.index()), ("reserve", 3));
}

#[tokio::test]
async fn a_panic_while_creating_the_future_is_caught() {
    fn eager(_ctx: Context) -> std::future::Ready<Result<Context>> {
        panic!("panicked before returning a future")
    }
    let err = Chain::named("c")
        .link(eager)
        .execute(Context::new())
        .await
        .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.location().unwrap().link(), "eager");
}

#[tokio::test]
async fn a_panic_in_middleware_is_caught_and_names_the_link() {
    let chain = Chain::named("c")
        .around_each(from_fn(|_ctx: Context, _next| async move {
            panic!("middleware bug");
        }))
        .link(named("wrapped", ok));
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.location().unwrap().link(), "wrapped");
}

#[tokio::test]
async fn a_panic_in_around_middleware_is_caught_and_names_the_chain() {
    let chain = Chain::named("orders")
        .around(from_fn(|_ctx: Context, _next| async move {
            panic!("around bug");
        }))
        .link(ok);
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert!(err.is_panic());
    assert!(err.to_string().contains("chain `orders`"), "{err}");
    assert!(err.to_string().contains("around bug"), "{err}");
}

#[tokio::test]
async fn a_panicking_condition_is_caught() {
    let chain = Chain::named("c").when(
        |_ctx: &Context| panic!("bad predicate"),
        named("guarded", ok),
    );
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.location().unwrap().link(), "guarded");
}

#[tokio::test]
async fn the_chain_still_works_after_a_caught_panic() {
    let chain = Chain::named("c").link_sync(|ctx: Context| {
        if ctx.contains_key("explode") {
            panic!("asked to");
        }
        Ok(ctx.with("fine", true))
    });
    assert!(
        chain
            .execute(Context::new().with("explode", true))
            .await
            .is_err()
    );
    let out = chain.execute(Context::new()).await.unwrap();
    assert!(out.contains_key("fine"));
}

#[test]
fn polling_a_finished_execution_again_is_an_error_not_a_panic() {
    use std::future::Future;
    use std::task::{Context as TaskContext, Poll, Waker};

    let chain = Chain::new().link(ok).link_sync(Ok);
    let mut execution = std::pin::pin!(chain.execute(Context::new().with("n", 1)));
    let mut cx = TaskContext::from_waker(Waker::noop());
    let Poll::Ready(first) = execution.as_mut().poll(&mut cx) else {
        panic!("nothing here waits");
    };
    assert_eq!(first.unwrap().get::<i32>("n").unwrap(), Some(1));
    let Poll::Ready(again) = execution.as_mut().poll(&mut cx) else {
        panic!("a finished execution stays finished");
    };
    assert_eq!(again.unwrap_err().kind(), ErrorKind::Internal);
}
