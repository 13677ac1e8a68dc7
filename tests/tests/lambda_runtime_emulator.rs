//! The Lambda Runtime API emulator against a "function" that speaks the protocol with curl: a
//! shell loop that gets the next event and posts back an answer, or an error when asked to.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use marquee_tests::lambda_runtime::{spawn_function, Invocation, RuntimeApi, FUNCTION_NAME};
use serde_json::json;

/// Answers each event with the event and the invocation headers it got, or with an error when
/// the event is `{"fail": true}`; the environment variables it was given come back too.
const ECHO_FUNCTION: &str = r#"
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
headers=$(mktemp)
while true; do
  event=$(curl -sS --fail -D "$headers" "$api/invocation/next" 2>/dev/null) || exit 1
  header() { grep -i "^$1:" "$headers" | cut -d' ' -f2- | tr -d '\r'; }
  id=$(header lambda-runtime-aws-request-id)
  case "$event" in
    *'"fail":true'*)
      curl -sS --fail -X POST -H 'Lambda-Runtime-Function-Error-Type: Handled.Failure' \
        -d '{"errorType":"Failure","errorMessage":"asked to fail"}' "$api/invocation/$id/error" ;;
    *)
      curl -sS --fail -X POST -d "{\"event\":$event,\"requestId\":\"$id\",
        \"deadlineMs\":$(header lambda-runtime-deadline-ms),
        \"arn\":\"$(header lambda-runtime-invoked-function-arn)\",
        \"traceId\":\"$(header lambda-runtime-trace-id)\",
        \"contentType\":\"$(header content-type)\",
        \"env\":{\"name\":\"$AWS_LAMBDA_FUNCTION_NAME\",\"version\":\"$AWS_LAMBDA_FUNCTION_VERSION\",
          \"memory\":\"$AWS_LAMBDA_FUNCTION_MEMORY_SIZE\",\"handler\":\"$_HANDLER\",\"extra\":\"$EXTRA\"}}" \
        "$api/invocation/$id/response" ;;
  esac >/dev/null || exit 1
done
"#;

/// Fails to start: reports an init error and exits, as `lambda_runtime` does.
const FAILING_INIT: &str = r#"
curl -sS --fail -X POST -H 'Lambda-Runtime-Function-Error-Type: Runtime.InitError' \
  -d '{"errorType":"ConfigError","errorMessage":"MARQUEE_TABLE is not set"}' \
  "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/init/error" >/dev/null
exit 1
"#;

/// Runs `script` as the function: written to an executable file, as `spawn_function` takes a
/// binary; the file goes when the returned directory does.
async fn spawn_script(
    runtime: &RuntimeApi,
    script: &str,
) -> (tokio::process::Child, Instant, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap");
    std::fs::write(&path, format!("#!/bin/sh\n{script}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let extra = [("EXTRA".to_string(), "given".to_string())];
    let mut attempts = 0;
    loop {
        match spawn_function(&path, runtime, &extra).await {
            Ok((child, spawned_at)) => return (child, spawned_at, dir),
            // Another test's fork may briefly hold the fresh file open for writing.
            Err(e) if attempts < 10 && format!("{e:#}").contains("busy") => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the function does not start: {e:#}"),
        }
    }
}

#[tokio::test]
async fn invocations_reach_the_function_and_its_answers_come_back() {
    let runtime = RuntimeApi::start().await.unwrap();
    assert!(runtime.first_request_at().is_none());
    let (_function, spawned_at, _dir) = spawn_script(&runtime, ECHO_FUNCTION).await;

    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let event = json!({"Records": [{"body": "hello", "n": 1}]});
    let Invocation::Response(answer) = runtime
        .invoke(event.clone(), Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("an error for an event the function answers")
    };
    assert_eq!(answer["event"], event);
    assert_eq!(answer["requestId"].as_str().unwrap().len(), 36, "{answer}");
    let deadline = Duration::from_millis(answer["deadlineMs"].as_u64().unwrap());
    assert!(
        deadline >= before + Duration::from_secs(29)
            && deadline <= before + Duration::from_secs(31),
        "deadline {deadline:?} is not 30 s after {before:?}"
    );
    assert_eq!(answer["arn"], runtime.function_arn());
    assert!(answer["arn"].as_str().unwrap().ends_with(FUNCTION_NAME));
    assert!(answer["traceId"].as_str().unwrap().starts_with("Root=1-"));
    assert_eq!(answer["contentType"], "application/json");
    assert_eq!(
        answer["env"],
        json!({"name": FUNCTION_NAME, "version": "$LATEST", "memory": "128",
               "handler": "bootstrap", "extra": "given"})
    );

    let first = runtime
        .first_request_at()
        .expect("the function's first request was recorded");
    assert!(first > spawned_at);

    // An error the function reports is the invocation's result, with its type.
    let failed = runtime
        .invoke(json!({"fail": true}), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        failed,
        Invocation::Error {
            error_type: Some("Handled.Failure".into()),
            body: json!({"errorType": "Failure", "errorMessage": "asked to fail"}),
        }
    );

    // Several at once each get their own answer; the first request stays the first.
    let answers = futures::future::join_all(
        (0..5).map(|n| runtime.invoke(json!({"n": n}), Duration::from_secs(30))),
    )
    .await;
    for (n, answer) in answers.into_iter().enumerate() {
        match answer.unwrap() {
            Invocation::Response(answer) => assert_eq!(answer["event"], json!({"n": n})),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(runtime.first_request_at(), Some(first));
    assert!(runtime.init_error().is_none());
}

#[tokio::test]
async fn answers_for_unknown_invocations_are_refused() {
    let runtime = RuntimeApi::start().await.unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://{}/2018-06-01/runtime", runtime.address());
    for kind in ["response", "error"] {
        let response = client
            .post(format!("{base}/invocation/no-such-id/{kind}"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }
    assert!(runtime.first_request_at().is_some());
}

#[tokio::test]
async fn an_invocation_nobody_answers_times_out() {
    let runtime = RuntimeApi::start().await.unwrap();
    let error = runtime
        .invoke(json!({}), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("did not answer"), "{error}");
    assert!(runtime.first_request_at().is_none());
}

#[tokio::test]
async fn an_init_error_fails_pending_and_later_invocations() {
    let runtime = RuntimeApi::start().await.unwrap();
    let pending = runtime.invoke(json!({"n": 1}), Duration::from_secs(30));
    let spawn = async {
        // After the invocation is queued: it is pending when the error comes in.
        tokio::time::sleep(Duration::from_millis(100)).await;
        spawn_script(&runtime, FAILING_INIT).await
    };
    let (pending, (mut function, _, _dir)) = tokio::join!(pending, spawn);
    let error = pending.unwrap_err().to_string();
    assert!(
        error.contains("Runtime.InitError") && error.contains("MARQUEE_TABLE"),
        "{error}"
    );
    assert_eq!(
        runtime.init_error(),
        Some(json!({"errorType": "ConfigError", "errorMessage": "MARQUEE_TABLE is not set"}))
    );
    assert!(!function.wait().await.unwrap().success());

    let later = runtime
        .invoke(json!({"n": 2}), Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(later.to_string().contains("MARQUEE_TABLE"), "{later}");
}
