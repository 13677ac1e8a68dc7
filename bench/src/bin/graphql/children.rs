//! The servers under load as child processes: started on a free port, waited for, measured from
//! /proc, and stopped with SIGTERM.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tokio::process::{Child, Command};

pub struct Server {
    name: &'static str,
    child: Child,
    pid: u32,
    pub base_url: String,
}

/// A free port on 127.0.0.1 for the next server.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    /// Spawns `command`, which listens on `port`, and waits until `ready_path` answers 2xx.
    pub async fn start(
        name: &'static str,
        mut command: Command,
        port: u16,
        ready_path: &str,
    ) -> Result<Self> {
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child.id().context("the server exited at once")?;
        let mut server = Self {
            name,
            child,
            pid,
            base_url: format!("http://127.0.0.1:{port}"),
        };
        server.wait_ready(ready_path).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, path: &str) -> Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited before it was ready: {status}", self.name);
            }
            // The header lets Apollo's CSRF prevention take a GET query; the others ignore it.
            let ready = client
                .get(format!("{}{path}", self.base_url))
                .header("apollo-require-preflight", "true")
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if matches!(&ready, Ok(response) if response.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} was not ready within 60 s: {ready:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The peak resident set so far, in MiB (VmHWM of /proc/PID/status).
    pub fn peak_rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let line = status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .with_context(|| format!("no VmHWM in /proc/{}/status", self.pid))?;
        let kib: f64 = line
            .trim_start_matches("VmHWM:")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kib / 1024.0)
    }

    /// CPU time the server has used so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid)
    }

    /// SIGTERM, then waits for the server to exit (SIGKILL after 30 s).
    pub async fn stop(mut self) -> Result<()> {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        ensure!(sent.success(), "kill -TERM {} failed", self.pid);
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "  {} did not stop within 30 s of SIGTERM; killing it",
                self.name
            );
            self.child.kill().await?;
        }
        Ok(())
    }
}

/// CPU time process `pid` has used so far (user + system, /proc/PID/stat).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("a /proc stat line")?
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    // USER_HZ is 100 on every Linux this runs on.
    Ok(ticks / 100.0)
}

/// The MariaDB (or MySQL) server process on this machine, if there is one to measure.
pub fn database_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            matches!(comm.trim(), "mariadbd" | "mysqld").then_some(pid)
        })
}
