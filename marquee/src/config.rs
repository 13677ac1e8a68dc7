//! One typed configuration, read from flags and the environment and validated before anything
//! starts, so a bad value stops the process with a message that names it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use event_store::{redact_url, Backend, PoolSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// SQLite under the data directory, everything in one process: needs nothing installed.
    Embedded,
    /// MySQL (RDS or MariaDB) and the AWS services.
    Aws,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The settings as given; `validate` turns them into `Settings`.
#[derive(Debug, Clone, Args)]
pub struct RawConfig {
    /// Deployment profile.
    #[arg(
        long,
        env = "MARQUEE_PROFILE",
        value_enum,
        default_value = "embedded",
        global = true
    )]
    pub profile: Profile,
    /// Where the embedded profile keeps its SQLite file and posters.
    #[arg(
        long,
        env = "MARQUEE_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// The event store: sqlite://PATH (embedded; default DATA_DIR/marquee.db) or mysql://… (aws, required).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Points every AWS client at this endpoint (a local emulator in tests).
    #[arg(long, env = "AWS_ENDPOINT_URL", global = true)]
    pub aws_endpoint_url: Option<String>,
    /// Log format: text, or json (the default in the aws profile).
    #[arg(long, env = "MARQUEE_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, env = "MARQUEE_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Most database connections this process opens.
    #[arg(
        long,
        env = "MARQUEE_DB_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub db_max_connections: u32,
    /// Milliseconds a request waits for a database connection (an unreachable database
    /// included) before it is answered 503 `database_unavailable`.
    #[arg(
        long,
        env = "MARQUEE_DB_ACQUIRE_TIMEOUT_MS",
        default_value_t = 2000,
        global = true
    )]
    pub db_acquire_timeout_ms: u64,
    /// Seconds between ledger checkpoints written by `serve`; 0 turns them off.
    #[arg(
        long,
        env = "MARQUEE_CHECKPOINT_INTERVAL",
        default_value_t = 60,
        global = true
    )]
    pub checkpoint_interval: u64,
    /// The origin browsers use to reach the site (CSRF check, passkeys); default http://BIND.
    #[arg(long, env = "MARQUEE_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Take client addresses from X-Forwarded-For (only behind a load balancer that sets it).
    #[arg(
        long,
        env = "MARQUEE_TRUST_FORWARDED_FOR",
        default_value_t = false,
        global = true
    )]
    pub trust_forwarded_for: bool,
    /// Sign-in attempts allowed per client address per minute.
    #[arg(
        long,
        env = "MARQUEE_SIGN_IN_RATE",
        default_value_t = 10,
        global = true
    )]
    pub sign_in_rate: u32,
    /// The S3 bucket posters are stored in (aws profile, required there).
    #[arg(long, env = "MARQUEE_POSTER_BUCKET", global = true)]
    pub poster_bucket: Option<String>,
    /// Where browsers load posters from, such as a CDN in front of the bucket
    /// (https://d1234.cloudfront.net/posters); default: the bucket, or this app in embedded.
    #[arg(long, env = "MARQUEE_POSTER_BASE_URL", global = true)]
    pub poster_base_url: Option<String>,
    /// Name prefix of the SNS topics (PREFIXalerts, PREFIXmovies, PREFIXlogins) in the aws profile.
    #[arg(
        long,
        env = "MARQUEE_SNS_TOPIC_PREFIX",
        default_value = "marquee-",
        global = true
    )]
    pub sns_topic_prefix: String,
    /// CloudWatch namespace of the metrics (aws profile); another one keeps a second deployment
    /// in the same account apart.
    #[arg(
        long,
        env = "MARQUEE_METRICS_NAMESPACE",
        default_value = "Marquee",
        global = true
    )]
    pub metrics_namespace: String,
    /// Milliseconds between the relay's (and embedded projectors') looks for events that other
    /// processes committed.
    #[arg(
        long,
        env = "MARQUEE_RELAY_POLL_MS",
        default_value_t = 100,
        global = true
    )]
    pub relay_poll_ms: u64,
    /// Seconds `marquee project` waits on an empty queue per long poll (SQS allows 0 to 20).
    #[arg(
        long,
        env = "MARQUEE_QUEUE_WAIT_SECONDS",
        default_value_t = 20,
        global = true
    )]
    pub queue_wait_seconds: u64,
    /// Seconds between maintenance runs inside `serve` in the embedded profile (the scheduler
    /// Lambda's work: checkpoint, expired lockouts, lag metric, daily digest); 0 turns them off.
    #[arg(
        long,
        env = "MARQUEE_MAINTENANCE_INTERVAL",
        default_value_t = 60,
        global = true
    )]
    pub maintenance_interval: u64,
    /// Projection lag, in events, above which admins get an alert.
    #[arg(long, env = "MARQUEE_LAG_ALERT", default_value_t = 1000, global = true)]
    pub lag_alert: i64,
    /// Failed sign-ins across all accounts within five minutes that raise an alert.
    #[arg(
        long,
        env = "MARQUEE_FAILED_SIGN_IN_BURST",
        default_value_t = 20,
        global = true
    )]
    pub failed_sign_in_burst: i64,
    /// Milliseconds a GraphQL request with `X-Min-Position` waits for the read models at most.
    #[arg(
        long,
        env = "MARQUEE_MIN_POSITION_WAIT_MS",
        default_value_t = 2000,
        global = true
    )]
    pub min_position_wait_ms: u64,
    /// Milliseconds between GraphQL live updates' looks for events other processes committed.
    #[arg(
        long,
        env = "MARQUEE_LIVE_POLL_MS",
        default_value_t = 200,
        global = true
    )]
    pub live_poll_ms: u64,
    /// Tests only: makes the process abort at a named point (`projector-after-apply`,
    /// `projector-after-apply:PROJECTION` or `replay-before-swap`) to prove what survives a
    /// crash there.
    #[arg(long, env = "MARQUEE_FAILPOINT", global = true, hide = true)]
    pub failpoint: Option<String>,
}

/// Where poster images are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PosterStore {
    /// Files under this directory, served by the app (embedded).
    Disk(PathBuf),
    /// An S3 bucket (aws).
    S3 { bucket: String },
}

/// Validated configuration: every field is usable as it is.
#[derive(Clone)]
pub struct Settings {
    pub profile: Profile,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub aws_endpoint_url: Option<String>,
    pub log_format: LogFormat,
    pub log: String,
    pub pool: PoolSettings,
    pub checkpoint_interval: Option<Duration>,
    /// `None` means "http:// and whatever address serve binds".
    pub public_url: Option<String>,
    pub trust_forwarded_for: bool,
    pub sign_in_rate: u32,
    pub posters: PosterStore,
    /// Without a trailing slash; `None` means the store's own address.
    pub poster_base_url: Option<String>,
    pub sns_topic_prefix: String,
    pub metrics_namespace: String,
    pub relay_poll: Duration,
    pub queue_wait: Duration,
    pub maintenance_interval: Option<Duration>,
    pub pipeline: projectors::PipelineSettings,
    pub query: query_api::QueryConfig,
}

impl Settings {
    /// The command API's settings once `serve` knows the address it listens on.
    pub fn api_config(&self, bound: SocketAddr) -> command_api::ApiConfig {
        command_api::ApiConfig {
            public_origin: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{bound}")),
            trust_forwarded_for: self.trust_forwarded_for,
            sign_in_attempts_per_minute: self.sign_in_rate,
            max_json_bytes: 64 * 1024,
            max_upload_bytes: 5 * 1024 * 1024,
        }
    }
}

impl fmt::Debug for Settings {
    // By hand, so that a password in DATABASE_URL never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("profile", &self.profile)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("aws_endpoint_url", &self.aws_endpoint_url)
            .field("log_format", &self.log_format)
            .field("log", &self.log)
            .field("pool", &self.pool)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("public_url", &self.public_url)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("sign_in_rate", &self.sign_in_rate)
            .field("posters", &self.posters)
            .field("poster_base_url", &self.poster_base_url)
            .field("sns_topic_prefix", &self.sns_topic_prefix)
            .field("metrics_namespace", &self.metrics_namespace)
            .field("relay_poll", &self.relay_poll)
            .field("queue_wait", &self.queue_wait)
            .field("maintenance_interval", &self.maintenance_interval)
            .field("pipeline", &self.pipeline)
            .field("query", &self.query)
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error(
        "DATABASE_URL is required in the aws profile (mysql://USER:PASSWORD@HOST:3306/DATABASE)"
    )]
    MissingDatabaseUrl,
    #[error("DATABASE_URL {url:?} does not fit the {profile} profile: use {expected}")]
    WrongDatabase {
        url: String,
        profile: &'static str,
        expected: &'static str,
    },
    #[error("AWS_ENDPOINT_URL {0:?} must be an http:// or https:// URL")]
    BadEndpoint(String),
    #[error("MARQUEE_DB_MAX_CONNECTIONS must be between 1 and 1000, not {0}")]
    BadPoolSize(u32),
    #[error("MARQUEE_DB_ACQUIRE_TIMEOUT_MS must be between 100 and 60000, not {0}")]
    BadAcquireTimeout(u64),
    #[error("MARQUEE_FAILPOINT {0:?} is not a failpoint: use projector-after-apply[:PROJECTION] or replay-before-swap")]
    BadFailpoint(String),
    #[error("MARQUEE_DATA_DIR {path:?} cannot be used: {reason}")]
    BadDataDir { path: PathBuf, reason: String },
    #[error("MARQUEE_PUBLIC_URL {0:?} must be an origin such as https://marquee.example.com (scheme, host and port only)")]
    BadPublicUrl(String),
    #[error("MARQUEE_SNS_TOPIC_PREFIX {0:?} may hold only letters, digits, '-' and '_' (SNS topic names)")]
    BadTopicPrefix(String),
    #[error("MARQUEE_SIGN_IN_RATE must be between 1 and 10000 attempts per minute, not {0}")]
    BadSignInRate(u32),
    #[error("MARQUEE_LOG {filter:?} is not a valid log filter: {reason}")]
    BadLogFilter { filter: String, reason: String },
    #[error(
        "MARQUEE_POSTER_BUCKET is required in the aws profile: the S3 bucket posters are stored in"
    )]
    MissingPosterBucket,
    #[error("MARQUEE_POSTER_BUCKET {bucket:?} is not a valid S3 bucket name: {reason}")]
    BadPosterBucket {
        bucket: String,
        reason: &'static str,
    },
    #[error("MARQUEE_POSTER_BUCKET is used only in the aws profile; the embedded profile keeps posters under MARQUEE_DATA_DIR/posters")]
    PosterBucketOutsideAws,
    #[error("MARQUEE_METRICS_NAMESPACE {0:?} must be 1 to 255 characters of letters, digits and . - _ / # :")]
    BadMetricsNamespace(String),
    #[error("MARQUEE_RELAY_POLL_MS must be between 1 and 60000, not {0}")]
    BadRelayPoll(u64),
    #[error("MARQUEE_QUEUE_WAIT_SECONDS must be between 0 and 20 (SQS long polling), not {0}")]
    BadQueueWait(u64),
    #[error("MARQUEE_LAG_ALERT must be at least 1 event, not {0}")]
    BadLagAlert(i64),
    #[error("MARQUEE_FAILED_SIGN_IN_BURST must be at least 2 failed sign-ins, not {0}")]
    BadFailedSignInBurst(i64),
    #[error("MARQUEE_MIN_POSITION_WAIT_MS must be between 0 and 60000, not {0}")]
    BadMinPositionWait(u64),
    #[error("MARQUEE_LIVE_POLL_MS must be between 1 and 60000, not {0}")]
    BadLivePoll(u64),
    #[error("MARQUEE_POSTER_BASE_URL {0:?} must be an http:// or https:// URL without query or fragment, such as https://d1234.cloudfront.net/posters")]
    BadPosterBaseUrl(String),
}

impl RawConfig {
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let database_url = match (self.profile, self.database_url) {
            (Profile::Aws, None) => return Err(ConfigError::MissingDatabaseUrl),
            (Profile::Embedded, None) => {
                format!("sqlite://{}", self.data_dir.join("marquee.db").display())
            }
            (_, Some(url)) => url,
        };
        let (profile_name, expected_backend, expected) = match self.profile {
            Profile::Embedded => ("embedded", Backend::Sqlite, "sqlite://PATH"),
            Profile::Aws => (
                "aws",
                Backend::MySql,
                "mysql://USER:PASSWORD@HOST:3306/DATABASE",
            ),
        };
        if Backend::from_url(&database_url).ok() != Some(expected_backend) {
            return Err(ConfigError::WrongDatabase {
                url: redact_url(&database_url),
                profile: profile_name,
                expected,
            });
        }
        if let Some(endpoint) = &self.aws_endpoint_url {
            let valid = ["http://", "https://"]
                .iter()
                .any(|scheme| endpoint.len() > scheme.len() && endpoint.starts_with(scheme));
            if !valid || endpoint.contains(char::is_whitespace) {
                return Err(ConfigError::BadEndpoint(endpoint.clone()));
            }
        }
        if let Some(url) = &self.public_url {
            if !is_origin(url) {
                return Err(ConfigError::BadPublicUrl(url.to_string()));
            }
        }
        let topic_name_safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.sns_topic_prefix.len() > 200 || !self.sns_topic_prefix.chars().all(topic_name_safe)
        {
            return Err(ConfigError::BadTopicPrefix(self.sns_topic_prefix));
        }
        if !(1..=10_000).contains(&self.sign_in_rate) {
            return Err(ConfigError::BadSignInRate(self.sign_in_rate));
        }
        if !(1..=1000).contains(&self.db_max_connections) {
            return Err(ConfigError::BadPoolSize(self.db_max_connections));
        }
        if !(100..=60_000).contains(&self.db_acquire_timeout_ms) {
            return Err(ConfigError::BadAcquireTimeout(self.db_acquire_timeout_ms));
        }
        let failpoint = match self.failpoint.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<projectors::Failpoint>()
                    .map_err(|_| ConfigError::BadFailpoint(text.to_string()))?,
            ),
        };
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            return Err(ConfigError::BadLogFilter {
                filter: self.log,
                reason: e.to_string(),
            });
        }
        let posters = match (self.profile, self.poster_bucket) {
            (Profile::Aws, None) => return Err(ConfigError::MissingPosterBucket),
            (Profile::Aws, Some(bucket)) => {
                if let Err(reason) = check_bucket_name(&bucket) {
                    return Err(ConfigError::BadPosterBucket { bucket, reason });
                }
                PosterStore::S3 { bucket }
            }
            (Profile::Embedded, Some(_)) => return Err(ConfigError::PosterBucketOutsideAws),
            (Profile::Embedded, None) => PosterStore::Disk(self.data_dir.join("posters")),
        };
        let poster_base_url = match self.poster_base_url {
            Some(url) if !is_base_url(&url) => return Err(ConfigError::BadPosterBaseUrl(url)),
            url => url.map(|url| url.trim_end_matches('/').to_string()),
        };
        if self.profile == Profile::Embedded && self.data_dir.exists() && !self.data_dir.is_dir() {
            return Err(ConfigError::BadDataDir {
                path: self.data_dir,
                reason: "it exists and is not a directory".into(),
            });
        }
        let namespace_char = |c: char| c.is_ascii_alphanumeric() || ".-_/#:".contains(c);
        if !(1..=255).contains(&self.metrics_namespace.len())
            || !self.metrics_namespace.chars().all(namespace_char)
        {
            return Err(ConfigError::BadMetricsNamespace(self.metrics_namespace));
        }
        if !(1..=60_000).contains(&self.relay_poll_ms) {
            return Err(ConfigError::BadRelayPoll(self.relay_poll_ms));
        }
        if self.min_position_wait_ms > 60_000 {
            return Err(ConfigError::BadMinPositionWait(self.min_position_wait_ms));
        }
        if !(1..=60_000).contains(&self.live_poll_ms) {
            return Err(ConfigError::BadLivePoll(self.live_poll_ms));
        }
        if self.queue_wait_seconds > 20 {
            return Err(ConfigError::BadQueueWait(self.queue_wait_seconds));
        }
        if self.lag_alert < 1 {
            return Err(ConfigError::BadLagAlert(self.lag_alert));
        }
        if self.failed_sign_in_burst < 2 {
            return Err(ConfigError::BadFailedSignInBurst(self.failed_sign_in_burst));
        }
        Ok(Settings {
            log_format: self.log_format.unwrap_or(match self.profile {
                Profile::Embedded => LogFormat::Text,
                Profile::Aws => LogFormat::Json,
            }),
            profile: self.profile,
            data_dir: self.data_dir,
            database_url,
            aws_endpoint_url: self.aws_endpoint_url,
            log: self.log,
            pool: PoolSettings {
                max_connections: self.db_max_connections,
                acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            },
            checkpoint_interval: (self.checkpoint_interval > 0)
                .then(|| Duration::from_secs(self.checkpoint_interval)),
            public_url: self.public_url,
            trust_forwarded_for: self.trust_forwarded_for,
            sign_in_rate: self.sign_in_rate,
            posters,
            poster_base_url,
            sns_topic_prefix: self.sns_topic_prefix,
            metrics_namespace: self.metrics_namespace,
            relay_poll: Duration::from_millis(self.relay_poll_ms),
            queue_wait: Duration::from_secs(self.queue_wait_seconds),
            maintenance_interval: (self.maintenance_interval > 0)
                .then(|| Duration::from_secs(self.maintenance_interval)),
            pipeline: projectors::PipelineSettings {
                alert_rules: projectors::AlertRules {
                    failed_sign_in_burst: self.failed_sign_in_burst,
                    ..projectors::AlertRules::default()
                },
                lag_alert: self.lag_alert,
                failpoint,
            },
            query: query_api::QueryConfig {
                min_position_wait: Duration::from_millis(self.min_position_wait_ms),
                live_poll: Duration::from_millis(self.live_poll_ms),
            },
        })
    }
}

/// `scheme://host[:port]`, exactly as a browser sends it in the Origin header.
fn is_origin(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@'])
        && !rest.contains(char::is_whitespace)
}

/// `http(s)://host[:port][/path]`: a prefix that keys are appended to.
fn is_base_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or_default();
    matches!(scheme, "http" | "https")
        && !host.is_empty()
        && !host.contains('@')
        && !rest.contains(['?', '#'])
        && !rest.contains(char::is_whitespace)
}

/// The rules S3 sets for general-purpose bucket names, so a typo fails at start-up rather than
/// at the first upload.
fn check_bucket_name(name: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&name.len()) {
        return Err("it must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err("only lowercase letters, digits, dots and hyphens are allowed");
    }
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alphanumeric(name.as_bytes()[0]) || !alphanumeric(name.as_bytes()[name.len() - 1]) {
        return Err("it must begin and end with a letter or digit");
    }
    if name.contains("..") {
        return Err("it must not contain two dots in a row");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("it must not look like an IP address");
    }
    if ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
    {
        return Err("it uses a prefix or suffix S3 reserves");
    }
    Ok(())
}

/// `--bind` for `serve`.
pub fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an address to listen on, such as 127.0.0.1:8080"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults, built by hand: parsing would read this machine's environment.
    fn defaults() -> RawConfig {
        RawConfig {
            profile: Profile::Embedded,
            data_dir: PathBuf::from("/tmp/m"),
            database_url: None,
            aws_endpoint_url: None,
            log_format: None,
            log: "info".into(),
            db_max_connections: 16,
            db_acquire_timeout_ms: 2000,
            checkpoint_interval: 60,
            public_url: None,
            trust_forwarded_for: false,
            sign_in_rate: 10,
            poster_bucket: None,
            poster_base_url: None,
            sns_topic_prefix: "marquee-".into(),
            metrics_namespace: "Marquee".into(),
            relay_poll_ms: 100,
            queue_wait_seconds: 20,
            maintenance_interval: 60,
            lag_alert: 1000,
            failed_sign_in_burst: 20,
            min_position_wait_ms: 2000,
            live_poll_ms: 200,
            failpoint: None,
        }
    }

    #[test]
    fn embedded_defaults_to_sqlite_under_the_data_dir() {
        let settings = defaults().validate().unwrap();
        assert_eq!(settings.database_url, "sqlite:///tmp/m/marquee.db");
        assert_eq!(settings.log_format, LogFormat::Text);
        assert_eq!(settings.checkpoint_interval, Some(Duration::from_secs(60)));
        let mysql = RawConfig {
            database_url: Some("mysql://root@db/m".into()),
            ..defaults()
        };
        assert!(matches!(
            mysql.validate(),
            Err(ConfigError::WrongDatabase { .. })
        ));
    }

    #[test]
    fn aws_needs_a_mysql_url() {
        let aws = RawConfig {
            profile: Profile::Aws,
            poster_bucket: Some("marquee-posters".into()),
            ..defaults()
        };
        assert_eq!(
            aws.clone().validate().unwrap_err(),
            ConfigError::MissingDatabaseUrl
        );
        let sqlite = RawConfig {
            database_url: Some("sqlite://x.db".into()),
            ..aws.clone()
        };
        assert!(matches!(
            sqlite.validate(),
            Err(ConfigError::WrongDatabase { .. })
        ));
        let mysql = RawConfig {
            database_url: Some("mysql://app:pw@db/marquee".into()),
            ..aws
        }
        .validate()
        .unwrap();
        assert_eq!(mysql.log_format, LogFormat::Json);
        assert!(!format!("{mysql:?}").contains("pw@"));
    }

    #[test]
    fn posters_go_to_disk_in_embedded_and_to_a_named_bucket_in_aws() {
        assert_eq!(
            defaults().validate().unwrap().posters,
            PosterStore::Disk(PathBuf::from("/tmp/m/posters"))
        );
        let in_embedded = RawConfig {
            poster_bucket: Some("marquee-posters".into()),
            ..defaults()
        };
        assert_eq!(
            in_embedded.validate().unwrap_err(),
            ConfigError::PosterBucketOutsideAws
        );
        let aws = RawConfig {
            profile: Profile::Aws,
            database_url: Some("mysql://root@db/marquee".into()),
            ..defaults()
        };
        let missing = aws.clone().validate().unwrap_err();
        assert_eq!(missing, ConfigError::MissingPosterBucket);
        assert!(missing
            .to_string()
            .contains("MARQUEE_POSTER_BUCKET is required"));
        for good in ["marquee-posters", "abc", "posters.example.com", "a1-b2"] {
            let settings = RawConfig {
                poster_bucket: Some(good.into()),
                ..aws.clone()
            }
            .validate()
            .unwrap();
            assert_eq!(
                settings.posters,
                PosterStore::S3 {
                    bucket: good.into()
                }
            );
        }
        for bad in [
            "ab",
            "Marquee",
            "under_score",
            "-posters",
            "posters.",
            "a..b",
            "192.168.1.1",
            "xn--posters",
            "posters-s3alias",
            &"a".repeat(64),
        ] {
            let error = RawConfig {
                poster_bucket: Some(bad.into()),
                ..aws.clone()
            }
            .validate()
            .unwrap_err();
            assert!(
                matches!(&error, ConfigError::BadPosterBucket { bucket, .. } if bucket == bad),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn the_poster_base_url_is_a_url_prefix() {
        let with = |url: &str| {
            RawConfig {
                poster_base_url: Some(url.into()),
                ..defaults()
            }
            .validate()
        };
        assert_eq!(
            with("https://d1234.cloudfront.net/posters/")
                .unwrap()
                .poster_base_url
                .as_deref(),
            Some("https://d1234.cloudfront.net/posters")
        );
        assert!(with("http://127.0.0.1:9000").is_ok());
        for bad in [
            "d1234.cloudfront.net",
            "ftp://cdn.example.com",
            "https://",
            "https://cdn.example.com/p?x=1",
            "https://user@cdn.example.com",
            "https://cdn.example.com/a b",
        ] {
            assert_eq!(
                with(bad).unwrap_err(),
                ConfigError::BadPosterBaseUrl(bad.into())
            );
        }
        assert_eq!(defaults().validate().unwrap().poster_base_url, None);
    }

    #[test]
    fn bad_values_are_named() {
        let bad_endpoint = RawConfig {
            aws_endpoint_url: Some("localhost:5000".into()),
            ..defaults()
        };
        assert_eq!(
            bad_endpoint.validate().unwrap_err().to_string(),
            "AWS_ENDPOINT_URL \"localhost:5000\" must be an http:// or https:// URL"
        );
        let bad_pool = RawConfig {
            db_max_connections: 0,
            ..defaults()
        };
        assert_eq!(
            bad_pool.validate().unwrap_err(),
            ConfigError::BadPoolSize(0)
        );
        let bad_acquire = RawConfig {
            db_acquire_timeout_ms: 10,
            ..defaults()
        };
        assert_eq!(
            bad_acquire.validate().unwrap_err(),
            ConfigError::BadAcquireTimeout(10)
        );
        let failpoint = RawConfig {
            failpoint: Some("projector-after-apply:metrics".into()),
            ..defaults()
        };
        assert_eq!(
            failpoint.validate().unwrap().pipeline.failpoint,
            Some(projectors::Failpoint::ProjectorAfterApply {
                projection: Some("metrics")
            })
        );
        let bad_failpoint = RawConfig {
            failpoint: Some("everywhere".into()),
            ..defaults()
        };
        assert_eq!(
            bad_failpoint.validate().unwrap_err(),
            ConfigError::BadFailpoint("everywhere".into())
        );
        let bad_filter = RawConfig {
            log: "info,[".into(),
            ..defaults()
        };
        assert!(matches!(
            bad_filter.validate(),
            Err(ConfigError::BadLogFilter { .. })
        ));
        let no_checkpoints = RawConfig {
            checkpoint_interval: 0,
            ..defaults()
        };
        assert_eq!(no_checkpoints.validate().unwrap().checkpoint_interval, None);
        for url in ["https://marquee.example.com", "http://127.0.0.1:8080"] {
            let good = RawConfig {
                public_url: Some(url.into()),
                ..defaults()
            };
            assert!(good.validate().is_ok(), "{url}");
        }
        for url in ["marquee.example.com", "https://x.com/app", "ftp://x.com"] {
            let bad = RawConfig {
                public_url: Some(url.into()),
                ..defaults()
            };
            assert_eq!(
                bad.validate().unwrap_err(),
                ConfigError::BadPublicUrl(url.into())
            );
        }
        let bad_prefix = RawConfig {
            sns_topic_prefix: "marquee alerts".into(),
            ..defaults()
        };
        assert!(matches!(
            bad_prefix.validate(),
            Err(ConfigError::BadTopicPrefix(_))
        ));
        assert!(parse_bind("localhost").is_err());
        assert!(parse_bind("127.0.0.1:0").is_ok());
    }
}
