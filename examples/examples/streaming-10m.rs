//! Memory-efficient processing: 10 million sensor readings streamed through
//! a three-link chain (validate, calibrate, classify) with bounded
//! concurrency, aggregated as they come out. Memory stays flat because at
//! most `CONCURRENCY` readings are alive at once; a memory monitor with a
//! 64 MB limit watches, and would lower the concurrency if RSS crossed it.
//!
//! Run with `cargo run --release -p examples --example streaming-10m`
//! (`MODULINK_STREAM_ITEMS` sets another count). Measure the peak with
//! `/usr/bin/time -v target/release/examples/streaming-10m`.

use std::time::Instant;

use futures_util::{StreamExt, stream};
use modulink::scaling::stream::{MemoryMonitor, StreamProcessor};
use modulink::{Chain, Error, Result};

const DEFAULT_ITEMS: u64 = 10_000_000;
const CONCURRENCY: usize = 64;
const MEMORY_LIMIT: u64 = 64 * 1024 * 1024;

/// One reading; a typed context costs no map and no JSON.
#[derive(Debug, Clone, Copy)]
struct Reading {
    sensor: u32,
    raw: f64,
    calibrated: f64,
    anomaly: bool,
}

impl Reading {
    /// A deterministic stand-in for a sensor feed: a slow wave with a spike
    /// every 9,973rd reading and an unreadable value every 100,003rd.
    fn from_feed(n: u64) -> Reading {
        let raw = if n.is_multiple_of(100_003) {
            f64::NAN
        } else if n.is_multiple_of(9_973) {
            500.0
        } else {
            20.0 + ((n % 3_600) as f64 / 3_600.0 * std::f64::consts::TAU).sin() * 5.0
        };
        Reading {
            sensor: (n % 1_000) as u32,
            raw,
            calibrated: 0.0,
            anomaly: false,
        }
    }
}

fn validate(reading: Reading) -> Result<Reading> {
    if reading.raw.is_finite() {
        Ok(reading)
    } else {
        Err(Error::validation(format!(
            "sensor {} sent an unreadable value",
            reading.sensor
        )))
    }
}

fn calibrate(mut reading: Reading) -> Result<Reading> {
    let offset = f64::from(reading.sensor % 7) * 0.01;
    reading.calibrated = reading.raw * 1.002 - offset;
    Ok(reading)
}

fn classify(mut reading: Reading) -> Result<Reading> {
    reading.anomaly = reading.calibrated > 100.0;
    Ok(reading)
}

fn peak_rss_from_kernel() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let items: u64 = match std::env::var("MODULINK_STREAM_ITEMS") {
        Ok(count) => count.parse()?,
        Err(_) => DEFAULT_ITEMS,
    };
    let pipeline = Chain::<Reading>::named("sensor_pipeline")
        .link_sync(validate)
        .link_sync(calibrate)
        .link_sync(classify);
    let monitor = MemoryMonitor::new(MEMORY_LIMIT);
    monitor.sample();
    let unreadable = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&unreadable);

    let started = Instant::now();
    let (count, anomalies, sum) = StreamProcessor::new(pipeline)
        .concurrency(CONCURRENCY)
        .memory(monitor.clone())
        .errors_to(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .process(stream::iter(0..items).map(Reading::from_feed))
        .fold(
            (0u64, 0u64, 0.0f64),
            |(count, anomalies, sum), reading| async move {
                match reading {
                    Ok(reading) => (
                        count + 1,
                        anomalies + u64::from(reading.anomaly),
                        sum + reading.calibrated,
                    ),
                    Err(_) => (count, anomalies, sum),
                }
            },
        )
        .await;
    let elapsed = started.elapsed();
    monitor.sample();

    let unreadable = unreadable.load(std::sync::atomic::Ordering::Relaxed);
    let report = monitor.report();
    println!("processed {count} readings, {unreadable} unreadable, {anomalies} anomalies");
    println!("mean calibrated value {:.3}", sum / count.max(1) as f64);
    println!(
        "{items} items in {:.2} s: {:.0} items/s",
        elapsed.as_secs_f64(),
        items as f64 / elapsed.as_secs_f64()
    );
    println!(
        "sampled RSS: peak {:.1} MB, average {:.1} MB over {} samples; throttled {} times",
        report.peak_bytes as f64 / 1048576.0,
        report.average_bytes as f64 / 1048576.0,
        report.samples,
        report.throttled
    );
    if let Some(peak) = peak_rss_from_kernel() {
        println!(
            "peak RSS (kernel high-water mark): {:.1} MB",
            peak as f64 / 1048576.0
        );
    }
    Ok(())
}
