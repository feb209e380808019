//! Running the examples as real processes: built once by cargo, located
//! from cargo's own report of what it built.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Builds example `name` and returns the path of its executable.
pub(crate) fn example_binary(name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--quiet", "-p", "examples", "--example", name])
        .args(["--message-format", "json"])
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo could not build example {name}"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == name)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no executable for example {name}"))
}

/// A process killed when dropped, so a failing test leaves none behind.
pub(crate) struct Process {
    child: Option<Child>,
    pid: u32,
    lines: mpsc::Receiver<String>,
}

impl Process {
    /// Starts `command` with its stdout piped and read line by line.
    pub(crate) fn start(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the example starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            pid: child.id(),
            child: Some(child),
            lines,
        }
    }

    /// The next line the process prints that starts with `prefix`, with
    /// the prefix cut off; waits at most `timeout`.
    pub(crate) fn line_starting(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(error) => panic!("no line starting `{prefix}` within {timeout:?}: {error}"),
            }
        }
    }

    /// Sends `signal` (`TERM`, `KILL`).
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {} failed", self.pid);
    }

    /// Waits at most `timeout` for the process to exit, on a thread that
    /// reports the exit; the process is killed if it does not.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the process is waited for once");
        let (sender, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait());
        });
        match exited.recv_timeout(timeout) {
            Ok(status) => status.expect("the process can be waited for"),
            Err(_) => {
                self.signal("KILL");
                panic!("the process did not exit within {timeout:?}");
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
