//! The web UI in a real browser: headless Chromium from Debian's `chromium` package, driven by
//! the Node scripts in `tests/browser/` (playwright-core, pinned in its package-lock.json)
//! against the real `marquee serve` binary at `http://localhost:PORT` (passkeys need a domain
//! name). Each script is one test here; the site, its fixture accounts and the environment the
//! scripts read are made by [`Site`]. Screenshots land in
//! `$CARGO_TARGET_DIR/browser-artifacts/<backend>/<script>/`.
//!
//! To add a script: write `tests/browser/NAME.mjs` with `main()` from `lib/harness.mjs`, then a
//! test below that calls `Site::start(backend).await.run("NAME.mjs").await`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use marquee_tests::{free_port, marquee_binary, signed_in_at, Backend, TestDatabase, PASSWORD};
use tokio::process::{Child, Command};

const ADMIN: &str = "site-admin";
const AUDITOR: &str = "site-auditor";
/// A whole script, every step's generous wait included, on a loaded machine.
const SCRIPT_LIMIT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_pages_on_sqlite() {
    Site::start(Backend::Sqlite).await.run("core.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_pages_on_mariadb() {
    Site::start(Backend::MySql).await.run("core.mjs").await;
}

/// `marquee serve` (on MariaDB with `relay` and `project` beside it, as deployed) and the
/// fixture accounts: `site-admin` (admin) and `site-auditor` (auditor), password [`PASSWORD`].
struct Site {
    /// First, so the processes stop before their database is dropped.
    _processes: Vec<Child>,
    db: TestDatabase,
    base_url: String,
    log: tempfile::NamedTempFile,
    /// Where else pages may load from: the poster bucket on moto.
    extra_origins: String,
}

impl Site {
    async fn start(backend: Backend) -> Site {
        let db = TestDatabase::new(backend).await;
        let mut processes = Vec::new();
        let mut extra_origins = String::new();
        if backend == Backend::MySql {
            extra_origins = marquee_tests::moto_endpoint()
                .trim_end_matches('/')
                .to_string();
            db.create_poster_bucket().await;
            // Once, before three processes would each race to apply the migrations.
            let migrated = db.marquee(&["migrate"]);
            assert!(migrated.status.success(), "{migrated:?}");
            let provisioned = db.marquee(&["provision"]);
            assert!(provisioned.status.success(), "{provisioned:?}");
            for command in ["relay", "project"] {
                processes.push(
                    Command::new(marquee_binary())
                        .arg(command)
                        .envs(db.env())
                        .stdout(Stdio::null())
                        .kill_on_drop(true)
                        .spawn()
                        .expect("marquee starts"),
                );
            }
        }
        let port = free_port();
        let base_url = format!("http://localhost:{port}");
        let log = tempfile::NamedTempFile::new().unwrap();
        let serve = db
            .serve_binary_with(port, log.path(), &[("MARQUEE_PUBLIC_URL", &base_url)])
            .await;
        processes.push(serve);
        for (username, role) in [(ADMIN, "admin"), (AUDITOR, "auditor")] {
            signed_in_at(&base_url, username).await;
            let granted = db.marquee(&["user", "grant-role", username, role]);
            assert!(granted.status.success(), "{granted:?}");
        }
        Site {
            _processes: processes,
            db,
            base_url,
            log,
            extra_origins,
        }
    }

    /// Runs `tests/browser/SCRIPT` with Node; fails with its output (and the server's log).
    async fn run(&self, script: &str) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "tests/browser/node_modules is missing: run `npm ci` in tests/browser (scripts/test does)"
        );
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            Path::new(&chromium).exists(),
            "{chromium} is missing: install Debian's chromium package (scripts/test does)"
        );
        let backend = match self.db.backend {
            Backend::Sqlite => "sqlite",
            Backend::MySql => "mariadb",
        };
        // One folder per script: the scripts run at the same time, and each starts its own afresh.
        let artifacts = artifacts_dir()
            .join(backend)
            .join(script.trim_end_matches(".mjs"));
        let _ = std::fs::remove_dir_all(&artifacts);
        std::fs::create_dir_all(&artifacts).unwrap();
        let node = Command::new("node")
            .arg(dir.join(script))
            .current_dir(&dir)
            .env("MARQUEE_URL", &self.base_url)
            .env("MARQUEE_PASSWORD", PASSWORD)
            .env("MARQUEE_ADMIN_USER", ADMIN)
            .env("MARQUEE_AUDITOR_USER", AUDITOR)
            .env("MARQUEE_ARTIFACTS", &artifacts)
            .env("MARQUEE_EXTRA_ORIGINS", &self.extra_origins)
            .env("CHROMIUM", &chromium)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(SCRIPT_LIMIT, node)
            .await
            .unwrap_or_else(|_| panic!("{script} ran longer than {SCRIPT_LIMIT:?}"))
            .expect("node runs (Debian's nodejs package)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        println!("{script} ({backend}):\n{stdout}{stderr}");
        assert!(
            output.status.success(),
            "{script} failed ({}); screenshots in {}\n{stdout}{stderr}\nserver log:\n{}",
            output.status,
            artifacts.display(),
            std::fs::read_to_string(self.log.path()).unwrap_or_default()
        );
    }
}

/// `$CARGO_TARGET_DIR/browser-artifacts`: the target directory holds this test binary in
/// `<profile>/deps/`.
fn artifacts_dir() -> PathBuf {
    std::env::current_exe()
        .expect("the test binary's path")
        .ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>")
        .join("browser-artifacts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_pages_on_sqlite() {
    Site::start(Backend::Sqlite).await.run("admin.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_pages_on_mariadb() {
    Site::start(Backend::MySql).await.run("admin.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_pages_on_sqlite() {
    Site::start(Backend::Sqlite).await.run("audit.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_pages_on_mariadb() {
    Site::start(Backend::MySql).await.run("audit.mjs").await;
}
