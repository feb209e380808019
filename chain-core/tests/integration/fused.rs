use chain_core::describe::LinkKind;
use chain_core::{Chain, Context, Error, ErrorKind, Result, StaticLink, fused, named};

use crate::support::{push_trace, trace};

async fn first(ctx: Context) -> Result<Context> {
    push_trace(ctx, "first")
}

async fn second(ctx: Context) -> Result<Context> {
    push_trace(ctx, "second")
}

async fn third(ctx: Context) -> Result<Context> {
    push_trace(ctx, "third")
}

async fn refuse(_ctx: Context) -> Result<Context> {
    Err(Error::forbidden("over the credit limit"))
}

#[tokio::test]
async fn a_fused_run_passes_the_context_through_its_links_in_order() {
    let chain = Chain::named("outer")
        .link(first)
        .link(fused("middle", (second, third)))
        .link_sync(|ctx: Context| push_trace(ctx, "last"));
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(trace(&out), ["first", "second", "third", "last"]);
}

#[tokio::test]
async fn a_failing_link_stops_the_run_and_is_located_inside_it() {
    let chain = Chain::named("outer")
        .link(first)
        .link(fused("checks", (second, refuse, third)));
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    let location = err.location().unwrap();
    assert_eq!(
        (location.chain(), location.link(), location.index()),
        ("checks", "refuse", 1)
    );
}

#[tokio::test]
async fn a_panic_inside_the_run_names_the_link_that_panicked() {
    let boom = named("boom", |ctx: Context| async move {
        if ctx.contains_key("trace") {
            panic!("ledger out of balance");
        }
        Ok(ctx)
    });
    let chain = Chain::named("outer").link(fused("ledger", (first, second, boom, third)));
    let err = chain.execute(Context::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert!(err.message().contains("ledger out of balance"), "{err}");
    let location = err.location().unwrap();
    assert_eq!(
        (location.chain(), location.link(), location.index()),
        ("ledger", "boom", 2)
    );
}

#[tokio::test]
async fn closures_and_named_links_fuse_on_a_typed_context() {
    struct Counter(u32);
    let add = |amount: u32| move |Counter(n): Counter| async move { Ok(Counter(n + amount)) };
    let run = fused("sum", (add(1), named("add_ten", add(10)), add(100)));
    assert_eq!(StaticLink::name(&named("add_ten", add(10))), "add_ten");
    let chain = Chain::<Counter>::new().link(run);
    let Counter(total) = chain.execute(Counter(0)).await.unwrap();
    assert_eq!(total, 111);
}

#[tokio::test]
async fn sixteen_links_fuse_and_run_in_order() {
    let bump = |ctx: Context| async move {
        let n: u64 = ctx.get("n")?.unwrap_or(0);
        Ok(ctx.with("n", n + 1))
    };
    let run = fused(
        "sixteen",
        (
            bump, bump, bump, bump, bump, bump, bump, bump, bump, bump, bump, bump, bump, bump,
            bump, bump,
        ),
    );
    let out = Chain::new()
        .link(run)
        .execute(Context::new())
        .await
        .unwrap();
    assert_eq!(out.get::<u64>("n").unwrap(), Some(16));
}

#[test]
fn inspect_shows_the_fused_links_as_a_nested_chain() {
    let chain = Chain::named("outer").link(fused("middle", (second, third)));
    let description = chain.inspect();
    assert_eq!(description.links[0].name, "middle");
    let LinkKind::Chain(inner) = &description.links[0].kind else {
        panic!("a fused run is described as a chain: {description:?}");
    };
    let names: Vec<&str> = inner.links.iter().map(|link| link.name.as_str()).collect();
    assert_eq!(names, ["second", "third"]);
    assert!(
        chain.to_mermaid().contains("\"third\""),
        "{}",
        chain.to_mermaid()
    );
}
