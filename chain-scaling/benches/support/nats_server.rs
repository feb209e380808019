//! A private `nats-server` with JetStream on a free loopback port, for the
//! benchmarks that measure against one; killed, and its store removed, on
//! drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub(crate) struct Server {
    process: Child,
    port: u16,
    store: PathBuf,
}

impl Server {
    /// Starts `nats-server` (from the PATH) with a store named after
    /// `name`; returns once it is ready.
    pub(crate) fn start(name: &str) -> Server {
        let store =
            std::env::temp_dir().join(format!("modulink-bench-{name}-{}", std::process::id()));
        let mut process = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(&store)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("nats-server: {error}"));
        let log = BufReader::new(process.stderr.take().unwrap_or_else(|| panic!("no log")));
        let mut port = 0;
        let mut lines = log.lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(address) = line.split("client connections on ").nth(1) {
                port = address
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(0);
            }
            if line.contains("Server is ready") {
                break;
            }
        }
        // Keep reading the log: a Go program whose stderr pipe is closed
        // dies of SIGPIPE at its next log line.
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            process,
            port,
            store,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
