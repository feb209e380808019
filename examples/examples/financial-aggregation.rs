//! Case study 2: financial data aggregation and reporting.
//!
//! A user logs in (bcrypt, JWT); their report chain checks the token, then
//! fetches from four data sources at once (a bank, a broker, a crypto
//! exchange and a pension fund: real HTTP servers on 127.0.0.1, each behind
//! its own rate limit, each asking for its own API token, which comes from
//! the `SecretManager`), validates and normalizes what each returns into
//! one format, consolidates, calculates the portfolio's value, allocation
//! and concentration risk, and produces a JSON report. Entries that fail
//! validation are left out and listed, never silently summed; a source
//! that cannot be reached is named in the report, which then says it is
//! incomplete. Answers are cached per user and source for a minute, so a
//! second report does not call the sources again. The report is delivered
//! encrypted (Fernet) to a sink: a file.
//!
//! Run with `cargo run -p examples --example financial-aggregation`.
//! Settings, read through the `SecretManager` from the environment, with
//! development defaults: `BANK_API_TOKEN`, `BROKER_API_TOKEN`,
//! `EXCHANGE_API_TOKEN`, `PENSION_API_TOKEN`, `REPORT_KEY` (a Fernet key);
//! `REPORT_SINK` names the file the encrypted report is written to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use modulink::resilience::{Backoff, Orchestrator, RateLimiter, Retry, ServiceEndpoint};
use modulink::security::auth::{
    AuthConfig, AuthManager, AuthenticatedUser, JwtKeys, JwtSettings, MemoryUserStore, Role,
    SigningKey, auth,
};
use modulink::security::secrets::{EnvSource, Fernet, Secret, SecretManager, StaticSource};
use modulink::{
    BoxFuture, Chain, Context, Error, Link, Parallel, RequestMeta, Result, Step, named,
};
use serde_json::{Value, json};

/// The sources, their development API tokens, and what each answers.
const SOURCES: [&str; 4] = ["bank", "broker", "exchange", "pension"];

/// Each source counts the calls it gets and answers only its own token.
#[derive(Clone)]
struct Source {
    token: Secret,
    calls: Arc<AtomicU64>,
    answer: Answer,
}

async fn source(
    axum::extract::State(source): axum::extract::State<Source>,
    headers: HeaderMap,
) -> Response {
    source.calls.fetch_add(1, Ordering::SeqCst);
    let sent = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(Secret::new);
    if sent.as_ref() != Some(&source.token) {
        return (StatusCode::UNAUTHORIZED, "bad API token").into_response();
    }
    (source.answer)()
}

fn bank() -> Response {
    Json(json!({"accounts": [
        {"iban": "DE89370400440532013000", "currency": "USD", "balance_cents": 1_250_000},
        {"iban": "DE02120300000000202051", "currency": "USD", "balance_cents": 310_050},
        {"iban": "broken", "currency": "USD", "balance_cents": -5}
    ]}))
    .into_response()
}

fn broker() -> Response {
    Json(json!({"positions": [
        {"symbol": "ACME", "quantity": 120, "price": 52.10},
        {"symbol": "GLOBEX", "quantity": 40, "price": 310.00},
        {"symbol": "INITECH", "quantity": 10}
    ]}))
    .into_response()
}

fn exchange() -> Response {
    Json(json!({"wallets": [
        {"asset": "BTC", "amount": "0.35", "usd_rate": "64000.00"},
        {"asset": "ETH", "amount": "4.2", "usd_rate": "3100.00"}
    ]}))
    .into_response()
}

/// The pension fund is down for maintenance all day.
fn pension() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response()
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

fn normalize_pension(ctx: Context) -> Result<Context> {
    let answer: Value = ctx.require("pension_result")?;
    let (mut holdings, mut refused) = (Vec::new(), Vec::new());
    for fund in answer["funds"].as_array().into_iter().flatten() {
        match (fund["name"].as_str(), fund["value_usd"].as_f64()) {
            (Some(name), Some(value)) if value >= 0.0 => {
                holdings.push(holding("pension", name, "pension", value));
            }
            _ => refused.push(rejected("pension", fund, "missing name or value")),
        }
    }
    Ok(ctx
        .with("pension_holdings", holdings)
        .with("pension_rejected", refused))
}

fn consolidate(ctx: Context) -> Result<Context> {
    let mut holdings = Vec::new();
    let mut refused = Vec::new();
    let mut unavailable = Vec::new();
    for source in SOURCES {
        if let Some(error) = ctx.get_value(&format!("{source}_unavailable")) {
            unavailable.push(json!({"source": source, "error": error}));
            continue;
        }
        holdings.extend(ctx.require::<Vec<Value>>(&format!("{source}_holdings"))?);
        refused.extend(ctx.require::<Vec<Value>>(&format!("{source}_rejected"))?);
    }
    Ok(ctx
        .with("holdings", holdings)
        .with("rejected_entries", refused)
        .with("unavailable_sources", unavailable))
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
    for class in ["cash", "equity", "crypto", "pension"] {
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
        // A source that could not be reached is named, and the total is
        // said to be partial, rather than quietly lower.
        "unavailable_sources": ctx.require::<Value>("unavailable_sources")?,
        "complete": ctx.require::<Vec<Value>>("unavailable_sources")?.is_empty(),
    });
    Ok(ctx.with("report", report))
}

/// A cached answer: when it was fetched, and what it was, by user and
/// source.
type Answers = HashMap<(String, &'static str), (Instant, Value)>;

/// What a source answers.
type Answer = fn() -> Response;

/// Answers kept per (user, source) for a while: a second report within the
/// time to live reads them instead of calling the source again.
#[derive(Clone)]
struct AnswerCache {
    ttl: Duration,
    answers: Arc<Mutex<Answers>>,
}

impl AnswerCache {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            answers: Arc::default(),
        }
    }

    fn get(&self, user: &str, source: &'static str) -> Option<Value> {
        let mut answers = self
            .answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (user.to_owned(), source);
        match answers.get(&key) {
            Some((at, answer)) if at.elapsed() < self.ttl => Some(answer.clone()),
            Some(_) => {
                answers.remove(&key);
                None
            }
            None => None,
        }
    }

    fn put(&self, user: &str, source: &'static str, answer: Value) {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((user.to_owned(), source), (Instant::now(), answer));
    }
}

/// Fetches one source's answer into `{source}_result`, from the cache when
/// it is fresh, otherwise through `fetch` (rate limited, with the source's
/// token), and keeps it.
struct CachedFetch {
    source: &'static str,
    fetch: Chain,
    cache: AnswerCache,
}

impl Link<Context> for CachedFetch {
    fn call(&self, ctx: Context) -> BoxFuture<'_, Result<Context>> {
        Box::pin(async move {
            let user = ctx
                .ext::<AuthenticatedUser>()
                .map(|user| user.username.clone())
                .ok_or_else(|| Error::internal("authenticated first"))?;
            let field = format!("{}_result", self.source);
            if let Some(answer) = self.cache.get(&user, self.source) {
                return Ok(ctx.with(field, answer));
            }
            let ctx = self.fetch.execute(ctx).await?;
            let answer = ctx.require::<Value>(&field)?;
            self.cache.put(&user, self.source, answer);
            Ok(ctx)
        })
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // Secrets: the environment first, development defaults after it.
    let generated_report_key = Fernet::generate_key()?;
    let secrets = SecretManager::builder()
        .source(EnvSource::new())
        .source(StaticSource::new([
            ("bank-api-token", "dev-bank-token-7f3a"),
            ("broker-api-token", "dev-broker-token-91c2"),
            ("exchange-api-token", "dev-exchange-token-5d0e"),
            ("pension-api-token", "dev-pension-token-c4b8"),
            ("report-key", generated_report_key.as_str()),
        ]))
        .build();
    let answers: [(&str, Answer); 4] = [
        ("bank", bank),
        ("broker", broker),
        ("exchange", exchange),
        ("pension", pension),
    ];
    let mut urls = HashMap::new();
    let mut calls = Vec::new();
    for (name, answer) in answers {
        // Each source knows its token from the same place the client reads
        // it: in production, the source's own configuration.
        let state = Source {
            token: secrets.get(&format!("{name}-api-token")).await?,
            calls: Arc::default(),
            answer,
        };
        calls.push((name, Arc::clone(&state.calls)));
        let app = axum::Router::new()
            .route("/", post(source))
            .with_state(state);
        urls.insert(name, serve(app).await?);
    }

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
    for user in ["ada", "grace"] {
        manager.create_user(user, "Analytical1", Role::User).await?;
    }

    // One orchestrator per source, each sending that source's token (from
    // the SecretManager, redacted in every Debug and log) and nothing else.
    // Each source allows two calls per second, with a burst of two.
    let cache = AnswerCache::new(Duration::from_secs(60));
    let mut branches = Parallel::new();
    for (name, normalize) in [
        ("bank", normalize_bank as fn(Context) -> Result<Context>),
        ("broker", normalize_broker),
        ("exchange", normalize_exchange),
        ("pension", normalize_pension),
    ] {
        let token = secrets.get(&format!("{name}-api-token")).await?;
        let endpoint = ServiceEndpoint::new(name, urls[name].clone())
            .timeout(Duration::from_secs(2))
            .retry(Retry::new(2).backoff(Backoff::Constant(Duration::from_millis(20))));
        let fetch = Orchestrator::new([endpoint])?.header_hook(move |_, headers| {
            if let Ok(value) = format!("Bearer {}", token.expose()).parse() {
                headers.insert("authorization", value);
            }
        });
        let fetch = Chain::named(format!("fetch_{name}")).step(
            Step::new(fetch.chain([name])?).around(RateLimiter::per_second(name, 2).burst(2)),
        );
        let cached = CachedFetch {
            source: name,
            fetch,
            cache: cache.clone(),
        };
        branches = branches.branch(
            Chain::named(name)
                // A source that fails is recorded, not fatal: the report
                // names it.
                .step(Step::new(named(format!("fetch_{name}"), cached)).on_error(
                    move |error, ctx: Context| async move {
                        Ok(ctx.with(format!("{name}_unavailable"), format!("{error:#}")))
                    },
                ))
                .link(named(
                    format!("normalize_{name}"),
                    move |ctx: Context| async move {
                        if ctx.contains_key(&format!("{name}_unavailable")) {
                            return Ok(ctx);
                        }
                        normalize(ctx)
                    },
                )),
        );
    }
    let report_key = Fernet::new(secrets.get("report-key").await?.expose())?;
    let sink = std::env::var("REPORT_SINK").map_or_else(
        |_| std::env::temp_dir().join(format!("portfolio-report-{}.fernet", std::process::id())),
        std::path::PathBuf::from,
    );
    let deliver_to = sink.clone();
    let report_chain = Chain::named("portfolio_report")
        // The token travels in the request's `RequestMeta` extension, so the
        // JSON sent to the data sources never holds it.
        .link(auth(&manager, [Role::User, Role::Admin]))
        .parallel(branches)
        .link_sync(consolidate)
        .link_sync(calculate)
        .link_sync(report)
        // Delivered encrypted: only a holder of the report key reads it.
        .link_sync(move |ctx: Context| {
            let report = serde_json::to_vec(&ctx.require::<Value>("report")?)
                .map_err(Error::internal_from)?;
            let token = report_key.encrypt(&report)?;
            std::fs::write(&deliver_to, &token).map_err(|error| {
                Error::unavailable(format!(
                    "cannot deliver the report to {}",
                    deliver_to.display()
                ))
                .with_source(error)
            })?;
            Ok(ctx.with("delivered_bytes", token.len()))
        });

    let request = |user: &str| {
        let manager = manager.clone();
        let user = user.to_owned();
        async move {
            let login = manager.authenticate(&user, "Analytical1").await?;
            Ok::<_, Error>(
                Context::new().with_ext(
                    RequestMeta::new()
                        .with_header("Authorization", format!("Bearer {}", login.access_token)),
                ),
            )
        }
    };
    let count = |calls: &[(&str, Arc<AtomicU64>)]| {
        calls
            .iter()
            .map(|(name, calls)| format!("{name} {}", calls.load(Ordering::SeqCst)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let out = report_chain.execute(request("ada").await?).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(out.get_value("report").unwrap_or(&Value::Null))?
    );
    println!(
        "report delivered encrypted to {} ({} bytes)",
        sink.display(),
        out.require::<u64>("delivered_bytes")?
    );
    println!(
        "calls to the sources after the first report: {}",
        count(&calls)
    );
    report_chain.execute(request("ada").await?).await?;
    println!(
        "calls to the sources after a second report: {}",
        count(&calls)
    );

    // Four reports at once for another user: more than the sources' rate
    // limits allow, with nothing cached for her yet.
    let mut attempts = Vec::new();
    for _ in 0..4 {
        let (chain, ctx) = (report_chain.clone(), request("grace").await?);
        attempts.push(tokio::spawn(async move { chain.execute(ctx).await }));
    }
    for (n, attempt) in attempts.into_iter().enumerate() {
        match attempt.await? {
            Ok(out) => {
                let report = out.require::<Value>("report")?;
                let missing: Vec<String> = report["unavailable_sources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|entry| {
                        let rate_limited = entry["error"]
                            .as_str()
                            .is_some_and(|error| error.contains("rate limit"));
                        format!(
                            "{}{}",
                            entry["source"].as_str().unwrap_or_default(),
                            if rate_limited { " (rate limited)" } else { "" }
                        )
                    })
                    .collect();
                println!(
                    "burst report {}: produced, complete {}, unavailable: {}",
                    n + 1,
                    report["complete"],
                    missing.join(", ")
                );
            }
            Err(error) => println!("burst report {}: {error:#}", n + 1),
        }
    }
    match report_chain.execute(Context::new()).await {
        Ok(_) => println!("anonymous report produced (unexpected)"),
        Err(error) => println!("anonymous report: {error:#}"),
    }
    if std::env::var("REPORT_SINK").is_err() {
        std::fs::remove_file(&sink)?;
    }
    Ok(())
}
