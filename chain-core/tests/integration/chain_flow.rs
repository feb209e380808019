use chain_core::{Chain, Context, Error, Result, named};
use serde_json::json;

use crate::support::{push_trace, trace};

async fn first(ctx: Context) -> Result<Context> {
    push_trace(ctx, "first")
}

async fn second(ctx: Context) -> Result<Context> {
    let seen = trace(&ctx);
    push_trace(ctx.with("second_saw", seen.len()), "second")
}

#[tokio::test]
async fn links_run_in_order_and_each_sees_the_previous_output() {
    let chain = Chain::new()
        .link(first)
        .link(second)
        .link_sync(|ctx: Context| push_trace(ctx, "third"));
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(trace(&out), ["first", "second", "third"]);
    assert_eq!(out.get::<usize>("second_saw").unwrap(), Some(1));
}

#[tokio::test]
async fn an_empty_chain_returns_its_input_unchanged() {
    let input = Context::from_json(json!({"a": 1, "b": [true, null]})).unwrap();
    let out = Chain::<Context>::new()
        .execute(input.clone())
        .await
        .unwrap();
    assert_eq!(out, input);
    assert_eq!(out.to_json(), json!({"a": 1, "b": [true, null]}));
}

#[tokio::test]
async fn sync_and_async_links_mix() {
    let chain = Chain::new()
        .link_sync(|ctx: Context| Ok(ctx.with("n", 1)))
        .link(|ctx: Context| async move {
            let n: i64 = ctx.require("n")?;
            Ok(ctx.with("n", n + 10))
        })
        .link_sync(|ctx: Context| {
            let n: i64 = ctx.require("n")?;
            Ok(ctx.with("n", n * 2))
        });
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(out.get::<i64>("n").unwrap(), Some(22));
}

#[derive(Debug, PartialEq)]
struct Order {
    quantity: u32,
    total: u32,
    steps: Vec<&'static str>,
}

async fn price(mut order: Order) -> Result<Order> {
    order.total = order.quantity * 5;
    order.steps.push("price");
    Ok(order)
}

#[tokio::test]
async fn typed_contexts_flow_through_links() {
    let chain = Chain::<Order>::named("typed")
        .link(price)
        .link_sync(|mut order: Order| {
            if order.total > 100 {
                return Err(Error::validation("too expensive"));
            }
            order.steps.push("check");
            Ok(order)
        });
    let out = chain
        .execute(Order {
            quantity: 3,
            total: 0,
            steps: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        out,
        Order {
            quantity: 3,
            total: 15,
            steps: vec!["price", "check"]
        }
    );

    let err = chain
        .execute(Order {
            quantity: 30,
            total: 0,
            steps: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.location().unwrap().link(),
        "typed_contexts_flow_through_links::{{closure}}::{{closure}}"
    );
}

#[tokio::test]
async fn chains_nest_as_links() {
    let inner = Chain::named("inner").link(first).link(second);
    let outer = Chain::named("outer")
        .link_sync(|ctx: Context| push_trace(ctx, "before"))
        .link(inner)
        .link_sync(|ctx: Context| push_trace(ctx, "after"));
    let out = outer.execute(Context::new()).await.unwrap();
    assert_eq!(trace(&out), ["before", "first", "second", "after"]);
}

#[tokio::test]
async fn a_nested_failure_is_located_at_the_innermost_link() {
    let inner = Chain::named("inner")
        .link(first)
        .link(named("explode", |_ctx: Context| async {
            Err::<Context, _>(Error::not_found("no such sku"))
        }));
    let outer = Chain::named("outer").link(first).link(inner);
    let err = outer.execute(Context::new()).await.unwrap_err();
    let location = err.location().unwrap();
    assert_eq!(
        (location.chain(), location.link(), location.index()),
        ("inner", "explode", 1)
    );
    assert_eq!(
        err.to_string(),
        "not found error in chain `inner`, link #1 `explode`: no such sku"
    );
}

#[tokio::test]
async fn a_chain_of_ten_thousand_links_runs_in_constant_stack() {
    let chain = (0..10_000).fold(Chain::named("long"), |chain, _| {
        chain.link(|ctx: Context| async move {
            let n: u64 = ctx.get("n")?.unwrap_or(0);
            Ok(ctx.with("n", n + 1))
        })
    });
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(out.get::<u64>("n").unwrap(), Some(10_000));
}

#[tokio::test]
async fn a_long_chain_with_middleware_runs_in_constant_stack() {
    let chain = (0..10_000)
        .fold(Chain::named("long"), |chain, _| {
            chain.link_sync(|ctx: Context| {
                let n: u64 = ctx.get("n")?.unwrap_or(0);
                Ok(ctx.with("n", n + 1))
            })
        })
        .around_each(chain_core::middleware::from_fn(|ctx: Context, next| {
            next.run(ctx)
        }));
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(out.get::<u64>("n").unwrap(), Some(10_000));
}

#[tokio::test]
async fn builder_changes_after_cloning_do_not_affect_the_clone() {
    let base = Chain::named("base").link(first);
    let extended = base.clone().link(second);
    assert_eq!(base.len(), 1);
    assert_eq!(extended.len(), 2);
    let out = base.execute(Context::new()).await.unwrap();
    assert_eq!(trace(&out), ["first"]);
}
