use chain_core::describe::LinkKind;
use chain_core::middleware::{from_fn, timing};
use chain_core::{Chain, Context, Parallel, Result, Step, named};

async fn validate(ctx: Context) -> Result<Context> {
    Ok(ctx)
}

async fn charge(ctx: Context) -> Result<Context> {
    Ok(ctx)
}

fn sample() -> Chain {
    let notify = Chain::named("notify")
        .link(named("email", validate))
        .link(named("sms", validate));
    Chain::named("checkout")
        .around_each(timing())
        .around(from_fn(|ctx: Context, next| next.run(ctx)).named("trace"))
        .link(validate)
        .when(|ctx: &Context| ctx.contains_key("card"), charge)
        .parallel(
            Parallel::new()
                .branch(named("fraud", validate))
                .branch(notify),
        )
        .step(
            Step::new(charge)
                .named("refund")
                .around(timing())
                .on_error(|_err, ctx: Context| async move { Ok(ctx) }),
        )
}

#[test]
fn inspect_describes_links_middleware_branches_and_nesting() {
    let description = sample().inspect();
    assert_eq!(description.name, "checkout");
    assert_eq!(description.around_each, ["timing"]);
    assert_eq!(description.around, ["trace"]);
    let names: Vec<&str> = description.links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["validate", "charge", "parallel", "refund"]);
    assert!(description.links[1].conditional);
    assert!(!description.links[0].conditional);
    assert_eq!(description.links[3].around, ["timing"]);
    assert!(description.links[3].on_error.is_some());

    let LinkKind::Parallel { branches } = &description.links[2].kind else {
        panic!(
            "expected a parallel step, got {:?}",
            description.links[2].kind
        );
    };
    assert_eq!(branches[0].name, "fraud");
    let LinkKind::Chain(nested) = &branches[1].kind else {
        panic!("expected a nested chain, got {:?}", branches[1].kind);
    };
    assert_eq!(
        nested
            .links
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>(),
        ["email", "sms"]
    );
}

#[test]
fn inspect_serializes_to_json() {
    let json = serde_json::to_value(sample().inspect()).unwrap();
    assert_eq!(json["links"][2]["kind"]["type"], "parallel");
    assert_eq!(
        json["links"][2]["kind"]["branches"][1]["kind"]["type"],
        "chain"
    );
}

#[test]
fn mermaid_renders_every_construct() {
    let chart = sample().to_mermaid();
    let expected = [
        "flowchart TD",
        "start([\"checkout\"])",
        "n0[\"validate\"]",
        "start --> n0",
        "n1_when{\"when\"}",
        "n0 --> n1_when",
        "n1_when -- yes --> n1",
        "n1_when -- no --> n2",
        "n2{{\"parallel\"}}",
        "n2 --> n2_b0",
        "subgraph n2_b1 [\"notify\"]",
        "n2_b1_0 --> n2_b1_1",
        "n2_b1_1 --> n2_join",
        "n2_join --> n3",
        "n3[\"refund<br/>⟨timing⟩\"]",
        "n3 -. error .-> n3_err",
        "n3_err --> done",
        "n3 --> done",
    ];
    for line in expected {
        assert!(chart.contains(line), "missing `{line}` in:\n{chart}");
    }
}

#[test]
fn mermaid_escapes_quotes_in_names() {
    let chart = Chain::named("say \"hi\"")
        .link(named("quote\"d", validate))
        .to_mermaid();
    assert!(chart.contains("say #quot;hi#quot;"), "{chart}");
    assert!(chart.contains("quote#quot;d"), "{chart}");
}
