//! The seed's event-driven architecture, in process: registration and
//! order chains subscribed to their events, a compensating chain on
//! `_failed` events, an audit chain on `_completed` events, a critical
//! event handled before `publish` returns, redelivery and dead letters, and
//! the history of one conversation.
//!
//! Run with `cargo run -p examples --example event-driven`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use examples::price_items;
use modulink::scaling::events::{Event, EventBus, Priority, Redelivery};
use modulink::{Chain, Context, Error, Result};
use serde_json::{Value, json};

async fn validate_user_data(ctx: Context) -> Result<Context> {
    let user: Value = ctx.require("event_data")?;
    for field in ["email", "username", "password"] {
        if user.get(field).is_none() {
            return Err(Error::validation(format!(
                "missing required field: {field}"
            )));
        }
    }
    Ok(ctx.with("validation_passed", true))
}

async fn create_user_account(ctx: Context) -> Result<Context> {
    let user: Value = ctx.require("event_data")?;
    let username = user["username"].as_str().unwrap_or_default();
    Ok(ctx
        .with("user_created", true)
        .with("user_id", format!("USR-{username}"))
        .with("account_status", "pending_verification"))
}

async fn send_verification_email(ctx: Context) -> Result<Context> {
    let user_id: String = ctx.require("user_id")?;
    Ok(ctx
        .with("verification_email_sent", true)
        .with("verification_token", format!("VTK-{user_id}")))
}

fn registration() -> Chain {
    Chain::named("registration")
        .link(validate_user_data)
        .link(create_user_account)
        .link(send_verification_email)
}

async fn validate_inventory(ctx: Context) -> Result<Context> {
    let order: Value = ctx.require("event_data")?;
    for item in order["items"].as_array().into_iter().flatten() {
        if item["quantity"].as_i64().unwrap_or(0) <= 0 {
            return Err(Error::validation(format!(
                "invalid quantity for item {}",
                item["product_id"]
            )));
        }
    }
    Ok(ctx.with("inventory_validated", true))
}

async fn calculate_pricing(ctx: Context) -> Result<Context> {
    let order: Value = ctx.require("event_data")?;
    let items = order["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let pricing = price_items(items)?;
    Ok(ctx
        .with("subtotal", pricing.subtotal)
        .with("tax", pricing.tax)
        .with("total", pricing.total))
}

/// The payment provider fails the first attempt of every order: the bus
/// redelivers it after the backoff.
fn process_payment(attempts: Arc<AtomicU32>) -> impl Fn(Context) -> Result<Context> + Clone {
    move |ctx: Context| {
        attempts.fetch_add(1, Ordering::Relaxed);
        let delivery: u32 = ctx.require("delivery")?;
        if delivery == 1 {
            return Err(Error::unavailable("payment provider timed out"));
        }
        let event_id: String = ctx.require("event_id")?;
        // The event id makes the charge idempotent across redeliveries.
        Ok(ctx
            .with("payment_id", format!("PAY-{}", &event_id[..8]))
            .with("payment_status", "completed"))
    }
}

fn orders(attempts: Arc<AtomicU32>) -> Chain {
    Chain::named("orders")
        .link(validate_inventory)
        .link(calculate_pricing)
        .link_sync(process_payment(attempts))
}

fn audit() -> Chain {
    Chain::named("audit").link_sync(|ctx: Context| {
        let report: Value = ctx.require("event_data")?;
        let correlation: String = ctx.require("correlation_id")?;
        println!(
            "audit: {correlation} completed by {} -> {}",
            report["subscription"].as_str().unwrap_or("?"),
            report["result"]
        );
        Ok(ctx)
    })
}

fn compensate() -> Chain {
    Chain::named("compensate").link_sync(|ctx: Context| {
        let report: Value = ctx.require("event_data")?;
        let correlation: String = ctx.require("correlation_id")?;
        println!(
            "compensate: {correlation} failed after {} deliveries: {}",
            report["deliveries"], report["error"]
        );
        Ok(ctx)
    })
}

fn alarm() -> Chain {
    Chain::named("pager").link_sync(|ctx: Context| {
        let alarm: Value = ctx.require("event_data")?;
        println!("pager: {}", alarm["message"].as_str().unwrap_or("?"));
        Ok(ctx)
    })
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let payment_attempts = Arc::new(AtomicU32::new(0));
    let bus = EventBus::builder()
        .workers(2)
        .redelivery(
            Redelivery::new(3).with_backoff(Duration::from_millis(20), Duration::from_millis(200)),
        )
        .build()?;
    bus.subscribe("user_registration", registration()).await?;
    bus.subscribe("order_created", orders(Arc::clone(&payment_attempts)))
        .await?;
    bus.subscribe("order_created_completed", audit()).await?;
    bus.subscribe("user_registration_completed", audit())
        .await?;
    bus.subscribe("user_registration_failed", compensate())
        .await?;
    bus.subscribe("order_created_failed", compensate()).await?;
    bus.subscribe("fraud_alarm", alarm()).await?;

    bus.publish(
        Event::new(
            "user_registration",
            json!({"email": "user@example.com", "username": "newuser", "password": "secure"}),
        )
        .with_correlation_id("REG-001"),
    )
    .await?;
    bus.publish(
        Event::new(
            "order_created",
            json!({
                "user_id": "USR-12345",
                "items": [
                    {"product_id": "PROD-001", "quantity": 2, "price": 29.99},
                    {"product_id": "PROD-002", "quantity": 1, "price": 49.99}
                ]
            }),
        )
        .with_priority(Priority::High)
        .with_correlation_id("ORD-001"),
    )
    .await?;
    bus.publish(
        Event::new(
            "order_created",
            json!({"items": [{"product_id": "PROD-003", "quantity": 0, "price": 5.0}]}),
        )
        .with_correlation_id("ORD-002"),
    )
    .await?;
    bus.publish(
        Event::new(
            "fraud_alarm",
            json!({"message": "card used in two countries"}),
        )
        .with_priority(Priority::Critical),
    )
    .await?;
    println!("published 4 events; the critical alarm was handled before publish returned");

    bus.shutdown().await;

    let stats = bus.stats();
    println!(
        "stats: published {}, completed {}, redelivered {}, dead-lettered {}",
        stats.published, stats.completed, stats.redelivered, stats.dead_lettered
    );
    println!(
        "payment attempts: {}",
        payment_attempts.load(Ordering::Relaxed)
    );
    for letter in bus.dead_letters().drain() {
        println!(
            "dead letter: {} ({}) after {} delivery: {}",
            letter.event.correlation_id, letter.subscription, letter.deliveries, letter.error
        );
    }
    if let Some(store) = bus.store() {
        let history: Vec<_> = store
            .by_correlation_id("ORD-001")
            .iter()
            .map(|event| event.event_type.to_string())
            .collect();
        println!("history of ORD-001: {}", history.join(" -> "));
    }
    Ok(())
}
