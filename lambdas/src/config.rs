//! The functions' configuration: read once from the environment and validated before the
//! runtime loop starts, so a bad value fails the init with a message that names it.

use std::fmt;

use event_store::{redact_url, Backend};
use projectors::{AlertRules, PipelineSettings, PROJECTIONS};

/// What both functions need.
#[derive(Clone)]
pub struct Config {
    /// `mysql://…`; may carry a password, so it is never printed whole.
    pub database_url: String,
    pub sns_topic_prefix: String,
    /// CloudWatch namespace of the metrics.
    pub metrics_namespace: String,
    /// Points every AWS client at this endpoint (a local emulator in tests).
    pub aws_endpoint_url: Option<String>,
    /// tracing's EnvFilter syntax.
    pub log: String,
    pub pipeline: PipelineSettings,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("DATABASE_URL is required (mysql://USER:PASSWORD@HOST:3306/DATABASE)")]
    MissingDatabaseUrl,
    #[error(
        "DATABASE_URL {0:?} must be a mysql:// URL (mysql://USER:PASSWORD@HOST:3306/DATABASE)"
    )]
    NotMySql(String),
    #[error("MARQUEE_PROJECTION is required: one of {known}", known = PROJECTIONS.join(", "))]
    MissingProjection,
    #[error("MARQUEE_PROJECTION {0:?} is not a projection: use one of {known}", known = PROJECTIONS.join(", "))]
    UnknownProjection(String),
    #[error("MARQUEE_SNS_TOPIC_PREFIX {0:?} may hold only letters, digits, '-' and '_' (SNS topic names)")]
    BadTopicPrefix(String),
    #[error("MARQUEE_METRICS_NAMESPACE {0:?} must be 1 to 255 characters of letters, digits and . - _ / # :")]
    BadMetricsNamespace(String),
    #[error("{name} {value:?} is not a whole number")]
    NotANumber { name: &'static str, value: String },
    #[error("MARQUEE_LAG_ALERT must be at least 1 event, not {0}")]
    BadLagAlert(i64),
    #[error("MARQUEE_FAILED_SIGN_IN_BURST must be at least 2 failed sign-ins, not {0}")]
    BadFailedSignInBurst(i64),
    #[error("AWS_ENDPOINT_URL {0:?} must be an http:// or https:// URL")]
    BadEndpoint(String),
    #[error("MARQUEE_LOG {filter:?} is not a valid log filter: {reason}")]
    BadLogFilter { filter: String, reason: String },
}

/// Reads a variable; an empty value counts as unset, as deployment templates write absent
/// parameters as empty strings.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as a `Lookup`.
pub fn environment(name: &str) -> Option<String> {
    std::env::var_os(name)
        .map(|value| value.to_string_lossy().into_owned())
        .filter(|value| !value.is_empty())
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&environment)
    }

    pub fn read(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let database_url = lookup("DATABASE_URL").ok_or(ConfigError::MissingDatabaseUrl)?;
        if Backend::from_url(&database_url).ok() != Some(Backend::MySql) {
            return Err(ConfigError::NotMySql(redact_url(&database_url)));
        }
        let sns_topic_prefix =
            lookup("MARQUEE_SNS_TOPIC_PREFIX").unwrap_or_else(|| "marquee-".into());
        let topic_name_safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if sns_topic_prefix.len() > 200 || !sns_topic_prefix.chars().all(topic_name_safe) {
            return Err(ConfigError::BadTopicPrefix(sns_topic_prefix));
        }
        let metrics_namespace =
            lookup("MARQUEE_METRICS_NAMESPACE").unwrap_or_else(|| projectors::NAMESPACE.into());
        let namespace_char = |c: char| c.is_ascii_alphanumeric() || ".-_/#:".contains(c);
        if metrics_namespace.len() > 255 || !metrics_namespace.chars().all(namespace_char) {
            return Err(ConfigError::BadMetricsNamespace(metrics_namespace));
        }
        let aws_endpoint_url = lookup("AWS_ENDPOINT_URL");
        if let Some(endpoint) = &aws_endpoint_url {
            let valid = ["http://", "https://"]
                .iter()
                .any(|scheme| endpoint.len() > scheme.len() && endpoint.starts_with(scheme));
            if !valid || endpoint.contains(char::is_whitespace) {
                return Err(ConfigError::BadEndpoint(endpoint.clone()));
            }
        }
        let defaults = PipelineSettings::default();
        let lag_alert = number(lookup, "MARQUEE_LAG_ALERT", defaults.lag_alert)?;
        if lag_alert < 1 {
            return Err(ConfigError::BadLagAlert(lag_alert));
        }
        let failed_sign_in_burst = number(
            lookup,
            "MARQUEE_FAILED_SIGN_IN_BURST",
            defaults.alert_rules.failed_sign_in_burst,
        )?;
        if failed_sign_in_burst < 2 {
            return Err(ConfigError::BadFailedSignInBurst(failed_sign_in_burst));
        }
        let log = lookup("MARQUEE_LOG").unwrap_or_else(|| "info".into());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log) {
            return Err(ConfigError::BadLogFilter {
                filter: log,
                reason: e.to_string(),
            });
        }
        Ok(Self {
            database_url,
            sns_topic_prefix,
            metrics_namespace,
            aws_endpoint_url,
            log,
            pipeline: PipelineSettings {
                alert_rules: AlertRules {
                    failed_sign_in_burst,
                    ..defaults.alert_rules
                },
                lag_alert,
                failpoint: None,
            },
        })
    }
}

/// `MARQUEE_PROJECTION`, the `projector` function's one projection.
pub fn projection(lookup: Lookup<'_>) -> Result<&'static str, ConfigError> {
    let name = lookup("MARQUEE_PROJECTION").ok_or(ConfigError::MissingProjection)?;
    PROJECTIONS
        .into_iter()
        .find(|known| *known == name)
        .ok_or(ConfigError::UnknownProjection(name))
}

fn number(lookup: Lookup<'_>, name: &'static str, default: i64) -> Result<i64, ConfigError> {
    match lookup(name) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|_| ConfigError::NotANumber { name, value }),
    }
}

impl fmt::Debug for Config {
    // By hand, so that a password in DATABASE_URL never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("sns_topic_prefix", &self.sns_topic_prefix)
            .field("metrics_namespace", &self.metrics_namespace)
            .field("aws_endpoint_url", &self.aws_endpoint_url)
            .field("log", &self.log)
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Config::read(&|name| vars.get(name).filter(|v| !v.is_empty()).cloned())
    }

    const URL: (&str, &str) = ("DATABASE_URL", "mysql://app:s3cret@db:3306/marquee");

    #[test]
    fn defaults_need_only_the_database() {
        let config = read(&[URL]).unwrap();
        assert_eq!(config.sns_topic_prefix, "marquee-");
        assert_eq!(config.aws_endpoint_url, None);
        assert_eq!(config.pipeline, PipelineSettings::default());
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn the_database_must_be_mysql_and_its_password_stays_hidden() {
        assert_eq!(read(&[]).unwrap_err(), ConfigError::MissingDatabaseUrl);
        assert_eq!(
            read(&[("DATABASE_URL", "")]).unwrap_err(),
            ConfigError::MissingDatabaseUrl
        );
        let sqlite = read(&[("DATABASE_URL", "postgres://u:s3cret@db/m")]).unwrap_err();
        assert_eq!(
            sqlite,
            ConfigError::NotMySql("postgres://u:***@db/m".into())
        );
        assert!(!sqlite.to_string().contains("s3cret"));
    }

    #[test]
    fn thresholds_and_names_are_checked() {
        let config = read(&[
            URL,
            ("MARQUEE_LAG_ALERT", "5"),
            ("MARQUEE_FAILED_SIGN_IN_BURST", "3"),
            ("MARQUEE_SNS_TOPIC_PREFIX", "prod-"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ])
        .unwrap();
        assert_eq!(config.pipeline.lag_alert, 5);
        assert_eq!(config.pipeline.alert_rules.failed_sign_in_burst, 3);
        assert_eq!(config.sns_topic_prefix, "prod-");
        assert_eq!(
            config.aws_endpoint_url.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        let bad = |name: &str, value: &str| read(&[URL, (name, value)]).unwrap_err();
        assert_eq!(
            bad("MARQUEE_LAG_ALERT", "lots"),
            ConfigError::NotANumber {
                name: "MARQUEE_LAG_ALERT",
                value: "lots".into()
            }
        );
        assert_eq!(bad("MARQUEE_LAG_ALERT", "0"), ConfigError::BadLagAlert(0));
        assert_eq!(
            bad("MARQUEE_FAILED_SIGN_IN_BURST", "1"),
            ConfigError::BadFailedSignInBurst(1)
        );
        assert!(matches!(
            bad("MARQUEE_SNS_TOPIC_PREFIX", "a b"),
            ConfigError::BadTopicPrefix(_)
        ));
        assert!(matches!(
            bad("AWS_ENDPOINT_URL", "localhost:5000"),
            ConfigError::BadEndpoint(_)
        ));
        assert!(matches!(
            bad("MARQUEE_LOG", "info,["),
            ConfigError::BadLogFilter { .. }
        ));
    }

    #[test]
    fn the_projection_is_one_of_three() {
        let lookup = |value: &'static str| move |_: &str| Some(value.to_string());
        assert_eq!(projection(&lookup("metrics")), Ok("metrics"));
        let unknown = projection(&lookup("bogus")).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "MARQUEE_PROJECTION \"bogus\" is not a projection: use one of read-models, metrics, notifications"
        );
        assert_eq!(projection(&|_| None), Err(ConfigError::MissingProjection));
    }
}
