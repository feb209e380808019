//! The quickstart: a signup chain with validation, enrichment, a conditional
//! step, parallel branches, error recovery and a timing observer.
//!
//! Run with `cargo run -p examples --example quickstart`.

use modulink::middleware::{LinkTimings, timing};
use modulink::{Chain, Context, Error, Parallel, Result, Step};

async fn validate_email(ctx: Context) -> Result<Context> {
    let email: String = ctx.require("email")?;
    match email.split_once('@') {
        Some((user, domain)) if !user.is_empty() && domain.contains('.') => Ok(ctx),
        _ => Err(Error::validation(format!(
            "`{email}` is not an email address"
        ))),
    }
}

async fn normalize(ctx: Context) -> Result<Context> {
    let email: String = ctx.require("email")?;
    Ok(ctx.with("email", email.trim().to_lowercase()))
}

async fn assign_plan(ctx: Context) -> Result<Context> {
    Ok(ctx.with("plan", "team"))
}

async fn send_welcome(ctx: Context) -> Result<Context> {
    Ok(ctx.with("welcome_sent", true))
}

async fn create_crm_record(ctx: Context) -> Result<Context> {
    Ok(ctx.with("crm_id", 4711))
}

async fn charge_trial(_ctx: Context) -> Result<Context> {
    Err(Error::unavailable("billing service is down"))
}

fn signup() -> Chain {
    Chain::named("signup")
        .observe(timing())
        .link(normalize)
        .link(validate_email)
        .when(|ctx: &Context| ctx.contains_key("company"), assign_plan)
        .parallel(
            Parallel::new()
                .branch(send_welcome)
                .branch(create_crm_record),
        )
        .step(Step::new(charge_trial).named("charge_trial").on_error(
            |err, ctx: Context| async move { Ok(ctx.with("billing_deferred", err.to_string())) },
        ))
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let chain = signup();
    println!("The chain as a Mermaid flowchart:\n{}", chain.to_mermaid());

    let input = Context::new()
        .with("email", "  Ada@Example.com ")
        .with("company", "Analytical Engines");
    let out = chain.execute(input).await?;
    println!("Signup succeeded:\n{}", serde_json::to_string_pretty(&out)?);
    if let Some(timings) = out.ext::<LinkTimings>() {
        for timing in timings {
            println!("  {:<14} {:>10.3?}", timing.name, timing.duration);
        }
    }

    let err = chain
        .execute(Context::new().with("email", "not-an-email"))
        .await
        .expect_err("an invalid email is rejected");
    println!("Invalid input is rejected: {err:#}");

    // One chain serves many concurrent executions: cloning it is cheap.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..100 {
        let chain = chain.clone();
        tasks.spawn(async move {
            let email = format!("user{n}@example.com");
            chain.execute(Context::new().with("email", email)).await
        });
    }
    let mut succeeded = 0;
    while let Some(outcome) = tasks.join_next().await {
        succeeded += usize::from(matches!(outcome, Ok(Ok(_))));
    }
    println!("{succeeded} of 100 concurrent signups succeeded through one shared chain");
    Ok(())
}
