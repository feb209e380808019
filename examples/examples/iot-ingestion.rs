//! Case study 3: IoT ingestion and real-time analytics.
//!
//! A generator plays a city's sensors (traffic, air quality, energy) and
//! sends readings faster than storage can take them. Each reading is
//! validated and enriched, then anomaly detection and critical-event
//! filtering run on it at the same time; anomalies raise alerts, critical
//! readings an emergency response. Readings are stored in SQLite in
//! batches, on a blocking thread. Under overload the ingestion queue is
//! full: non-critical readings are shed and counted, critical ones wait for
//! room and are never lost. A summary ends the run, with figures read back
//! from the database.
//!
//! Run with `cargo run -p examples --example iot-ingestion`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use modulink::scaling::stream::{StreamProcessor, process_in_batches};
use modulink::{Chain, Error, Result};
use tokio::sync::mpsc;
use tokio_stream_free::ReceiverStream;

const READINGS: u64 = 50_000;
const QUEUE: usize = 1_024;
const BATCH: usize = 500;

#[derive(Debug, Clone)]
struct Reading {
    sensor: u32,
    kind: &'static str,
    value: f64,
    district: &'static str,
    anomaly: bool,
    critical: bool,
}

impl Reading {
    fn critical_level(kind: &str) -> f64 {
        match kind {
            "air_quality" => 300.0,
            "traffic" => 95.0,
            _ => 900.0,
        }
    }
}

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
        sensor,
        kind,
        value,
        district: "",
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
    reading.district = ["north", "south", "east", "west"][(reading.sensor % 4) as usize];
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

#[derive(Default)]
struct Counters {
    generated: AtomicU64,
    shed: AtomicU64,
    invalid: AtomicU64,
    alerts: AtomicU64,
    emergencies: AtomicU64,
}

fn analysis(baselines: Arc<Baselines>, counters: Arc<Counters>) -> Chain<Reading> {
    Chain::named("realtime_analytics")
        .link_sync(validate_and_enrich)
        .link(move |mut reading: Reading| {
            let (baselines, counters) = (Arc::clone(&baselines), Arc::clone(&counters));
            async move {
                // Anomaly detection and critical-event filtering at once.
                let (anomaly, critical) =
                    tokio::join!(async { baselines.is_anomaly(&reading) }, async {
                        reading.value >= Reading::critical_level(reading.kind)
                    });
                reading.anomaly = anomaly;
                reading.critical = critical;
                if anomaly {
                    counters.alerts.fetch_add(1, Ordering::Relaxed);
                }
                if critical {
                    counters.emergencies.fetch_add(1, Ordering::Relaxed);
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
                                reading.kind,
                                reading.district,
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

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let path = std::env::temp_dir().join(format!("modulink-iot-{}.sqlite", std::process::id()));
    let connection = rusqlite::Connection::open(&path)?;
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE readings (
             id INTEGER PRIMARY KEY, sensor INTEGER NOT NULL, kind TEXT NOT NULL,
             district TEXT NOT NULL, value REAL NOT NULL, anomaly INTEGER NOT NULL, critical INTEGER NOT NULL
         );",
    )?;
    let database = Arc::new(Mutex::new(connection));
    let counters = Arc::new(Counters::default());
    let baselines = Arc::new(Baselines::default());

    // Ingestion: a bounded queue. Full means overload: shed what is not
    // critical, wait for room for what is.
    let (ingest, queue) = mpsc::channel::<Reading>(QUEUE);
    let generator_counters = Arc::clone(&counters);
    let started = Instant::now();
    let generator = tokio::spawn(async move {
        // Forty readings a millisecond, except in a flood (readings 20,000
        // to 40,000: a rush hour) when they come as fast as they can.
        let mut ticks = tokio::time::interval(Duration::from_millis(1));
        for n in 1..=READINGS {
            if n % 40 == 0 && !(20_000..40_000).contains(&n) {
                ticks.tick().await;
            }
            let reading = generate(n);
            generator_counters.generated.fetch_add(1, Ordering::Relaxed);
            let critical = reading.value >= Reading::critical_level(reading.kind);
            match ingest.try_send(reading) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(reading)) if critical => {
                    if ingest.send(reading).await.is_err() {
                        return;
                    }
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    generator_counters.shed.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    });

    let invalid = Arc::clone(&counters);
    let analysed = StreamProcessor::new(analysis(Arc::clone(&baselines), Arc::clone(&counters)))
        .concurrency(32)
        .errors_to(move |_| {
            invalid.invalid.fetch_add(1, Ordering::Relaxed);
        })
        .process(ReceiverStream(queue))
        .filter_map(|reading| async move { reading.ok() });
    let storage = storage(Arc::clone(&database));
    let mut stored = 0u64;
    let mut batches = analysed.chunks(BATCH).boxed();
    while let Some(batch) = batches.next().await {
        stored += process_in_batches(&storage, batch, BATCH).await?.len() as u64;
    }
    generator.await?;
    let elapsed = started.elapsed().max(Duration::from_millis(1));

    let connection = database.lock().unwrap_or_else(|p| p.into_inner());
    let rows: u64 = connection.query_row("SELECT COUNT(*) FROM readings", [], |row| row.get(0))?;
    let critical_rows: u64 =
        connection.query_row("SELECT COUNT(*) FROM readings WHERE critical", [], |row| {
            row.get(0)
        })?;
    let expected_critical = (1..=READINGS)
        .map(generate)
        .filter(|reading| reading.value >= Reading::critical_level(reading.kind))
        .count();
    println!("---- summary ----");
    println!(
        "generated {}, invalid {}, shed under overload {}, stored {stored} in {:.2} s ({:.0} readings/s)",
        counters.generated.load(Ordering::Relaxed),
        counters.invalid.load(Ordering::Relaxed),
        counters.shed.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64()
    );
    println!(
        "alerts (anomalies) {}, emergencies (critical) {}",
        counters.alerts.load(Ordering::Relaxed),
        counters.emergencies.load(Ordering::Relaxed)
    );
    println!(
        "rows in SQLite: {rows}; critical rows {critical_rows} of {expected_critical} generated: none shed"
    );
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
    let _ = std::fs::remove_file(&path);
    Ok(())
}
