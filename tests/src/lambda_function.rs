//! Running a built Lambda function as Lambda does: its own Runtime API emulator, its logs in
//! files, and SQS events shaped as the event source mapping builds them from real messages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::lambda_runtime::{spawn_function, Invocation, RuntimeApi};

/// Lambda's answer time in these tests: generous, as the first invocation opens the pool.
pub const INVOCATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A Lambda binary built beside this test binary (`cargo build -p lambdas` first; the test
/// command does it).
pub fn lambda_binary(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p lambdas` before the tests (scripts/test does)",
        binary.display()
    );
    binary
}

/// A projection's queue, read as Lambda's event source mapping reads it.
pub struct Queue {
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
    pub arn: String,
}

impl Queue {
    /// The queue named `name`, with the ARN its events carry.
    pub async fn open(sqs: aws_sdk_sqs::Client, name: &str) -> Queue {
        let url = projectors::aws::queue_url(&sqs, name).await.unwrap();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap();
        let arn = attributes.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
        Queue { sqs, url, arn }
    }

    /// Receives `count` messages with every attribute, leaving them in flight (hidden, not
    /// deleted), as the event source mapping does while the function runs.
    pub async fn receive(&self, count: usize) -> Vec<Message> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        // Wait until all are published: a FIFO queue hides a group's later messages while an
        // earlier one is in flight, so receiving a part early would hold the rest back.
        while self.visible().await < count && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut received: Vec<Message> = Vec::new();
        while received.len() < count && tokio::time::Instant::now() < deadline {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            received.extend(batch.messages().iter().cloned());
        }
        assert_eq!(received.len(), count, "{received:?}");
        received
    }

    /// Messages waiting to be received.
    async fn visible(&self) -> usize {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap();
        attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Makes in-flight messages visible again, as a failed or timed-out invocation does.
    pub async fn release(&self, messages: &[Message]) {
        for message in messages {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.url)
                .receipt_handle(message.receipt_handle().unwrap())
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
    }

    pub async fn send(&self, body: &str, group: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(uuid::Uuid::new_v4().to_string())
            .send()
            .await
            .unwrap();
    }

    /// The SQS event Lambda's event source mapping builds from `messages`.
    pub fn event(&self, messages: &[Message]) -> Value {
        let region = self.arn.split(':').nth(3).unwrap_or_default();
        let records: Vec<Value> = messages
            .iter()
            .map(|message| {
                let attributes: serde_json::Map<String, Value> = message
                    .attributes()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| (name.as_str().to_string(), json!(value)))
                    .collect();
                let message_attributes: serde_json::Map<String, Value> = message
                    .message_attributes()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| {
                        let binary = value
                            .binary_value()
                            .map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_ref()));
                        (
                            name.clone(),
                            json!({
                                "stringValue": value.string_value(),
                                "binaryValue": binary,
                                "stringListValues": value.string_list_values(),
                                "binaryListValues": [],
                                "dataType": value.data_type(),
                            }),
                        )
                    })
                    .collect();
                json!({
                    "messageId": message.message_id(),
                    "receiptHandle": message.receipt_handle(),
                    "body": message.body(),
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "md5OfBody": message.md5_of_body(),
                    "md5OfMessageAttributes": message.md5_of_message_attributes(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": region,
                })
            })
            .collect();
        json!({ "Records": records })
    }
}

/// A function process talking to its own Runtime API emulator; its stdout (the JSON logs) and
/// stderr go to files the test reads.
pub struct Function {
    /// Dropped (killed) first: a function whose Runtime API goes away panics in lambda_runtime.
    pub child: tokio::process::Child,
    pub runtime: RuntimeApi,
    dir: tempfile::TempDir,
}

impl Function {
    pub async fn start(binary: &Path, mut env: Vec<(String, String)>) -> Function {
        let runtime = RuntimeApi::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("bootstrap");
        std::fs::write(
            &wrapper,
            "#!/bin/sh\nexec \"$LAMBDA_BINARY\" >\"$LAMBDA_DIR/stdout\" 2>\"$LAMBDA_DIR/stderr\"\n",
        )
        .unwrap();
        set_executable(&wrapper);
        env.push(("LAMBDA_BINARY".into(), binary.display().to_string()));
        env.push(("LAMBDA_DIR".into(), dir.path().display().to_string()));
        let mut attempts = 0;
        let child = loop {
            match spawn_function(&wrapper, &runtime, &env).await {
                Ok((child, _)) => break child,
                // Another test's fork may briefly hold the fresh script open for writing.
                Err(e) if attempts < 10 && format!("{e:#}").contains("busy") => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{e:#}"),
            }
        };
        Function {
            child,
            runtime,
            dir,
        }
    }

    /// Invokes the function and returns its answer; an error it reports fails the test.
    pub async fn invoke(&self, event: Value) -> Value {
        match self.runtime.invoke(event, INVOCATION_TIMEOUT).await {
            Ok(Invocation::Response(answer)) => answer,
            Ok(Invocation::Error { error_type, body }) => panic!(
                "the function failed ({error_type:?}): {body}\nits log:\n{}",
                self.log()
            ),
            Err(e) => panic!(
                "{e:#}\nits log:\n{}\nits stderr:\n{}",
                self.log(),
                self.output("stderr")
            ),
        }
    }

    pub fn log(&self) -> String {
        self.output("stdout")
    }

    pub fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    pub fn log_lines(&self) -> Vec<Value> {
        self.log()
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"))
            })
            .collect()
    }
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn failures(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures in {answer}"))
        .iter()
        .map(|failure| failure["itemIdentifier"].as_str().unwrap().to_string())
        .collect()
}
