//! Case study 3: IoT ingestion and real-time analytics.
//!
//! Sensors (traffic, air quality, energy) are played by a generator in a
//! process of its own, which POSTs readings over HTTP, faster than storage
//! can take them during a rush hour. The service validates and enriches
//! each reading, then runs anomaly detection and critical-event filtering
//! on it at the same time; a critical reading publishes an alert event on
//! the event bus, which an alert subscriber records. Readings are stored in
//! SQLite in batches, on a blocking thread. Under overload the ingestion
//! queue is full: non-critical readings are shed (and the sender is told
//! how many), critical ones wait for room, holding the request back, so
//! they are never lost and the sender slows down. The critical levels come
//! from a JSON config file that is reloaded while the service runs (a file
//! that does not parse is refused, and the old levels stay). Prometheus
//! metrics are served at `/metrics`.
//!
//! - `cargo run -p examples --example iot-ingestion`: the demo, the service
//!   in this process and the generator in another, then a summary read
//!   from the metrics and the database.
//! - `iot-ingestion serve CONFIG`: the service on `$BIND` (default
//!   `127.0.0.1:8090`), with `POST /readings`, `POST /flush` (answers once
//!   everything accepted is stored and every alert recorded) and
//!   `/metrics`; Ctrl-C stops it.
//! - `iot-ingestion generate URL FROM TO FLOOD_FROM FLOOD_TO`: the sensors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use futures_util::StreamExt;
use modulink::observability::prometheus::{IntCounter, IntGauge, Registry};
use modulink::observability::{ChainMetrics, metrics_routes};
use modulink::scaling::events::{Event, EventBus};
use modulink::scaling::stream::{StreamProcessor, process_in_batches};
use modulink::{Chain, Context, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_stream_free::ReceiverStream;

type Failure = Box<dyn std::error::Error + Send + Sync>;

const READINGS: u64 = 50_000;
const QUEUE: usize = 1_024;
const BATCH: usize = 500;
/// Readings per HTTP request from the generator.
const PER_REQUEST: u64 = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reading {
    n: u64,
    sensor: u32,
    kind: String,
    /// A sensor that sends garbage (JSON has no NaN: it arrives as null)
    /// reads as NaN, which validation refuses.
    #[serde(deserialize_with = "number_or_nan")]
    value: f64,
    #[serde(default)]
    district: String,
    #[serde(default)]
    anomaly: bool,
    #[serde(default)]
    critical: bool,
}

fn number_or_nan<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// The critical level per kind of sensor, from the config file, reloaded
/// while the service runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Thresholds {
    traffic: f64,
    air_quality: f64,
    energy: f64,
}

impl Thresholds {
    fn critical_level(&self, kind: &str) -> f64 {
        match kind {
            "air_quality" => self.air_quality,
            "traffic" => self.traffic,
            _ => self.energy,
        }
    }

    fn load(path: &Path) -> std::result::Result<Self, Failure> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let config: Value = serde_json::from_str(&text)
            .map_err(|error| format!("{} is not JSON: {error}", path.display()))?;
        Ok(serde_json::from_value(config["critical"].clone())
            .map_err(|error| format!("{}: `critical` {error}", path.display()))?)
    }
}

/// The default config: what `serve` reads when no file is given.
const DEFAULT_CONFIG: &str = r#"{"critical": {"traffic": 95, "air_quality": 300, "energy": 900}}"#;

/// A reading as a sensor sends it: sensor 0-199, the kind by sensor, a
/// slowly varying value with spikes, now and then garbage.
fn generate(n: u64) -> Reading {
    let sensor = (n % 200) as u32;
    let kind = ["traffic", "air_quality", "energy"][(sensor % 3) as usize];
    let base = match kind {
        "traffic" => 40.0,
        "air_quality" => 60.0,
        _ => 400.0,
    };
    let wave = ((n / 200) as f64 / 25.0).sin() * base * 0.1;
    let value = if n.is_multiple_of(9_973) {
        f64::NAN
    } else if n.is_multiple_of(1_201) {
        base * 8.0 // a spike far past the critical level
    } else if n.is_multiple_of(397) {
        base * 1.9 // unusual, not critical
    } else {
        base + wave
    };
    Reading {
        n,
        sensor,
        kind: kind.to_owned(),
        value,
        district: String::new(),
        anomaly: false,
        critical: false,
    }
}

fn validate_and_enrich(mut reading: Reading) -> Result<Reading> {
    if !reading.value.is_finite() || reading.value < 0.0 {
        return Err(Error::validation(format!(
            "sensor {} sent {}",
            reading.sensor, reading.value
        )));
    }
    reading.district = ["north", "south", "east", "west"][(reading.sensor % 4) as usize].to_owned();
    Ok(reading)
}

/// Running mean and variance per sensor (Welford), for z-scores.
#[derive(Default)]
struct Baselines(Mutex<HashMap<u32, (u64, f64, f64)>>);

impl Baselines {
    fn is_anomaly(&self, reading: &Reading) -> bool {
        let mut baselines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (count, mean, m2) = baselines.entry(reading.sensor).or_default();
        let deviation = if *count >= 10 {
            let std = (*m2 / (*count - 1) as f64).sqrt().max(1e-9);
            (reading.value - *mean).abs() / std
        } else {
            0.0
        };
        *count += 1;
        let delta = reading.value - *mean;
        *mean += delta / *count as f64;
        *m2 += delta * (reading.value - *mean);
        deviation > 4.0
    }
}

/// The service's measurements, exported at `/metrics`.
#[derive(Clone)]
struct Metrics {
    received: IntCounter,
    shed: IntCounter,
    invalid: IntCounter,
    stored: IntCounter,
    critical_received: IntCounter,
    critical_stored: IntCounter,
    anomalies: IntCounter,
    alerts_published: IntCounter,
    alerts_recorded: IntCounter,
    reloads: IntCounter,
    reload_errors: IntCounter,
    queue_depth: IntGauge,
}

impl Metrics {
    fn new(registry: &Registry) -> std::result::Result<Self, Failure> {
        let counter = |name: &str, help: &str| -> std::result::Result<IntCounter, Failure> {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let queue_depth = IntGauge::new("iot_queue_depth", "Readings waiting to be analysed")?;
        registry.register(Box::new(queue_depth.clone()))?;
        Ok(Self {
            received: counter("iot_readings_received_total", "Readings received over HTTP")?,
            shed: counter(
                "iot_readings_shed_total",
                "Non-critical readings shed under overload",
            )?,
            invalid: counter(
                "iot_readings_invalid_total",
                "Readings that failed validation",
            )?,
            stored: counter("iot_readings_stored_total", "Readings stored in SQLite")?,
            critical_received: counter(
                "iot_critical_received_total",
                "Critical readings received",
            )?,
            critical_stored: counter("iot_critical_stored_total", "Critical readings stored")?,
            anomalies: counter(
                "iot_anomalies_total",
                "Readings far from their sensor's baseline",
            )?,
            alerts_published: counter(
                "iot_alerts_published_total",
                "Critical-reading events published",
            )?,
            alerts_recorded: counter(
                "iot_alerts_recorded_total",
                "Critical-reading events the alert subscriber recorded",
            )?,
            reloads: counter(
                "iot_config_reloads_total",
                "Threshold reloads from the config file",
            )?,
            reload_errors: counter(
                "iot_config_reload_errors_total",
                "Config changes refused (the old thresholds stay)",
            )?,
            queue_depth,
        })
    }
}

fn analysis(
    baselines: Arc<Baselines>,
    thresholds: Arc<RwLock<Thresholds>>,
    metrics: Metrics,
    bus: EventBus,
) -> Chain<Reading> {
    Chain::named("realtime_analytics")
        .link_sync(validate_and_enrich)
        .link(move |mut reading: Reading| {
            let (baselines, thresholds, metrics, bus) = (
                Arc::clone(&baselines),
                Arc::clone(&thresholds),
                metrics.clone(),
                bus.clone(),
            );
            async move {
                let level = thresholds
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .critical_level(&reading.kind);
                // Anomaly detection and critical-event filtering at once.
                let (anomaly, critical) =
                    tokio::join!(async { baselines.is_anomaly(&reading) }, async {
                        reading.value >= level
                    });
                reading.anomaly = anomaly;
                reading.critical = critical;
                if anomaly {
                    metrics.anomalies.inc();
                }
                if critical {
                    // An alert event on the bus, for whoever handles them.
                    bus.publish(Event::new(
                        "critical_reading",
                        json!({"n": reading.n, "sensor": reading.sensor, "kind": reading.kind,
                               "value": reading.value, "level": level}),
                    ))
                    .await
                    .map_err(Error::internal_from)?;
                    metrics.alerts_published.inc();
                }
                Ok(reading)
            }
        })
}

fn storage(database: Arc<Mutex<rusqlite::Connection>>) -> Chain<Vec<Reading>> {
    Chain::named("time_series_storage").link(move |batch: Vec<Reading>| {
        let database = Arc::clone(&database);
        async move {
            tokio::task::spawn_blocking(move || -> Result<Vec<Reading>> {
                let mut connection = database.lock().unwrap_or_else(|p| p.into_inner());
                let transaction = connection.transaction().map_err(Error::internal_from)?;
                {
                    let mut insert = transaction
                        .prepare_cached(
                            "INSERT INTO readings (sensor, kind, district, value, anomaly, critical) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )
                        .map_err(Error::internal_from)?;
                    for reading in &batch {
                        insert
                            .execute(rusqlite::params![
                                reading.sensor,
                                reading.kind.as_str(),
                                reading.district.as_str(),
                                reading.value,
                                reading.anomaly,
                                reading.critical
                            ])
                            .map_err(Error::internal_from)?;
                    }
                }
                transaction.commit().map_err(Error::internal_from)?;
                Ok(batch)
            })
            .await
            .map_err(Error::internal_from)?
        }
    })
}

/// A receiver as a stream, without pulling in tokio-stream.
mod tokio_stream_free {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_util::Stream;
    use tokio::sync::mpsc::Receiver;

    pub(crate) struct ReceiverStream<T>(pub(crate) Receiver<T>);

    impl<T> Stream for ReceiverStream<T> {
        type Item = T;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

/// The ingestion service: everything `serve` runs.
#[derive(Clone)]
struct Service {
    queue: mpsc::Sender<Reading>,
    thresholds: Arc<RwLock<Thresholds>>,
    metrics: Metrics,
    /// Readings accepted into the queue, and the ones finished (stored or
    /// invalid): `/flush` waits until the second catches up.
    accepted: Arc<AtomicU64>,
    finished: Arc<AtomicU64>,
    progress: Arc<Notify>,
}

/// `POST /readings`: a batch of readings. A full queue is overload: the
/// non-critical readings are shed (and counted), the critical ones wait
/// for room, which holds this request back: the sender slows down.
async fn receive(
    State(service): State<Service>,
    Json(readings): Json<Vec<Reading>>,
) -> Json<Value> {
    let (mut accepted, mut shed) = (0u64, 0u64);
    for reading in readings {
        service.metrics.received.inc();
        let critical = reading.value
            >= service
                .thresholds
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .critical_level(&reading.kind);
        if critical {
            service.metrics.critical_received.inc();
        }
        match service.queue.try_send(reading) {
            Ok(()) => accepted += 1,
            Err(mpsc::error::TrySendError::Full(reading)) if critical => {
                if service.queue.send(reading).await.is_ok() {
                    accepted += 1;
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                service.metrics.shed.inc();
                shed += 1;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
    service.accepted.fetch_add(accepted, Ordering::SeqCst);
    service
        .metrics
        .queue_depth
        .set((QUEUE - service.queue.capacity()) as i64);
    Json(json!({"accepted": accepted, "shed": shed}))
}

/// `POST /flush`: answers once every reading accepted so far is stored or
/// refused as invalid, and every alert published has been recorded.
async fn flush(State(service): State<Service>) -> Json<Value> {
    loop {
        let waiting = service.progress.notified();
        let metrics = &service.metrics;
        if service.finished.load(Ordering::SeqCst) >= service.accepted.load(Ordering::SeqCst)
            && metrics.alerts_recorded.get() >= metrics.alerts_published.get()
        {
            return Json(json!({"finished": service.finished.load(Ordering::SeqCst)}));
        }
        waiting.await;
    }
}

/// Watches the config file and swaps the thresholds when it changes; a
/// file that does not parse is refused and the old thresholds stay.
async fn reload_thresholds(path: PathBuf, thresholds: Arc<RwLock<Thresholds>>, metrics: Metrics) {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut seen = modified(&path);
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticks.tick().await;
        let now = modified(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match Thresholds::load(&path) {
            Ok(new) => {
                *thresholds.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
                metrics.reloads.inc();
                println!("thresholds reloaded: {new:?}");
            }
            Err(error) => {
                metrics.reload_errors.inc();
                println!("config refused, thresholds unchanged: {error}");
            }
        }
    }
}

/// Starts the service on `bind`; returns its address and the task that
/// analyses and stores, which ends when the service is dropped.
async fn start_service(
    bind: &str,
    config: Option<PathBuf>,
    database_path: &Path,
) -> std::result::Result<(std::net::SocketAddr, tokio::task::JoinHandle<Result<u64>>), Failure> {
    let thresholds = match &config {
        Some(path) => Thresholds::load(path)?,
        None => serde_json::from_value(
            serde_json::from_str::<Value>(DEFAULT_CONFIG)?["critical"].clone(),
        )?,
    };
    let thresholds = Arc::new(RwLock::new(thresholds));
    let registry = Registry::new();
    let metrics = Metrics::new(&registry)?;
    let chain_metrics = ChainMetrics::new(&registry)?;

    // Critical readings become events; the alert subscriber records each.
    let bus = EventBus::new()?;
    let progress = Arc::new(Notify::new());
    let recorded = (metrics.alerts_recorded.clone(), Arc::clone(&progress));
    bus.subscribe(
        "critical_reading",
        Chain::named("alert_recorder").link_sync(move |ctx: Context| {
            let alert: Value = ctx.require("event_data")?;
            if alert["value"].as_f64() < alert["level"].as_f64() {
                return Err(Error::validation("an alert below its level"));
            }
            recorded.0.inc();
            recorded.1.notify_waiters();
            Ok(ctx)
        }),
    )
    .await?;

    let connection = rusqlite::Connection::open(database_path)?;
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS readings (
             id INTEGER PRIMARY KEY, sensor INTEGER NOT NULL, kind TEXT NOT NULL,
             district TEXT NOT NULL, value REAL NOT NULL, anomaly INTEGER NOT NULL, critical INTEGER NOT NULL
         );",
    )?;
    let database = Arc::new(Mutex::new(connection));
    let (queue, received) = mpsc::channel::<Reading>(QUEUE);
    let service = Service {
        queue,
        thresholds: Arc::clone(&thresholds),
        metrics: metrics.clone(),
        accepted: Arc::default(),
        finished: Arc::default(),
        progress,
    };
    if let Some(path) = config {
        tokio::spawn(reload_thresholds(
            path,
            Arc::clone(&thresholds),
            metrics.clone(),
        ));
    }

    let (finished, progress) = (Arc::clone(&service.finished), Arc::clone(&service.progress));
    let invalid = (
        metrics.invalid.clone(),
        Arc::clone(&finished),
        Arc::clone(&progress),
    );
    let analysed = StreamProcessor::new(chain_metrics.instrument(analysis(
        Arc::new(Baselines::default()),
        thresholds,
        metrics.clone(),
        bus,
    )))
    .concurrency(32)
    .errors_to(move |_| {
        invalid.0.inc();
        invalid.1.fetch_add(1, Ordering::SeqCst);
        invalid.2.notify_waiters();
    })
    .process(ReceiverStream(received))
    .filter_map(|reading| async move { reading.ok() });
    let storage = storage(database);
    let stored_metrics = metrics.clone();
    let pipeline = tokio::spawn(async move {
        let mut stored = 0u64;
        // Whatever has arrived within 20 ms goes to storage: batches fill
        // under load, and a trickle is not held back.
        let mut batches = analysed.ready_chunks(BATCH).boxed();
        while let Some(batch) = batches.next().await {
            let batch = process_in_batches(&storage, batch, BATCH).await?;
            let critical = batch.iter().filter(|reading| reading.critical).count() as u64;
            stored_metrics.critical_stored.inc_by(critical);
            stored_metrics.stored.inc_by(batch.len() as u64);
            stored += batch.len() as u64;
            finished.fetch_add(batch.len() as u64, Ordering::SeqCst);
            progress.notify_waiters();
        }
        Ok(stored)
    });

    let app = axum::Router::new()
        .route("/readings", post(receive))
        .route("/flush", post(flush))
        .with_state(service)
        .merge(metrics_routes(registry));
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((address, pipeline))
}

/// The generator: a separate process that plays the sensors and POSTs
/// readings `from..=to` in batches, at forty readings a millisecond except
/// in the flood (a rush hour) between `flood_from` and `flood_to`, when
/// eight requests at a time go as fast as the service takes them.
async fn generate_readings(
    url: &str,
    from: u64,
    to: u64,
    flood: (u64, u64),
) -> std::result::Result<(), Failure> {
    let client = reqwest::Client::new();
    let (mut accepted, mut shed) = (0u64, 0u64);
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut n = from;
    while n <= to {
        let end = (n + PER_REQUEST - 1).min(to);
        let batch: Vec<Reading> = (n..=end).map(generate).collect();
        let flooding = (flood.0..flood.1).contains(&n);
        if !flooding {
            for _ in 0..(end - n + 1).div_ceil(40) {
                ticks.tick().await;
            }
        }
        let request = client.post(format!("{url}/readings")).json(&batch).send();
        in_flight.push(async move {
            let answer: Value = request.await?.error_for_status()?.json().await?;
            Ok::<_, reqwest::Error>(answer)
        });
        while in_flight.len() >= if flooding { 8 } else { 1 } {
            if let Some(answer) = in_flight.next().await {
                let answer = answer?;
                accepted += answer["accepted"].as_u64().unwrap_or(0);
                shed += answer["shed"].as_u64().unwrap_or(0);
            }
        }
        n = end + 1;
    }
    while let Some(answer) = in_flight.next().await {
        let answer = answer?;
        accepted += answer["accepted"].as_u64().unwrap_or(0);
        shed += answer["shed"].as_u64().unwrap_or(0);
    }
    println!(
        "generator: sent {}, accepted {accepted}, shed {shed}",
        to - from + 1
    );
    Ok(())
}

/// The value of a metric in Prometheus text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

#[tokio::main]
async fn main() -> std::result::Result<(), Failure> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let database = std::env::temp_dir().join(format!("modulink-iot-{}.sqlite", std::process::id()));
    match arguments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["generate", url, from, to, flood_from, flood_to] => {
            return generate_readings(
                url,
                from.parse()?,
                to.parse()?,
                (flood_from.parse()?, flood_to.parse()?),
            )
            .await;
        }
        ["serve", config] => {
            let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8090".to_owned());
            let (address, _pipeline) =
                start_service(&bind, Some(PathBuf::from(config)), &database).await?;
            println!("listening on {address}");
            tokio::signal::ctrl_c().await?;
            let _ = std::fs::remove_file(&database);
            return Ok(());
        }
        [] => {}
        _ => {
            return Err(
                "usage: iot-ingestion [serve CONFIG | generate URL FROM TO FLOOD_FROM FLOOD_TO]"
                    .into(),
            );
        }
    }

    // The demo: the service here, the sensors in a process of their own.
    let (address, pipeline) = start_service("127.0.0.1:0", None, &database).await?;
    let url = format!("http://{address}");
    let started = Instant::now();
    let generator = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "generate",
            &url,
            "1",
            &READINGS.to_string(),
            "20000",
            "40000",
        ])
        .output()
        .await?;
    if !generator.status.success() {
        return Err(format!(
            "the generator failed: {}",
            String::from_utf8_lossy(&generator.stderr)
        )
        .into());
    }
    print!("{}", String::from_utf8_lossy(&generator.stdout));
    let client = reqwest::Client::new();
    client
        .post(format!("{url}/flush"))
        .send()
        .await?
        .error_for_status()?;
    let elapsed = started.elapsed().max(Duration::from_millis(1));
    let scrape = client
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let get = |name: &str| metric(&scrape, name);
    println!("---- summary ----");
    println!(
        "received {}, invalid {}, shed under overload {}, stored {} in {:.2} s ({:.0} readings/s)",
        get("iot_readings_received_total"),
        get("iot_readings_invalid_total"),
        get("iot_readings_shed_total"),
        get("iot_readings_stored_total"),
        elapsed.as_secs_f64(),
        get("iot_readings_stored_total") as f64 / elapsed.as_secs_f64()
    );
    println!(
        "critical: received {}, stored {}, alerts published {}, recorded by the subscriber {}; anomalies {}",
        get("iot_critical_received_total"),
        get("iot_critical_stored_total"),
        get("iot_alerts_published_total"),
        get("iot_alerts_recorded_total"),
        get("iot_anomalies_total")
    );
    let connection = rusqlite::Connection::open(&database)?;
    let rows: u64 = connection.query_row("SELECT COUNT(*) FROM readings", [], |row| row.get(0))?;
    let critical_rows: u64 =
        connection.query_row("SELECT COUNT(*) FROM readings WHERE critical", [], |row| {
            row.get(0)
        })?;
    println!("rows in SQLite: {rows}, critical rows {critical_rows}");
    let mut averages = connection
        .prepare("SELECT kind, COUNT(*), AVG(value) FROM readings GROUP BY kind ORDER BY kind")?;
    let rows = averages.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, u64>(1)?,
            row.get::<_, f64>(2)?,
        ))
    })?;
    for row in rows {
        let (kind, count, average) = row?;
        println!("{kind}: {count} readings, average {average:.1}");
    }
    drop(averages);
    drop(connection);
    pipeline.abort();
    let _ = std::fs::remove_file(&database);
    Ok(())
}
