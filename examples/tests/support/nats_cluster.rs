#![allow(dead_code)] // each test binary uses its own part

//! A three-server JetStream cluster on loopback, run by the project's
//! `scripts/nats-cluster.sh`; stopped and removed on drop. The server
//! binary is `$NATS_SERVER` (2.10 or newer; `scripts/test.sh` sets it).

use std::path::PathBuf;
use std::process::Command;

pub(crate) struct NatsCluster {
    dir: PathBuf,
    urls: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/nats-cluster.sh")
}

fn run(arguments: &[&str]) -> String {
    let output = Command::new(script())
        .args(arguments)
        .output()
        .expect("scripts/nats-cluster.sh runs");
    assert!(
        output.status.success(),
        "nats-cluster.sh {arguments:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl NatsCluster {
    /// Three servers, nats-0 to nats-2, healthy and routed to each other.
    pub(crate) fn start() -> NatsCluster {
        let dir = std::env::temp_dir().join(format!(
            "modulink-cluster-{}-{}",
            std::process::id(),
            super::nats_server::uuid_like()
        ));
        let urls = run(&["start", &dir.to_string_lossy()]);
        NatsCluster { dir, urls }
    }

    /// The client URLs, comma-separated.
    pub(crate) fn urls(&self) -> &str {
        &self.urls
    }

    /// Kills server `n` with SIGKILL and waits until it is gone.
    pub(crate) fn kill(&self, n: usize) {
        run(&["kill", &self.dir.to_string_lossy(), &n.to_string()]);
    }

    /// Starts server `n` again on its ports and store; returns once it is
    /// healthy.
    pub(crate) fn restart(&self, n: usize) {
        run(&["restart", &self.dir.to_string_lossy(), &n.to_string()]);
    }

    /// The index of the server that leads `stream` now.
    pub(crate) async fn leader_of(&self, stream: &str) -> usize {
        let urls: Vec<&str> = self.urls.split(',').collect();
        let client = async_nats::connect(urls).await.expect("a server answers");
        let mut stream = async_nats::jetstream::new(client)
            .get_stream(stream)
            .await
            .expect("the stream exists");
        let info = stream.info().await.expect("the stream answers");
        let leader = info
            .cluster
            .as_ref()
            .and_then(|cluster| cluster.leader.clone())
            .expect("a replicated stream has a leader");
        leader
            .strip_prefix("nats-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("leader `{leader}` is not one of nats-0..2"))
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", &self.dir.to_string_lossy()])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
