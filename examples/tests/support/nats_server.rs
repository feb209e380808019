#![allow(dead_code)] // each test binary uses its own part

//! A private `nats-server` with JetStream on a free loopback port, for tests
//! that restart it; killed on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const STARTUP: Duration = Duration::from_secs(20);

/// The variable the test script sets.
pub(crate) const URL_VARIABLE: &str = "MODULINK_NATS_URL";

pub(crate) struct NatsServer {
    process: Option<Child>,
    store: PathBuf,
    pub(crate) port: u16,
}

impl NatsServer {
    /// A private server on a free port with its own store directory.
    pub(crate) fn start() -> NatsServer {
        let store = std::env::temp_dir().join(format!("modulink-nats-{}", uuid_like()));
        std::fs::create_dir_all(&store).unwrap();
        let (process, port) = launch(&store, None);
        NatsServer {
            process: Some(process),
            store,
            port,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server abruptly (SIGKILL), as a crash would.
    pub(crate) fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().unwrap();
            process.wait().unwrap();
        }
    }

    /// Starts the server again on the same port and store.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let (process, _) = launch(&self.store, Some(self.port));
        self.process = Some(process);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// The URL of the shared server, or a private server when none is set.
pub(crate) fn shared_or_private() -> (String, Option<NatsServer>) {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let server = NatsServer::start();
            (server.url(), Some(server))
        }
    }
}

fn launch(store: &std::path::Path, port: Option<u16>) -> (Child, u16) {
    let port_argument = port.map_or_else(|| "-1".to_owned(), |port| port.to_string());
    let mut process = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port_argument, "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot start nats-server ({error}); run scripts/test.sh, which installs it")
        });
    let log = process.stderr.take().unwrap();
    let (ready, announced) = mpsc::channel();
    std::thread::spawn(move || {
        let mut port = None;
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            if let Some(address) = line.split("Listening for client connections on ").nth(1) {
                port = address
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.trim().parse().ok());
            }
            if line.contains("Server is ready") {
                let _ = ready.send(port);
            }
        }
    });
    let port = announced
        .recv_timeout(STARTUP)
        .expect("nats-server did not become ready")
        .expect("nats-server did not say its port");
    (process, port)
}

pub(crate) fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!("{:x}{nanos:x}", std::process::id())
}
