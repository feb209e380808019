//! The flagship: case study 1, the e-commerce order pipeline, end to end.
//!
//! Order events go on the event bus; each is handled by one chain:
//! validate the order, check inventory (behind a circuit breaker), check
//! fraud (skipped for orders under 100), take the payment (an idempotency
//! key per order, the API key from the SecretManager, retried safely), send
//! email and SMS in parallel (retried), notify the warehouse. The seed
//! charges before the fraud check; here a suspicious order is held before
//! any money moves, so it never needs a refund.
//! Every service is a real HTTP server started in process on 127.0.0.1; the
//! inventory service goes down for a while and the breaker opens, the
//! payment and SMS services fail now and then. Prometheus metrics are
//! served on `/metrics`, JSON logs with trace ids go to a file, progress is
//! shown while it runs, and a summary ends it.
//!
//! ```text
//! cargo run -p examples --example ecommerce                      # in process
//! cargo run -p examples --example ecommerce -- --orders 1000
//! cargo run -p examples --example ecommerce -- --nats nats://127.0.0.1:4222 --workers 8
//! cargo run -p examples --example ecommerce -- --durable --chaos     # SQLite, workers killed
//! cargo run -p examples --example ecommerce -- --nats nats://127.0.0.1:4222 --durable --chaos
//! ```
//!
//! With `--durable` each order is a durable execution instead of an event:
//! it is checkpointed after every step (in a SQLite file, or in a JetStream
//! key-value bucket with `--nats`), and a worker that dies leaves it to
//! another, which resumes at the step that was running. With `--chaos` the
//! example runs its workers as three processes of its own binary
//! (`ecommerce worker STORE`) and kills one with SIGKILL at a third and at
//! two thirds of the run, starting a new one each time; its summary counts
//! the completed orders, the charges (one per completed order, by the
//! payment's idempotency key) and the executions another worker resumed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use examples::{http_get, price_items};
use modulink::observability::prometheus::{IntCounter, Registry};
use modulink::observability::{ChainMetrics, JsonLogLayer, MetricsServer, Tracer};
use modulink::resilience::{
    Backoff, CircuitBreakerConfig, Jitter, Orchestrator, Retry, ServiceEndpoint,
};
use modulink::scaling::durable::{
    Durability, Durable, DurableChain, ExecutionStatus, JetStreamCheckpointStore,
    SqliteCheckpointStore,
};
use modulink::scaling::events::{
    Event, EventBus, JetStream, JetStreamConfig, Redelivery, Transport, redact_credentials,
};
use modulink::security::secrets::{EnvSource, SecretManager, StaticSource};
use modulink::{Chain, Context, Error, Parallel, Result, Step, named};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::Notify;
use tracing_subscriber::layer::SubscriberExt;

type Failure = Box<dyn std::error::Error + Send + Sync>;

const PAYMENT_API_KEY: &str = "sk_test_4f9a8c2e";

// ---- The services the pipeline calls -------------------------------------

/// How the demo services behave.
#[derive(Default)]
struct Services {
    inventory_calls: AtomicU32,
    /// When the inventory's maintenance window ends, once it began.
    inventory_back: Mutex<Option<Instant>>,
    payment_calls: AtomicU32,
    sms_calls: AtomicU32,
    /// Payments by idempotency key: a retried payment is not charged twice.
    charges: Mutex<HashMap<String, String>>,
}

async fn inventory(
    State(services): State<Arc<Services>>,
    Json(order): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let n = services.inventory_calls.fetch_add(1, Ordering::SeqCst) + 1;
    // At the 40th call the service goes down for maintenance, for 400 ms.
    let down = {
        let mut back = services
            .inventory_back
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if n == 40 {
            *back = Some(Instant::now() + Duration::from_millis(400));
        }
        back.is_some_and(|back| Instant::now() < back)
    };
    if down {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "maintenance"})),
        );
    }
    (
        StatusCode::OK,
        Json(json!({"reserved": order["items"], "warehouse": "WH-1"})),
    )
}

async fn payment(
    State(services): State<Arc<Services>>,
    headers: HeaderMap,
    Json(order): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {PAYMENT_API_KEY}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad API key"})),
        );
    }
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "Idempotency-Key required"})),
        );
    };
    let n = services.payment_calls.fetch_add(1, Ordering::SeqCst) + 1;
    let payment_id = {
        let mut charges = services.charges.lock().unwrap_or_else(|p| p.into_inner());
        let next = charges.len() + 1;
        charges
            .entry(key.to_owned())
            .or_insert_with(|| format!("PAY-{next:05}"))
            .clone()
    };
    // The answer of every 7th call is lost after the charge: the retry
    // with the same key gets the same payment, not a second charge.
    if n.is_multiple_of(7) {
        return (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": "gateway timeout"})),
        );
    }
    (
        StatusCode::OK,
        Json(json!({"payment_id": payment_id, "amount": order["total"]})),
    )
}

async fn fraud(Json(order): Json<Value>) -> Json<Value> {
    // One customer looks suspicious.
    let suspicious = order["user_id"].as_str() == Some("USR-12");
    Json(json!({"score": if suspicious { 0.93 } else { 0.07 }}))
}

async fn sms(State(services): State<Arc<Services>>) -> (StatusCode, Json<Value>) {
    let n = services.sms_calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n.is_multiple_of(5) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "carrier busy"})),
        );
    }
    (StatusCode::OK, Json(json!({"sent": true})))
}

async fn accepted() -> Json<Value> {
    Json(json!({"accepted": true}))
}

async fn start_services(
    services: Arc<Services>,
) -> std::result::Result<HashMap<&'static str, String>, Failure> {
    let apps: [(&'static str, Router); 6] = [
        (
            "inventory_service",
            Router::new()
                .route("/", post(inventory))
                .with_state(Arc::clone(&services)),
        ),
        (
            "payment_service",
            Router::new()
                .route("/", post(payment))
                .with_state(Arc::clone(&services)),
        ),
        ("fraud_service", Router::new().route("/", post(fraud))),
        ("email_service", Router::new().route("/", post(accepted))),
        (
            "sms_service",
            Router::new()
                .route("/", post(sms))
                .with_state(Arc::clone(&services)),
        ),
        (
            "warehouse_service",
            Router::new().route("/", post(accepted)),
        ),
    ];
    let mut urls = HashMap::new();
    for (name, app) in apps {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        urls.insert(name, format!("http://{}/", listener.local_addr()?));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    Ok(urls)
}

// ---- The pipeline -----------------------------------------------------------

fn endpoint(name: &str, urls: &HashMap<&'static str, String>) -> ServiceEndpoint {
    ServiceEndpoint::new(name, urls.get(name).cloned().unwrap_or_default())
        .timeout(Duration::from_secs(2))
        .retry(Retry::new(3).backoff(Backoff::Constant(Duration::from_millis(5))))
}

/// Completed orders from this total up are counted as large transactions, in
/// `modulink_large_transactions_total` (the `LargeTransactionDetected`
/// alert of chain-observability's `deploy/alerts.yml` watches it) and with
/// a warning in the log.
const LARGE_TRANSACTION_USD: f64 = 200.0;

/// Counts the orders of at least [`LARGE_TRANSACTION_USD`].
fn count_large_transactions(large: IntCounter) -> impl Fn(Context) -> Result<Context> + Clone {
    move |ctx: Context| {
        let total = ctx
            .get_value("total")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if total >= LARGE_TRANSACTION_USD {
            large.inc();
            tracing::warn!(
                total,
                threshold = LARGE_TRANSACTION_USD,
                "Large transaction detected"
            );
        }
        Ok(ctx)
    }
}

/// Takes the order out of the event and prices it.
async fn validate_order(ctx: Context) -> Result<Context> {
    let order: Value = ctx.require("event_data")?;
    let items = order["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return Err(Error::validation("an order needs at least one item"));
    }
    let total = price_items(&items)?.subtotal;
    let order_id = order["order_id"].as_str().unwrap_or_default().to_owned();
    tracing::info!(order_id, total, "order received");
    Ok(ctx
        .with("order_id", order_id)
        .with("user_id", order["user_id"].clone())
        .with("items", items)
        .with("total", (total * 100.0).round() / 100.0))
}

async fn reject_fraud(ctx: Context) -> Result<Context> {
    let score = ctx
        .get_value("fraud_service_result")
        .and_then(|result| result["score"].as_f64())
        .unwrap_or(0.0);
    if score > 0.8 {
        let order_id: String = ctx.require("order_id")?;
        tracing::warn!(order_id, score, "order held for fraud review");
        return Err(Error::forbidden(format!("fraud score {score:.2}")));
    }
    Ok(ctx)
}

async fn confirm(ctx: Context) -> Result<Context> {
    let order_id: String = ctx.require("order_id")?;
    let payment = ctx
        .get_value("payment_service_result")
        .and_then(|result| result["payment_id"].as_str())
        .unwrap_or("?")
        .to_owned();
    tracing::info!(order_id, payment, "order confirmed");
    Ok(ctx.with("status", "confirmed"))
}

/// The clients of the services, shared by the pipeline's two shapes.
struct Clients {
    inventory: Orchestrator,
    payments: Orchestrator,
    others: Orchestrator,
}

async fn clients(
    urls: &HashMap<&'static str, String>,
    secrets: &SecretManager,
) -> std::result::Result<Clients, Failure> {
    let inventory = Orchestrator::new([endpoint("inventory_service", urls)
        .retry(Retry::new(1))
        .breaker(CircuitBreakerConfig::consecutive_failures(
            5,
            Duration::from_millis(300),
        ))])?;
    // The payment API key comes from the SecretManager and goes only to
    // the payment service; the order id is the idempotency key.
    let api_key = secrets.get("payment_api_key").await?;
    let payments =
        Orchestrator::new([endpoint("payment_service", urls)])?.header_hook(move |ctx, headers| {
            if let Ok(value) = format!("Bearer {}", api_key.expose()).parse() {
                headers.insert("authorization", value);
            }
            if let Some(key) = ctx.get_value("order_id").and_then(Value::as_str)
                && let Ok(value) = key.parse()
            {
                headers.insert("idempotency-key", value);
            }
        });
    let others = Orchestrator::new(
        [
            "fraud_service",
            "email_service",
            "sms_service",
            "warehouse_service",
        ]
        .map(|name| endpoint(name, urls)),
    )?;
    Ok(Clients {
        inventory,
        payments,
        others,
    })
}

fn needs_fraud_check(ctx: &Context) -> bool {
    ctx.get_value("total")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        >= 100.0
}

struct Pipeline {
    chain: Chain,
    inventory: Orchestrator,
}

async fn build_pipeline(
    urls: &HashMap<&'static str, String>,
    secrets: &SecretManager,
    metrics: &ChainMetrics,
    large_transactions: IntCounter,
) -> std::result::Result<Pipeline, Failure> {
    let Clients {
        inventory,
        payments,
        others,
    } = clients(urls, secrets).await?;
    let chain = Chain::named("order_pipeline")
        .link(named("validate_order", validate_order))
        .link(inventory.chain(["inventory_service"])?)
        .when(needs_fraud_check, others.chain(["fraud_service"])?)
        .link(named("reject_fraud", reject_fraud))
        .link(payments.chain(["payment_service"])?)
        .parallel(
            Parallel::new()
                .branch(others.chain(["email_service"])?)
                .branch(others.chain(["sms_service"])?),
        )
        .link(others.chain(["warehouse_service"])?)
        .link(named("confirm", confirm))
        // Last, so an order the bus redelivers after a failure counts once.
        .step(
            Step::sync(count_large_transactions(large_transactions))
                .named("count_large_transactions"),
        );
    let chain = Tracer::new().instrument(metrics.instrument(chain));
    Ok(Pipeline { chain, inventory })
}

/// The same pipeline as a durable chain: each step is checkpointed once it
/// finishes, so a worker that dies leaves the order to another, which
/// resumes at the step that was running. A step of the inventory or the
/// payment that fails for a reason that passes (the inventory's
/// maintenance window, its open breaker) is retried in place, 150 ms, 300 ms, 600 ms and 1.2 s later, as the bus
/// redelivers an event.
async fn durable_pipeline(
    urls: &HashMap<&'static str, String>,
    secrets: &SecretManager,
) -> std::result::Result<DurableChain<Context>, Failure> {
    let Clients {
        inventory,
        payments,
        others,
    } = clients(urls, secrets).await?;
    let patiently = || {
        Retry::new(5)
            .backoff(Backoff::Exponential {
                initial: Duration::from_millis(150),
                multiplier: 2.0,
            })
            .jitter(Jitter::None)
            // An open breaker's rejection passes too: it is retried after
            // the breaker's open time, as the bus would redeliver.
            .retry_if(|error| !error.kind().is_client_error())
    };
    Ok(DurableChain::named("order_pipeline")
        .link("validate_order", validate_order)
        .link(
            "inventory",
            Chain::named("inventory")
                .around(patiently())
                .link(inventory.chain(["inventory_service"])?),
        )
        .link(
            "fraud",
            Chain::named("fraud").when(needs_fraud_check, others.chain(["fraud_service"])?),
        )
        .link("reject_fraud", reject_fraud)
        .link(
            "payment",
            Chain::named("payment")
                .around(patiently())
                .link(payments.chain(["payment_service"])?),
        )
        .link(
            "notify",
            Chain::named("notify").parallel(
                Parallel::new()
                    .branch(others.chain(["email_service"])?)
                    .branch(others.chain(["sms_service"])?),
            ),
        )
        .link("warehouse", others.chain(["warehouse_service"])?)
        .link("confirm", confirm))
}

// ---- Running it ---------------------------------------------------------------

#[derive(Default)]
struct Tally {
    completed: AtomicU64,
    failed: AtomicU64,
    reasons: Mutex<HashMap<String, u64>>,
    finished: Notify,
}

impl Tally {
    fn done(&self) -> u64 {
        self.completed.load(Ordering::SeqCst) + self.failed.load(Ordering::SeqCst)
    }
}

fn order_id(n: usize) -> String {
    format!("ORD-{n:05}")
}

fn order_data(n: usize) -> Value {
    let items = json!([
        {"product_id": format!("PROD-{:03}", n % 17), "quantity": 1 + n % 3, "price": 19.99},
        {"product_id": "PROD-900", "quantity": 1, "price": if n.is_multiple_of(4) { 149.0 } else { 9.5 }}
    ]);
    json!({"order_id": order_id(n), "user_id": format!("USR-{:02}", n % 40), "items": items})
}

fn order(n: usize) -> Event {
    Event::new("order_created", order_data(n))
        .with_correlation_id(order_id(n))
        .with_source("storefront")
}

/// Failed orders come back 150 ms, 300 ms, 600 ms and 1.2 s later: more
/// than twice the inventory's maintenance window and its breaker's open
/// time, so a machine busy enough to stretch the outage (a test suite
/// running beside it) still loses no order. With three retries, 1 s in
/// all, one order in 200 now and then ran out of deliveries there.
fn redelivery() -> Redelivery {
    Redelivery::new(5).with_backoff(Duration::from_millis(150), Duration::from_millis(1_200))
}

struct Options {
    orders: usize,
    nats: Option<String>,
    workers: usize,
    durable: bool,
    chaos: bool,
}

fn options() -> std::result::Result<Options, Failure> {
    let mut options = Options {
        orders: 200,
        nats: None,
        workers: 4,
        durable: false,
        chaos: false,
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        let mut value = || {
            arguments
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--orders" => options.orders = value()?.parse()?,
            "--nats" => options.nats = Some(value()?),
            "--workers" => options.workers = value()?.parse()?,
            "--durable" => options.durable = true,
            "--chaos" => options.chaos = true,
            other => return Err(format!("unknown option {other}; see the example's docs").into()),
        }
    }
    if options.chaos && !options.durable {
        return Err("--chaos kills durable workers: it needs --durable".into());
    }
    Ok(options)
}

async fn run<T: Transport>(
    bus: EventBus<T>,
    pipeline: Chain,
    orders: usize,
    tally: Arc<Tally>,
) -> std::result::Result<Duration, Failure> {
    bus.subscribe("order_created", pipeline).await?;
    let completed = Arc::clone(&tally);
    bus.subscribe(
        "order_created_completed",
        Chain::named("count_completed").link_sync(move |ctx: Context| {
            completed.completed.fetch_add(1, Ordering::SeqCst);
            completed.finished.notify_one();
            Ok(ctx)
        }),
    )
    .await?;
    let failed = Arc::clone(&tally);
    bus.subscribe(
        "order_created_failed",
        Chain::named("count_failed").link_sync(move |ctx: Context| {
            let report: Value = ctx.require("event_data")?;
            let kind = report["error_kind"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned();
            *failed
                .reasons
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(kind)
                .or_default() += 1;
            failed.failed.fetch_add(1, Ordering::SeqCst);
            failed.finished.notify_one();
            Ok(ctx)
        }),
    )
    .await?;

    // Orders arrive over time, a few milliseconds apart, as from a shop.
    let started = Instant::now();
    let mut arrivals = tokio::time::interval(Duration::from_millis(4));
    for n in 1..=orders {
        arrivals.tick().await;
        bus.publish(order(n)).await?;
    }
    let total = orders as u64;
    let mut shown = 0;
    loop {
        let progress = tally.finished.notified();
        tokio::pin!(progress);
        progress.as_mut().enable();
        let done = tally.done();
        if done * 10 / total.max(1) > shown || done == total {
            shown = done * 10 / total.max(1);
            println!(
                "progress: {done}/{total} orders ({} completed, {} failed)",
                tally.completed.load(Ordering::SeqCst),
                tally.failed.load(Ordering::SeqCst)
            );
        }
        if done >= total {
            break;
        }
        tokio::time::timeout(Duration::from_secs(60), progress)
            .await
            .map_err(|_| "no order finished for a minute")?;
    }
    let elapsed = started.elapsed();
    bus.shutdown().await;
    Ok(elapsed)
}

// ---- Running it durably ------------------------------------------------------

/// The services' URLs, `name=url` separated by `;`, for worker processes.
const SERVICES_VARIABLE: &str = "ECOMMERCE_SERVICES";
const SERVICE_NAMES: [&str; 6] = [
    "inventory_service",
    "payment_service",
    "fraud_service",
    "email_service",
    "sms_service",
    "warehouse_service",
];
/// Executions each worker runs at a time.
const SLOTS: usize = 4;

/// The durable runner on `store`: a SQLite file, or a NATS URL with the
/// key-value bucket `bucket`.
async fn open_durable(store: &str, bucket: &str) -> std::result::Result<Durable<Context>, Failure> {
    let durable = if store.starts_with("nats://") {
        Durable::new(JetStreamCheckpointStore::connect(store, bucket, 1).await?)
    } else {
        Durable::new(SqliteCheckpointStore::open(store, Durability::Normal)?)
    };
    // A dead worker's orders resume 2 s after its last renewal.
    Ok(durable
        .lease(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(20)))
}

/// `ecommerce worker STORE BUCKET`: runs orders until standard input
/// closes. The services' URLs come in `ECOMMERCE_SERVICES`, the payment
/// API key in `PAYMENT_API_KEY` (read by the SecretManager's environment
/// source, as in a container).
async fn durable_worker(store: &str, bucket: &str) -> std::result::Result<(), Failure> {
    let name = std::env::var("MODULINK_WORKER_ID")
        .unwrap_or_else(|_| format!("worker-{}", std::process::id()));
    let listed = std::env::var(SERVICES_VARIABLE)?;
    let mut urls = HashMap::new();
    for pair in listed.split(';') {
        let (service, url) = pair
            .split_once('=')
            .ok_or_else(|| format!("{SERVICES_VARIABLE}: `{pair}` is not name=url"))?;
        let service = SERVICE_NAMES
            .into_iter()
            .find(|known| *known == service)
            .ok_or_else(|| format!("{SERVICES_VARIABLE}: unknown service `{service}`"))?;
        urls.insert(service, url.to_owned());
    }
    let secrets = SecretManager::builder().source(EnvSource::new()).build();
    let durable = Arc::new(
        open_durable(store, bucket)
            .await?
            .register(durable_pipeline(&urls, &secrets).await?)?,
    );
    println!("ready");
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let runners = run_slots(&durable, &name, &stopped);
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while stdin.next_line().await?.is_some() {}
    stopping.send_replace(true);
    for runner in runners {
        runner.await?;
    }
    Ok(())
}

/// [`SLOTS`] runners of `durable`'s executions, until `stopped` turns
/// true. A store that fails (a server restarting) fails a round, not the
/// worker.
fn run_slots(
    durable: &Arc<Durable<Context>>,
    name: &str,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..SLOTS)
        .map(|slot| {
            let (durable, name, stopped) = (
                Arc::clone(durable),
                format!("{name}.{slot}"),
                stopped.clone(),
            );
            tokio::spawn(async move {
                while !*stopped.borrow() {
                    let mut stop = stopped.clone();
                    let stop = async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    };
                    if let Err(error) = durable.work(&name, stop).await {
                        tracing::warn!(%error, "the checkpoint store failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect()
}

/// Starts a worker process of this binary; returns once it is ready.
async fn start_worker(
    store: &str,
    bucket: &str,
    urls: &HashMap<&'static str, String>,
    id: &str,
) -> std::result::Result<tokio::process::Child, Failure> {
    let services = urls
        .iter()
        .map(|(name, url)| format!("{name}={url}"))
        .collect::<Vec<_>>()
        .join(";");
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["worker", store, bucket])
        .env(SERVICES_VARIABLE, services)
        .env("PAYMENT_API_KEY", PAYMENT_API_KEY)
        .env("MODULINK_WORKER_ID", id)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    match tokio::io::BufReader::new(stdout)
        .lines()
        .next_line()
        .await?
    {
        Some(line) if line == "ready" => Ok(child),
        other => Err(format!("worker {id} did not start: {other:?}").into()),
    }
}

/// Every order as a durable execution: started all at once, run by
/// workers in this process or, with `--chaos`, by three worker processes
/// of which two are killed along the way.
async fn run_durably(options: &Options) -> std::result::Result<(), Failure> {
    let services = Arc::new(Services::default());
    let urls = start_services(Arc::clone(&services)).await?;
    let secrets = SecretManager::builder()
        .source(StaticSource::new([("payment_api_key", PAYMENT_API_KEY)]))
        .build();
    let run_id = format!("{:08x}", std::process::id());
    let sqlite = std::env::temp_dir().join(format!("modulink-ecommerce-{run_id}.sqlite"));
    let (store, bucket, place) = match &options.nats {
        Some(url) => (
            url.clone(),
            format!("ECOMMERCE_{run_id}"),
            format!(
                "the JetStream key-value bucket ECOMMERCE_{run_id} at {}",
                redact_credentials(url)
            ),
        ),
        None => (
            sqlite.to_string_lossy().into_owned(),
            String::new(),
            format!("SQLite at {}", sqlite.display()),
        ),
    };
    let durable = Arc::new(
        open_durable(&store, &bucket)
            .await?
            .register(durable_pipeline(&urls, &secrets).await?)?,
    );
    println!(
        "processing {} orders as durable executions, checkpointed in {place}",
        options.orders
    );
    let started = Instant::now();
    for n in 1..=options.orders {
        let order = Context::new().with("event_data", order_data(n));
        durable.start(&order_id(n), "order_pipeline", order).await?;
    }

    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let mut in_process = Vec::new();
    let mut processes = Vec::new();
    if options.chaos {
        for w in 0..3 {
            processes.push(start_worker(&store, &bucket, &urls, &format!("w{w}")).await?);
        }
        println!("3 worker processes, {SLOTS} orders at a time each");
    } else {
        for w in 0..options.workers.div_ceil(SLOTS).max(1) {
            in_process.extend(run_slots(&durable, &format!("w{w}"), &stopped));
        }
    }

    // Progress, and with --chaos a SIGKILL at a third and two thirds.
    let total = options.orders;
    let mut kills = 0;
    let mut shown = 0;
    let mut last_change = (Instant::now(), 0);
    let records = loop {
        let records = durable.list(None).await?;
        let done = records
            .iter()
            .filter(|r| {
                matches!(
                    r.status,
                    ExecutionStatus::Completed | ExecutionStatus::Failed
                )
            })
            .count();
        if done * 10 / total.max(1) > shown || done == total {
            shown = done * 10 / total.max(1);
            println!("progress: {done}/{total} orders");
        }
        if options.chaos && kills < 2 && done >= total * (kills + 1) / 3 {
            let victim = kills;
            processes[victim].start_kill()?;
            processes[victim].wait().await?;
            kills += 1;
            println!("killed worker w{victim} with SIGKILL at {done}/{total} orders");
            processes[victim] =
                start_worker(&store, &bucket, &urls, &format!("w{victim}-again")).await?;
        }
        if done >= total {
            break records;
        }
        if done != last_change.1 {
            last_change = (Instant::now(), done);
        } else if last_change.0.elapsed() > Duration::from_secs(60) {
            return Err("no order finished for a minute".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    stopping.send_replace(true);
    for runner in in_process {
        runner.await?;
    }
    for mut process in processes {
        drop(process.stdin.take());
        process.wait().await?;
    }

    let charges = services
        .charges
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut completed = 0;
    let mut charged_once = 0;
    let mut reasons: HashMap<String, u64> = HashMap::new();
    for record in &records {
        match record.status {
            ExecutionStatus::Completed => {
                completed += 1;
                if charges.contains_key(&record.id) {
                    charged_once += 1;
                }
            }
            _ => {
                // Stored as the error's display: "forbidden error in ...".
                let kind = record
                    .error
                    .as_deref()
                    .and_then(|error| error.split(' ').next())
                    .unwrap_or("unknown");
                *reasons.entry(kind.to_owned()).or_default() += 1;
            }
        }
    }
    let resumed = records.iter().filter(|record| record.claims > 1).count();
    println!("---- summary ----");
    println!(
        "orders: {} processed, {completed} completed, {} failed in {:.2} s",
        records.len(),
        records.len() - completed,
        elapsed.as_secs_f64()
    );
    let mut reasons: Vec<_> = reasons.into_iter().collect();
    reasons.sort();
    for (kind, count) in reasons {
        println!("failed as {kind}: {count}");
    }
    println!(
        "payments: {} payment calls, {} charges; {charged_once} of {completed} completed orders charged, each once (by its idempotency key)",
        services.payment_calls.load(Ordering::SeqCst),
        charges.len(),
    );
    println!(
        "durable: {kills} workers killed with SIGKILL, {resumed} executions resumed by another worker"
    );
    if options.nats.is_none() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", sqlite.display()));
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::result::Result<(), Failure> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, store, bucket] = arguments.as_slice()
        && mode == "worker"
    {
        return durable_worker(store, bucket).await;
    }
    let options = options()?;
    if options.durable {
        return run_durably(&options).await;
    }
    let log_path =
        std::env::temp_dir().join(format!("modulink-ecommerce-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log_path)?;
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(JsonLogLayer::new(Mutex::new(log_file)).with_field("service", "orders")),
    )?;

    let services = Arc::new(Services::default());
    let urls = start_services(Arc::clone(&services)).await?;
    let secrets = SecretManager::builder()
        .source(StaticSource::new([("payment_api_key", PAYMENT_API_KEY)]))
        .build();
    let registry = Registry::new();
    let metrics = ChainMetrics::new(&registry)?;
    let large_transactions = IntCounter::new(
        "modulink_large_transactions_total",
        format!("Completed orders of at least {LARGE_TRANSACTION_USD} USD"),
    )?;
    registry.register(Box::new(large_transactions.clone()))?;
    let metrics_server =
        MetricsServer::serve(registry, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let pipeline = build_pipeline(&urls, &secrets, &metrics, large_transactions).await?;
    println!("metrics on http://{}/metrics", metrics_server.local_addr());
    if let Some(breaker) = pipeline.inventory.breaker("inventory_service") {
        let mut changes = breaker.subscribe();
        tokio::spawn(async move {
            while let Ok(change) = changes.recv().await {
                println!(
                    "inventory breaker: {} -> {}",
                    change.from.as_str(),
                    change.to.as_str()
                );
            }
        });
    }

    let tally = Arc::new(Tally::default());
    let elapsed = match &options.nats {
        None => {
            println!(
                "processing {} orders on the in-process event bus",
                options.orders
            );
            let bus = EventBus::builder()
                .workers(options.workers)
                .redelivery(redelivery())
                .build()?;
            run(
                bus,
                pipeline.chain.clone(),
                options.orders,
                Arc::clone(&tally),
            )
            .await?
        }
        Some(url) => {
            println!(
                "processing {} orders over NATS JetStream at {}, {} at a time",
                options.orders,
                redact_credentials(url),
                options.workers
            );
            let run_id = format!("{:08x}", std::process::id());
            let transport = JetStream::connect(
                JetStreamConfig::new(url)
                    .stream(format!("ECOMMERCE_{run_id}"))
                    .subject_prefix(format!("shop{run_id}"))
                    .concurrency(options.workers)
                    .memory_storage()
                    // A memory stream reserves its byte limit on the
                    // server: a demo's hour and 64 MiB, not the 1 GiB
                    // default.
                    .retention(Duration::from_secs(3600), 64 << 20),
            )
            .await?;
            let bus = EventBus::builder()
                .without_store()
                .redelivery(redelivery())
                .build_with(transport);
            run(
                bus,
                pipeline.chain.clone(),
                options.orders,
                Arc::clone(&tally),
            )
            .await?
        }
    };

    let summary = metrics.summary("order_pipeline");
    let charges = services
        .charges
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .len();
    println!("---- summary ----");
    println!(
        "orders: {} processed, {} completed, {} failed in {:.2} s",
        tally.done(),
        tally.completed.load(Ordering::SeqCst),
        tally.failed.load(Ordering::SeqCst),
        elapsed.as_secs_f64()
    );
    let mut reasons: Vec<_> = tally
        .reasons
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .into_iter()
        .collect();
    reasons.sort();
    for (kind, count) in reasons {
        println!("failed as {kind}: {count}");
    }
    if let Some(summary) = summary {
        println!(
            "pipeline latency: average {:.1} ms, p99 {:.1} ms",
            summary.average.as_secs_f64() * 1e3,
            summary.p99.as_secs_f64() * 1e3
        );
    }
    println!(
        "payments: {} payment calls, {} charges (retries reused their idempotency key)",
        services.payment_calls.load(Ordering::SeqCst),
        charges
    );
    for service in pipeline.inventory.metrics() {
        println!(
            "inventory breaker: {}, {} calls, {} failed",
            service.breaker.as_str(),
            service.calls,
            service.failures
        );
    }
    let scrape = http_get(&format!("http://{}/metrics", metrics_server.local_addr()))
        .await?
        .body;
    let executions = scrape
        .lines()
        .filter(|line| line.starts_with("modulink_chain_executions_total"))
        .collect::<Vec<_>>()
        .join("; ");
    println!("/metrics: {executions}");
    let mut names: Vec<&str> = scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect();
    names.dedup();
    println!("/metrics names: {}", names.join(" "));
    let large = scrape
        .lines()
        .find_map(|line| line.strip_prefix("modulink_large_transactions_total "))
        .unwrap_or("none");
    println!("/metrics large transactions: {large}");
    let log_lines = std::fs::read_to_string(&log_path)?;
    let traced = log_lines
        .lines()
        .filter(|line| line.contains("\"trace_id\""))
        .count();
    println!(
        "JSON logs: {} lines, {traced} with a trace id, in {}",
        log_lines.lines().count(),
        log_path.display()
    );
    metrics_server.shutdown().await?;
    Ok(())
}
