//! Case study 2: financial data aggregation and reporting.
//!
//! A user logs in (bcrypt, JWT); their report chain checks the token, then
//! fetches from three data sources at once (a bank, a broker and a crypto
//! exchange: real HTTP servers on 127.0.0.1, each behind its own rate
//! limit), validates and normalizes what each returns into one format,
//! consolidates, calculates the portfolio's value, allocation and
//! concentration risk, and produces a JSON report. Entries that fail
//! validation are left out and listed, never silently summed.
//!
//! Run with `cargo run -p examples --example financial-aggregation`.

use std::time::Duration;

use axum::Json;
use axum::routing::post;
use modulink::resilience::{Orchestrator, RateLimiter, ServiceEndpoint};
use modulink::security::auth::{
    AuthConfig, AuthManager, AuthenticatedUser, JwtKeys, JwtSettings, MemoryUserStore, Role,
    SigningKey, auth,
};
use modulink::{Chain, Context, Error, Parallel, RequestMeta, Result, Step, named};
use serde_json::{Value, json};

async fn bank(Json(_): Json<Value>) -> Json<Value> {
    Json(json!({"accounts": [
        {"iban": "DE89370400440532013000", "currency": "USD", "balance_cents": 1_250_000},
        {"iban": "DE02120300000000202051", "currency": "USD", "balance_cents": 310_050},
        {"iban": "broken", "currency": "USD", "balance_cents": -5}
    ]}))
}

async fn broker(Json(_): Json<Value>) -> Json<Value> {
    Json(json!({"positions": [
        {"symbol": "ACME", "quantity": 120, "price": 52.10},
        {"symbol": "GLOBEX", "quantity": 40, "price": 310.00},
        {"symbol": "INITECH", "quantity": 10}
    ]}))
}

async fn exchange(Json(_): Json<Value>) -> Json<Value> {
    Json(json!({"wallets": [
        {"asset": "BTC", "amount": "0.35", "usd_rate": "64000.00"},
        {"asset": "ETH", "amount": "4.2", "usd_rate": "3100.00"}
    ]}))
}

async fn serve(app: axum::Router) -> std::result::Result<String, Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// One holding in the common format, or why an entry was left out.
fn holding(source: &str, asset: &str, class: &str, value_usd: f64) -> Value {
    json!({"source": source, "asset": asset, "class": class, "value_usd": (value_usd * 100.0).round() / 100.0})
}

fn rejected(source: &str, entry: &Value, reason: &str) -> Value {
    json!({"source": source, "entry": entry, "reason": reason})
}

fn normalize_bank(ctx: Context) -> Result<Context> {
    let answer: Value = ctx.require("bank_result")?;
    let (mut holdings, mut refused) = (Vec::new(), Vec::new());
    for account in answer["accounts"].as_array().into_iter().flatten() {
        let iban = account["iban"].as_str().unwrap_or_default();
        match account["balance_cents"].as_i64() {
            Some(cents) if cents >= 0 && iban.len() >= 15 => {
                holdings.push(holding("bank", iban, "cash", cents as f64 / 100.0));
            }
            _ => refused.push(rejected(
                "bank",
                account,
                "invalid IBAN or negative balance",
            )),
        }
    }
    Ok(ctx
        .with("bank_holdings", holdings)
        .with("bank_rejected", refused))
}

fn normalize_broker(ctx: Context) -> Result<Context> {
    let answer: Value = ctx.require("broker_result")?;
    let (mut holdings, mut refused) = (Vec::new(), Vec::new());
    for position in answer["positions"].as_array().into_iter().flatten() {
        match (
            position["symbol"].as_str(),
            position["quantity"].as_f64(),
            position["price"].as_f64(),
        ) {
            (Some(symbol), Some(quantity), Some(price)) if quantity >= 0.0 && price >= 0.0 => {
                holdings.push(holding("broker", symbol, "equity", quantity * price));
            }
            _ => refused.push(rejected("broker", position, "missing quantity or price")),
        }
    }
    Ok(ctx
        .with("broker_holdings", holdings)
        .with("broker_rejected", refused))
}

fn normalize_exchange(ctx: Context) -> Result<Context> {
    let answer: Value = ctx.require("exchange_result")?;
    let (mut holdings, mut refused) = (Vec::new(), Vec::new());
    // The exchange sends numbers as strings: parse, do not guess.
    for wallet in answer["wallets"].as_array().into_iter().flatten() {
        let number = |field: &str| {
            wallet[field]
                .as_str()
                .and_then(|text| text.parse::<f64>().ok())
        };
        match (
            wallet["asset"].as_str(),
            number("amount"),
            number("usd_rate"),
        ) {
            (Some(asset), Some(amount), Some(rate)) if amount >= 0.0 && rate > 0.0 => {
                holdings.push(holding("exchange", asset, "crypto", amount * rate));
            }
            _ => refused.push(rejected("exchange", wallet, "unparseable amount or rate")),
        }
    }
    Ok(ctx
        .with("exchange_holdings", holdings)
        .with("exchange_rejected", refused))
}

fn consolidate(ctx: Context) -> Result<Context> {
    let mut holdings = Vec::new();
    let mut refused = Vec::new();
    for source in ["bank", "broker", "exchange"] {
        holdings.extend(ctx.require::<Vec<Value>>(&format!("{source}_holdings"))?);
        refused.extend(ctx.require::<Vec<Value>>(&format!("{source}_rejected"))?);
    }
    Ok(ctx
        .with("holdings", holdings)
        .with("rejected_entries", refused))
}

fn calculate(ctx: Context) -> Result<Context> {
    let holdings: Vec<Value> = ctx.require("holdings")?;
    let total: f64 = holdings
        .iter()
        .filter_map(|h| h["value_usd"].as_f64())
        .sum();
    if total <= 0.0 {
        return Err(Error::validation("no valid holdings to report on"));
    }
    let mut by_class = serde_json::Map::new();
    for class in ["cash", "equity", "crypto"] {
        let value: f64 = holdings
            .iter()
            .filter(|h| h["class"] == class)
            .filter_map(|h| h["value_usd"].as_f64())
            .sum();
        by_class.insert(
            class.to_owned(),
            json!((value / total * 1000.0).round() / 10.0),
        );
    }
    let largest = holdings
        .iter()
        .max_by(|a, b| {
            a["value_usd"]
                .as_f64()
                .partial_cmp(&b["value_usd"].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .cloned()
        .unwrap_or_default();
    let concentration = largest["value_usd"].as_f64().unwrap_or(0.0) / total;
    let risk = if concentration > 0.4 {
        "high"
    } else if concentration > 0.25 {
        "medium"
    } else {
        "low"
    };
    Ok(ctx
        .with("total_value_usd", (total * 100.0).round() / 100.0)
        .with("allocation_percent", Value::Object(by_class))
        .with("concentration", json!({"largest": largest["asset"], "share_percent": (concentration * 1000.0).round() / 10.0, "risk": risk})))
}

fn report(ctx: Context) -> Result<Context> {
    let user = ctx
        .ext::<AuthenticatedUser>()
        .cloned()
        .ok_or_else(|| Error::internal("authenticated first"))?;
    let report = json!({
        "user": user.username,
        "total_value_usd": ctx.require::<Value>("total_value_usd")?,
        "allocation_percent": ctx.require::<Value>("allocation_percent")?,
        "concentration": ctx.require::<Value>("concentration")?,
        "holdings": ctx.require::<Value>("holdings")?.as_array().map_or(0, Vec::len),
        "rejected_entries": ctx.require::<Value>("rejected_entries")?,
    });
    Ok(ctx.with("report", report))
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let sources = [
        (
            "bank",
            serve(axum::Router::new().route("/", post(bank))).await?,
        ),
        (
            "broker",
            serve(axum::Router::new().route("/", post(broker))).await?,
        ),
        (
            "exchange",
            serve(axum::Router::new().route("/", post(exchange))).await?,
        ),
    ];
    let fetch = Orchestrator::new(sources.iter().map(|(name, url)| {
        ServiceEndpoint::new(*name, url.clone()).timeout(Duration::from_secs(2))
    }))?;

    let manager = AuthManager::new(
        MemoryUserStore::new(),
        JwtKeys::new(
            SigningKey::hmac("2026-11", b"an-hs256-secret-of-32-bytes-long")?,
            JwtSettings::default(),
        )?,
        AuthConfig {
            bcrypt_cost: 10,
            ..AuthConfig::default()
        },
    );
    manager
        .create_user("ada", "Analytical1", Role::User)
        .await?;

    // Each source allows two calls per second, with a burst of two.
    let branch = |name: &'static str, normalize: fn(Context) -> Result<Context>| -> Result<Chain> {
        Ok(Chain::named(name)
            .step(Step::new(fetch.chain([name])?).around(RateLimiter::per_second(name, 2).burst(2)))
            .link(named(
                format!("normalize_{name}"),
                move |ctx: Context| async move { normalize(ctx) },
            )))
    };
    let report_chain = Chain::named("portfolio_report")
        // The token travels in the request's `RequestMeta` extension, so the
        // JSON sent to the data sources never holds it.
        .link(auth(&manager, [Role::User, Role::Admin]))
        .parallel(
            Parallel::new()
                .branch(branch("bank", normalize_bank)?)
                .branch(branch("broker", normalize_broker)?)
                .branch(branch("exchange", normalize_exchange)?),
        )
        .link_sync(consolidate)
        .link_sync(calculate)
        .link_sync(report);

    let login = manager.authenticate("ada", "Analytical1").await?;
    let request = || {
        Context::new().with_ext(
            RequestMeta::new()
                .with_header("Authorization", format!("Bearer {}", login.access_token)),
        )
    };
    let out = report_chain.execute(request()).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(out.get_value("report").unwrap_or(&Value::Null))?
    );

    // Four more reports at once: more than the sources' rate limits allow.
    let attempts: Vec<_> = (0..4)
        .map(|_| {
            let (chain, ctx) = (report_chain.clone(), request());
            tokio::spawn(async move { chain.execute(ctx).await })
        })
        .collect();
    for (n, attempt) in attempts.into_iter().enumerate() {
        match attempt.await? {
            Ok(_) => println!("report {}: produced", n + 2),
            Err(error) => println!("report {}: {error:#}", n + 2),
        }
    }
    match report_chain.execute(Context::new()).await {
        Ok(_) => println!("anonymous report produced (unexpected)"),
        Err(error) => println!("anonymous report: {error:#}"),
    }
    Ok(())
}
