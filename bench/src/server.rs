//! The real release `marquee serve` as a child process: started on a free port, waited for until
//! /readyz answers, measured from /proc, and stopped with SIGTERM.

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tokio::process::{Child, Command};

/// The password every benchmark user signs in with.
const PASSWORD: &str = "correct horse battery";

pub struct Server {
    child: Child,
    pub pid: u32,
    pub base_url: String,
}

impl Server {
    /// Starts `binary serve` with `env` on a free 127.0.0.1 port and waits for /readyz.
    pub async fn start(binary: &Path, env: &[(&str, String)]) -> Result<Self> {
        ensure!(
            binary.is_file(),
            "{} does not exist: build it with `cargo build --release -p marquee` (bench/api.sh does)",
            binary.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let bind = format!("127.0.0.1:{port}");
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("MARQUEE_BIND", &bind)
            .env("MARQUEE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {} serve", binary.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let mut server = Self {
            child,
            pid,
            base_url: format!("http://{bind}"),
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited before it was ready: {status}");
            }
            let ready = client
                .get(format!("{}/readyz", self.base_url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if matches!(&ready, Ok(response) if response.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the server was not ready within 60 s: {ready:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Registers `username` and signs in; returns the bearer token.
    pub async fn signed_in(&self, username: &str) -> Result<String> {
        let client = reqwest::Client::new();
        let registered = client
            .post(format!("{}/api/users", self.base_url))
            .json(&serde_json::json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": PASSWORD,
            }))
            .send()
            .await?;
        let status = registered.status();
        ensure!(
            status == 201,
            "registering {username}: {status} {}",
            registered.text().await?
        );
        let session = client
            .post(format!("{}/api/sessions", self.base_url))
            .json(&serde_json::json!({ "username": username, "password": PASSWORD }))
            .send()
            .await?;
        let status = session.status();
        ensure!(
            status == 200,
            "signing in {username}: {status} {}",
            session.text().await?
        );
        let body: serde_json::Value = session.json().await?;
        body["token"]
            .as_str()
            .map(str::to_string)
            .context("the session response has no token")
    }

    /// The resident set now, and its peak so far, in MiB (VmRSS and VmHWM of /proc/PID/status).
    pub fn memory_mib(&self) -> Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> Result<f64> {
            let line = status
                .lines()
                .find(|line| line.starts_with(name))
                .with_context(|| format!("no {name} in /proc/{}/status", self.pid))?;
            let kib: f64 = line
                .trim_start_matches(name)
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?;
            Ok(kib / 1024.0)
        };
        Ok(Memory {
            rss_mib: field("VmRSS:")?,
            peak_mib: field("VmHWM:")?,
        })
    }

    /// SIGTERM, then waits for the server to exit (SIGKILL after 30 s).
    pub async fn stop(mut self) -> Result<()> {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        ensure!(sent.success(), "kill -TERM {} failed", self.pid);
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                eprintln!("  the server did not stop within 30 s of SIGTERM; killing it");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_mib: f64,
    pub peak_mib: f64,
}
