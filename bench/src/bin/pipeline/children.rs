//! The aws profile's other release processes: `marquee provision` run to completion, and
//! `marquee relay` and `marquee project` run beside the server until stopped.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use tokio::process::{Child, Command};

fn command(binary: &Path, subcommand: &str, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(binary);
    command
        .arg(subcommand)
        .env("MARQUEE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs `binary provision` with `env`: the bus topic and the projectors' queues.
pub async fn provision(binary: &Path, env: &[(&str, String)]) -> Result<()> {
    let status = command(binary, "provision", env)
        .status()
        .await
        .context("running marquee provision")?;
    ensure!(status.success(), "marquee provision failed: {status}");
    Ok(())
}

/// A long-running `marquee` subcommand, stopped with SIGTERM.
pub struct Background {
    name: &'static str,
    child: Child,
}

impl Background {
    pub fn start(binary: &Path, name: &'static str, env: &[(&str, String)]) -> Result<Self> {
        let child = command(binary, name, env)
            .spawn()
            .with_context(|| format!("starting marquee {name}"))?;
        Ok(Self { name, child })
    }

    /// Fails if the process has exited: a benchmark without it would measure nothing.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!("marquee {} exited: {status}", self.name);
        }
        Ok(())
    }

    /// SIGTERM, then waits for the process to exit (SIGKILL after 30 s).
    pub async fn stop(mut self) -> Result<()> {
        let pid = self.child.id().context("the process is gone")?;
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        ensure!(sent.success(), "kill -TERM {pid} failed");
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "  marquee {} did not stop within 30 s of SIGTERM; killing it",
                self.name
            );
            self.child.kill().await?;
        }
        Ok(())
    }
}
