//! Dependencies a test may break on purpose: a MariaDB and a moto server of the test's own (the
//! shared ones on 3306 and 5000 serve everyone's tests and are never stopped), and a TCP proxy
//! that can refuse connections.

use std::path::PathBuf;
use std::time::Duration;

use event_store::{Database, PoolSettings};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// A MariaDB server of this test's own, in a temporary data directory, on a free port: it can be
/// killed and started again on the same data and port.
pub struct PrivateMariaDb {
    dir: tempfile::TempDir,
    port: u16,
    server: Option<Child>,
}

impl PrivateMariaDb {
    /// Creates the system tables (root without a password, as the shared server has) and starts
    /// the server; returns once it takes connections.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let installed = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ])
            .output()
            .await
            .expect("mariadb-install-db runs (scripts/test installs MariaDB)");
        assert!(
            installed.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&installed.stderr)
        );
        let mut db = Self {
            dir,
            port: crate::free_port(),
            server: None,
        };
        db.restart().await;
        db
    }

    /// `mysql://root@127.0.0.1:PORT`, for `TestDatabase::on_mysql_server`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// The server's own log.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Starts the server again on the same data directory and port; returns once it answers.
    pub async fn restart(&mut self) {
        assert!(self.server.is_none(), "the server is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("the server log");
        let dir = self.dir.path();
        let server = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--socket={}", dir.join("mariadb.sock").display()))
            .arg(format!("--pid-file={}", dir.join("mariadb.pid").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-networking=0",
                "--user=root",
                "--innodb-buffer-pool-size=64M",
                "--max-connections=500",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("mariadbd starts");
        self.server = Some(server);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let url = format!("{}/mysql", self.url());
            if let Ok(db) = Database::connect(&url, PoolSettings::default()).await {
                db.close().await;
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the private MariaDB did not start; its log:\n{}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server with `signal` (`KILL`: a crash; `TERM`: a clean shutdown) and waits
    /// until it is gone.
    pub async fn stop(&mut self, signal: &str) {
        let mut server = self.server.take().expect("the server is running");
        send_signal(&server, signal);
        server.wait().await.expect("the server exits");
    }
}

/// A `moto_server` of this test's own, from the test virtualenv, on a free port. moto keeps its
/// state in memory, so it is never restarted: `pause` (SIGSTOP) makes it hang instead.
pub struct PrivateMoto {
    port: u16,
    server: Child,
}

impl PrivateMoto {
    pub async fn start() -> Self {
        let python = crate::venv_python_with("moto");
        let binary = python.with_file_name("moto_server");
        let port = crate::free_port();
        let server = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if reqwest::get(format!("{endpoint}/moto-api/data.json"))
                .await
                .is_ok_and(|answer| answer.status().is_success())
            {
                return Self { port, server };
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the private moto server did not start"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGSTOP: connections are accepted by the kernel and then nothing answers.
    pub fn pause(&self) {
        send_signal(&self.server, "STOP");
    }

    /// SIGCONT: answers again, with everything it held.
    pub fn resume(&self) {
        send_signal(&self.server, "CONT");
    }
}

/// `kill -SIGNAL` to a child that is still running.
pub fn send_signal(child: &Child, signal: &str) {
    let pid = child.id().expect("the process is running").to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{signal} {pid} failed");
}

/// A TCP proxy to `127.0.0.1:upstream` that can be switched off: then its port refuses
/// connections (nothing listens) and the connections it carried are cut, as when a service is
/// down; switched on, it listens on the same port again.
pub struct SwitchableProxy {
    port: u16,
    up: watch::Sender<bool>,
}

impl SwitchableProxy {
    pub async fn start(upstream: u16) -> Self {
        let port = crate::free_port();
        let (up, mut switched) = watch::channel(true);
        // Ends with the proxy: dropping `up` ends the accept loop and every connection.
        tokio::spawn(async move {
            loop {
                if !*switched.borrow_and_update() {
                    if switched.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                let listener = bind_again(port).await;
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            if let Ok((client, _)) = accepted {
                                tokio::spawn(carry(client, upstream, switched.clone()));
                            }
                        }
                        changed = switched.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            if !*switched.borrow() {
                                break;
                            }
                        }
                    }
                }
            }
        });
        // Listening before anyone is told the address.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the proxy does not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { port, up }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Refuses connections and cuts open ones until `up`.
    pub fn down(&self) {
        self.up.send_replace(false);
    }

    pub fn up(&self) {
        self.up.send_replace(true);
    }
}

/// Binds the proxy's port again after it was let go (something else may hold it a moment).
async fn bind_again(port: u16) -> TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => return listener,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "cannot listen on {port} again: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Copies both ways until either side closes or the proxy goes down.
async fn carry(mut client: TcpStream, upstream: u16, mut up: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = up.wait_for(|up| !*up) => {}
    }
}
