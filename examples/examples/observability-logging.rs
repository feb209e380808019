//! The seed's payment-module logging: JSON lines carrying the request id,
//! user id, chain, link and trace ids, with the card number redacted.
//!
//! Run with `cargo run -p examples --example observability-logging`.

use modulink::observability::{JsonLogLayer, Tracer};
use modulink::{Chain, Context, Error, Result, named};
use tracing_subscriber::layer::SubscriberExt;

async fn process_payment(ctx: Context) -> Result<Context> {
    tracing::info!("Processing payment");
    let Some(amount) = ctx.get::<u64>("amount")? else {
        let error = Error::validation("amount is required");
        tracing::error!(error = %error, "Payment processing failed");
        return Err(error);
    };
    if amount > 10_000 {
        // An alerting system picks this line up (see the LargeTransaction rule).
        tracing::error!(
            amount,
            card_number = "4242424242424242",
            "Large transaction detected"
        );
    }
    tracing::info!("Payment processed successfully");
    Ok(ctx.with("status", "success"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let subscriber = tracing_subscriber::registry()
        .with(JsonLogLayer::new(std::io::stdout).with_field("app_version", "1.0.0"));
    tracing::subscriber::set_global_default(subscriber)
        .unwrap_or_else(|error| panic!("logging: {error}"));

    let payments = Tracer::new()
        .instrument(Chain::named("payments").link(named("process_payment", process_payment)));
    let requests = [
        Context::new()
            .with("amount", 15_000)
            .with("user_id", "user123")
            .with("request_id", "req-abc-123"),
        Context::new()
            .with("amount", 50)
            .with("user_id", "user456")
            .with("request_id", "req-def-456"),
        Context::new()
            .with("user_id", "user789")
            .with("request_id", "req-ghi-789"),
    ];
    for request in requests {
        let _ = payments.execute(request).await;
    }
}
