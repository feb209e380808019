use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chain_core::middleware::from_fn;
use chain_core::{Chain, Context, Error, ErrorKind, MergePolicy, Parallel, Result, Step, named};
use serde_json::json;
use tokio::sync::oneshot;

use crate::support::{push_trace, trace};

async fn add_discount(ctx: Context) -> Result<Context> {
    Ok(ctx.with("discount", 10))
}

fn is_vip(ctx: &Context) -> bool {
    ctx.get::<bool>("vip").ok().flatten().unwrap_or(false)
}

#[tokio::test]
async fn when_runs_the_link_only_if_the_predicate_holds() {
    let chain = Chain::new().when(is_vip, add_discount);
    let vip = chain
        .execute(Context::new().with("vip", true))
        .await
        .unwrap();
    assert_eq!(vip.get::<u32>("discount").unwrap(), Some(10));
    let regular = chain
        .execute(Context::new().with("vip", false))
        .await
        .unwrap();
    assert!(!regular.contains_key("discount"));
    assert_eq!(regular, Context::new().with("vip", false));
}

#[tokio::test]
async fn a_skipped_step_runs_none_of_its_middleware() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let chain = Chain::new().step(Step::new(add_discount).when(is_vip).around(from_fn(
        move |ctx: Context, next| {
            seen.fetch_add(1, Ordering::SeqCst);
            next.run(ctx)
        },
    )));
    chain.execute(Context::new()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    chain
        .execute(Context::new().with("vip", true))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn parallel_branches_merge_in_branch_order() {
    let chain = Chain::new().parallel(
        Parallel::new()
            .branch(named("user", |ctx: Context| async move {
                Ok(ctx.with("user", "ada").with("shared", 1))
            }))
            .branch(named("orders", |ctx: Context| async move {
                Ok(ctx.with("orders", 3).with("shared", 1))
            })),
    );
    let out = chain.execute(Context::new().with("id", 7)).await.unwrap();
    assert_eq!(
        out.keys().collect::<Vec<_>>(),
        ["id", "user", "shared", "orders"]
    );
    assert_eq!(
        out.to_json(),
        json!({"id": 7, "user": "ada", "shared": 1, "orders": 3})
    );
}

fn writer(name: &'static str, value: i64) -> impl chain_core::Link<Context> {
    named(name, move |ctx: Context| async move {
        Ok(ctx.with("status", value))
    })
}

#[tokio::test]
async fn conflicting_writes_fail_naming_the_field_and_branches() {
    let chain = Chain::new().parallel(
        Parallel::new()
            .branch(writer("a", 1))
            .branch(writer("b", 2)),
    );
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let message = err.to_string();
    assert!(message.contains("`status`"), "{message}");
    assert!(
        message.contains("#0 `a`") && message.contains("#1 `b`"),
        "{message}"
    );
}

#[tokio::test]
async fn merge_policies_resolve_conflicts() {
    for (policy, expected) in [(MergePolicy::FirstWins, 1), (MergePolicy::LastWins, 3)] {
        let chain = Chain::new().parallel(
            Parallel::new()
                .branch(writer("a", 1))
                .branch(writer("b", 2))
                .branch(writer("c", 3))
                .merge_policy(policy),
        );
        let out = chain.execute(Context::new()).await.unwrap();
        assert_eq!(
            out.get::<i64>("status").unwrap(),
            Some(expected),
            "{policy:?}"
        );
    }
}

#[tokio::test]
async fn a_branch_removing_a_field_removes_it() {
    let chain = Chain::new().parallel(Parallel::new().branch(named(
        "cleanup",
        |mut ctx: Context| async move {
            ctx.remove("password");
            Ok(ctx)
        },
    )));
    let out = chain
        .execute(Context::new().with("user", "ada").with("password", "x"))
        .await
        .unwrap();
    assert_eq!(out.keys().collect::<Vec<_>>(), ["user"]);
}

#[tokio::test]
async fn a_failing_branch_fails_the_step_and_is_named() {
    let chain = Chain::named("agg").parallel(Parallel::new().branch(writer("ok", 1)).branch(
        named("bank", |_ctx: Context| async {
            Err::<Context, _>(Error::unavailable("bank api down"))
        }),
    ));
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.to_string().contains("parallel branch #1 `bank` failed"),
        "{err}"
    );
    // The branch's own error is the source, printed by `{:#}`, not repeated
    // by `{}`.
    assert!(!err.to_string().contains("bank api down"), "{err}");
    assert!(format!("{err:#}").contains("bank api down"), "{err:#}");
    assert_eq!(err.location().unwrap().link(), "parallel");
}

#[tokio::test]
async fn a_panicking_branch_is_caught_and_named() {
    let chain = Chain::new().parallel(Parallel::new().branch(named(
        "crash",
        |_ctx: Context| async move {
            if true {
                panic!("branch bug");
            }
            Ok::<Context, Error>(Context::new())
        },
    )));
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert!(err.is_panic());
    assert!(err.to_string().contains("`crash`"), "{err}");
}

#[tokio::test]
async fn branches_run_concurrently() {
    // Each branch waits for the other's signal: sequential execution would
    // deadlock, and the timeout turns that into a failure.
    let (to_b, from_a) = oneshot::channel::<()>();
    let (to_a, from_b) = oneshot::channel::<()>();
    let to_b = Arc::new(std::sync::Mutex::new(Some(to_b)));
    let to_a = Arc::new(std::sync::Mutex::new(Some(to_a)));
    let from_a = Arc::new(tokio::sync::Mutex::new(Some(from_a)));
    let from_b = Arc::new(tokio::sync::Mutex::new(Some(from_b)));
    let a = named("a", move |ctx: Context| {
        let (tx, rx) = (to_b.clone(), from_b.clone());
        async move {
            tx.lock().unwrap().take().unwrap().send(()).unwrap();
            rx.lock().await.take().unwrap().await.unwrap();
            Ok(ctx.with("a", true))
        }
    });
    let b = named("b", move |ctx: Context| {
        let (tx, rx) = (to_a.clone(), from_a.clone());
        async move {
            tx.lock().unwrap().take().unwrap().send(()).unwrap();
            rx.lock().await.take().unwrap().await.unwrap();
            Ok(ctx.with("b", true))
        }
    });
    let chain = Chain::new().parallel(Parallel::new().branch(a).branch(b));
    let out = tokio::time::timeout(Duration::from_secs(10), chain.execute(Context::new()))
        .await
        .expect("branches must run concurrently")
        .unwrap();
    assert_eq!(out.keys().collect::<Vec<_>>(), ["a", "b"]);
}

#[tokio::test]
async fn catch_recovers_with_the_context_from_before_the_failing_link() {
    let chain = Chain::named("c")
        .link_sync(|ctx: Context| push_trace(ctx, "one"))
        .link_sync(|ctx: Context| {
            let ctx = push_trace(ctx, "two-partial")?;
            let _ = ctx;
            Err(Error::unavailable("down"))
        })
        .link_sync(|ctx: Context| push_trace(ctx, "three"))
        .catch(|err, ctx: Context| async move {
            assert_eq!(err.location().unwrap().index(), 1);
            push_trace(ctx.with("recovered_from", err.kind().as_str()), "handler")
        });
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(trace(&out), ["one", "handler", "three"]);
    assert_eq!(
        out.get::<String>("recovered_from").unwrap().as_deref(),
        Some("unavailable")
    );
}

#[tokio::test]
async fn a_handler_may_fail_and_its_error_is_located() {
    let chain = Chain::named("c")
        .link(named("fails", |_ctx: Context| async {
            Err::<Context, _>(Error::timeout("slow"))
        }))
        .catch(|err, _ctx: Context| async move {
            Err(Error::internal(format!("gave up after {}", err.kind())))
        });
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert_eq!(err.message(), "gave up after timeout");
    assert_eq!(err.location().unwrap().link(), "fails");
}

#[tokio::test]
async fn on_error_takes_precedence_over_catch() {
    let failing = |_ctx: Context| async { Err::<Context, _>(Error::unavailable("x")) };
    let chain = Chain::named("c")
        .step(
            Step::new(failing)
                .named("routed")
                .on_error(
                    |_err, ctx: Context| async move { Ok(ctx.with("handled_by", "on_error")) },
                ),
        )
        .step(Step::new(failing).named("caught"))
        .catch(|_err, ctx: Context| async move {
            let by: Option<String> = ctx.get("handled_by")?;
            Ok(ctx.with("handled_by", format!("{}+catch", by.unwrap_or_default())))
        });
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(
        out.get::<String>("handled_by").unwrap().as_deref(),
        Some("on_error+catch")
    );
}

#[tokio::test]
async fn without_a_handler_a_recovered_step_does_not_hide_later_errors() {
    let chain = Chain::named("c")
        .step(
            Step::new(|_ctx: Context| async { Err::<Context, _>(Error::unavailable("x")) })
                .on_error(|_err, ctx: Context| async move { Ok(ctx) }),
        )
        .link(named("later", |_ctx: Context| async {
            Err::<Context, _>(Error::forbidden("no"))
        }));
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert_eq!(err.location().unwrap().index(), 1);
}
