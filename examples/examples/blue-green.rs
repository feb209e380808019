//! The seed's blue-green deployment, deployed for real: each version of
//! the service is an OS process, started by a `CommandDeployer` that runs
//! this program's `launch` mode (a deploy script would do the same with
//! systemd or a container runtime). v1 runs in blue; v2 is deployed to
//! green, validated with real requests (health, latency, a load test) and
//! switched to atomically while clients keep calling; then rolled back.
//!
//! Run with `cargo run -p examples --example blue-green`.
//!
//! - `blue-green launch DIR BLUE_PORT GREEN_PORT`, with `MODULINK_ENVIRONMENT`
//!   and `MODULINK_VERSION` set by the deployer: stops the process the
//!   environment ran (its pid is in `DIR/ENVIRONMENT.pid`), starts
//!   `blue-green serve` on the environment's port, waits until it is
//!   ready and exits; a service that never gets ready fails the deploy.
//! - `blue-green serve`: the service, answering its version and process id
//!   on `$BIND`, with `/health/ready`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use modulink::deploy::blue_green::{BlueGreen, Validation};
use modulink::deploy::deployer::{CommandDeployer, Deployer};
use modulink::deploy::router::{RouterConfig, TrafficRouter};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The service: its version and process id, so a client sees which
/// process answered.
async fn serve() -> Result<(), Failure> {
    let version = std::env::var("VERSION")?;
    let answer = format!("{version} {}", std::process::id());
    let app = axum::Router::new()
        .route("/health/ready", get(|| async { "ready" }))
        .fallback(get(move || async move { answer }));
    let listener = tokio::net::TcpListener::bind(std::env::var("BIND")?).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// The deploy step: replace the environment's process with a new version
/// and return once it is ready.
async fn launch(dir: &Path, blue_port: &str, green_port: &str) -> Result<(), Failure> {
    let environment = std::env::var("MODULINK_ENVIRONMENT")?;
    let version = std::env::var("MODULINK_VERSION")?;
    let port = match environment.as_str() {
        "blue" => blue_port,
        "green" => green_port,
        other => return Err(format!("no environment `{other}`").into()),
    };
    let pid_file = dir.join(format!("{environment}.pid"));
    stop(&pid_file).await?;
    let child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("VERSION", &version)
        .stdout(Stdio::null())
        .spawn()?;
    std::fs::write(&pid_file, child.id().to_string())?;
    let ready = format!("http://127.0.0.1:{port}/health/ready");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if examples::http_get(&ready)
            .await
            .is_ok_and(|answer| answer.status == 200)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("{version} in {environment} was not ready within 10 s").into())
}

/// Stops the process recorded in `pid_file`, if any, and waits for it to
/// be gone (its port is then free for the next version).
async fn stop(pid_file: &Path) -> Result<(), Failure> {
    let Ok(pid) = std::fs::read_to_string(pid_file) else {
        return Ok(());
    };
    let pid = pid.trim();
    let _ = Command::new("kill").args(["-TERM", pid]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        if Instant::now() > deadline {
            return Err(format!("process {pid} did not stop within 10 s").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::remove_file(pid_file)?;
    Ok(())
}

/// Whether process `pid` still runs. A process that exited but was not yet
/// reaped by whoever adopted it (a zombie) does not.
fn running(pid: &str) -> bool {
    if Path::new("/proc/self/stat").exists() {
        return std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        });
    }
    Command::new("kill")
        .args(["-0", pid])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A free loopback port.
fn free_port() -> Result<u16, Failure> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.as_slice() {
        [mode] if mode == "serve" => serve().await,
        [mode, dir, blue, green] if mode == "launch" => launch(Path::new(dir), blue, green).await,
        [] => {
            let dir =
                std::env::temp_dir().join(format!("modulink-blue-green-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let outcome = release(&dir).await;
            // Whatever happened, no service process outlives the example.
            for environment in ["blue", "green"] {
                stop(&dir.join(format!("{environment}.pid"))).await?;
            }
            std::fs::remove_dir_all(&dir)?;
            outcome
        }
        _ => Err("usage: blue-green [serve | launch DIR BLUE_PORT GREEN_PORT]".into()),
    }
}

async fn release(dir: &Path) -> Result<(), Failure> {
    let (blue_port, green_port) = (free_port()?, free_port()?);
    let deployer = CommandDeployer::new(
        std::env::current_exe()?.to_string_lossy(),
        [
            "launch".to_owned(),
            dir.to_string_lossy().into_owned(),
            blue_port.to_string(),
            green_port.to_string(),
        ],
    );
    // v1 goes live in blue the same way any version does.
    deployer.deploy("blue", "v1").await?;
    println!("blue: v1 in process {}", pid_in(dir, "blue")?);
    let router = TrafficRouter::new(
        RouterConfig::new()
            .upstream("blue", format!("http://127.0.0.1:{blue_port}"))
            .upstream("green", format!("http://127.0.0.1:{green_port}")),
    )?;
    let server = router.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    let url = format!("http://{}/", server.local_addr().ok_or("no address")?);
    let releases =
        BlueGreen::new(router.clone(), "blue", "green", deployer)?.with_validation(Validation {
            load_requests: 50,
            load_concurrency: 5,
            ..Validation::default()
        });

    // Clients call through the router during the whole release.
    let running = Arc::new(AtomicBool::new(true));
    // Answers counted by the process that gave them ("v1 4242").
    let answers: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (running, answers, failed, url) = (
                Arc::clone(&running),
                Arc::clone(&answers),
                Arc::clone(&failed),
                url.clone(),
            );
            tokio::spawn(async move {
                let client: Client<_, Empty<Bytes>> =
                    Client::builder(TokioExecutor::new()).build_http();
                while running.load(Ordering::Relaxed) {
                    let answer = match url.parse() {
                        Ok(uri) => match client.get(uri).await {
                            Ok(response) if response.status().is_success() => {
                                match response.into_body().collect().await {
                                    Ok(body) => Some(body.to_bytes()),
                                    Err(_) => None,
                                }
                            }
                            _ => None,
                        },
                        Err(_) => None,
                    };
                    match answer {
                        Some(body) => {
                            let by = String::from_utf8_lossy(&body).into_owned();
                            *answers
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .entry(by)
                                .or_default() += 1;
                        }
                        None => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();

    println!("active before: {}", releases.active().await);
    let report = releases.deploy("v2").await?;
    println!(
        "deployed v2 to green: healthy {}, load test {:.0}% ok, average {:.2} ms",
        report.healthy,
        report.load_success_rate * 100.0,
        report.load_average_latency_ms
    );
    println!("green: v2 in process {}", pid_in(dir, "green")?);
    println!("active after deploy: {}", releases.active().await);
    releases.rollback().await?;
    println!("active after rollback: {}", releases.active().await);

    running.store(false, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }
    println!(
        "clients during the release: {} failed requests",
        failed.load(Ordering::Relaxed)
    );
    for (process, count) in answers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
    {
        println!("answered by {process}: {count}");
    }
    let status = releases.status().await?;
    println!("history ({} entries):", status.deployment_history_count);
    for entry in releases.history() {
        println!("  {} {} {}", entry.action, entry.environment, entry.detail);
    }
    server.shutdown().await;
    Ok(())
}

/// The process id the deployer recorded for `environment`.
fn pid_in(dir: &Path, environment: &str) -> Result<String, Failure> {
    let file: PathBuf = dir.join(format!("{environment}.pid"));
    Ok(std::fs::read_to_string(file)?.trim().to_owned())
}
