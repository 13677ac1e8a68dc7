//! CPU time of this process and of the local MariaDB server, sampled every few milliseconds, so
//! that a run's wall time can be set against the work both sides did in it (2 cores here: a
//! step that keeps both busy cannot go faster by overlapping more).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Linux reports process times in USER_HZ ticks, 100 per second on every platform it runs on.
const TICKS_PER_SECOND: f64 = 100.0;
const EVERY: Duration = Duration::from_millis(20);

/// CPU seconds spent in a stretch of time.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    pub wall_seconds: f64,
    pub client_cpu_seconds: f64,
    /// `None` when the database server is not a process of this machine.
    pub server_cpu_seconds: Option<f64>,
}

impl Usage {
    /// Both sides' CPU over the wall time and the cores: 1.0 keeps every core busy.
    pub fn utilisation(&self, cores: usize) -> Option<f64> {
        let server = self.server_cpu_seconds?;
        Some((self.client_cpu_seconds + server) / (self.wall_seconds * cores as f64))
    }
}

struct Sample {
    at: Instant,
    client: f64,
    server: Option<f64>,
}

/// Samples both processes' CPU time until dropped.
pub struct CpuSampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CpuSampler {
    pub fn start() -> Self {
        let server = server_pid();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (Arc::clone(&samples), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let sample = Sample {
                        at: Instant::now(),
                        client: cpu_seconds("self").unwrap_or(0.0),
                        server: server.as_deref().and_then(cpu_seconds),
                    };
                    samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(sample);
                    std::thread::sleep(EVERY);
                }
            })
        };
        Self {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The usage between two instants (to the nearest samples inside them).
    pub fn between(&self, from: Instant, to: Instant) -> Usage {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let first = samples.iter().find(|s| s.at >= from);
        let last = samples.iter().rev().find(|s| s.at <= to);
        let (Some(first), Some(last)) = (first, last) else {
            return Usage {
                wall_seconds: (to - from).as_secs_f64(),
                ..Usage::default()
            };
        };
        if last.at <= first.at {
            return Usage {
                wall_seconds: (to - from).as_secs_f64(),
                ..Usage::default()
            };
        }
        // Scaled from the samples' own span to the stretch asked for.
        let span = (last.at - first.at).as_secs_f64();
        let wall = (to - from).as_secs_f64();
        let scale = wall / span;
        Usage {
            wall_seconds: wall,
            client_cpu_seconds: (last.client - first.client) * scale,
            server_cpu_seconds: match (first.server, last.server) {
                (Some(a), Some(b)) => Some((b - a) * scale),
                _ => None,
            },
        }
    }
}

impl Drop for CpuSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// User plus system time of a process, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// The pid of the local `mariadbd` (or `mysqld`), if one runs here.
fn server_pid() -> Option<String> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().into_string().ok()?;
            pid.chars().all(|c| c.is_ascii_digit()).then_some(())?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            matches!(comm.trim(), "mariadbd" | "mysqld").then_some(pid)
        })
}
