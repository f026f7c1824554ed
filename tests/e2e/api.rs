//! The HTTP API describes itself.

use natter_e2e::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_and_health_are_served() {
    let server = Server::start();
    let url = server.url();
    let http = reqwest::Client::new();

    let health: serde_json::Value = http
        .get(format!("{url}/api/v1/health"))
        .send()
        .await
        .expect("GET health")
        .json()
        .await
        .expect("JSON");
    assert_eq!(health["status"], "ok", "{health}");

    let resp = http
        .get(format!("{url}/api/v1/openapi.json"))
        .send()
        .await
        .expect("GET openapi.json");
    assert_eq!(resp.status(), 200);
    let doc: serde_json::Value = resp.json().await.expect("JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "an OpenAPI 3 document"
    );
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/conversations/{id}/messages",
        "/api/v1/groups",
        "/api/v1/sync",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} is documented; have {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }

    // Errors carry a stable code and a sentence.
    let resp = http
        .get(format!("{url}/api/v1/me"))
        .send()
        .await
        .expect("GET me");
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["code"], "unauthorized", "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
