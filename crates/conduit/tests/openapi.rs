//! `/openapi.json` and the router cannot drift apart: every route the router is
//! built from is documented with its bodies, and every documented operation is
//! served by a real route (neither the unknown-route 404 nor a 405).

mod common;

use common::{MASTER_KEY, TestServer};
use reqwest::Method;
use serde_json::Value;

/// Fills `{param}` segments so the path can be requested.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x0"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn document(server: &TestServer) -> Value {
    let res = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Every `(method, path)` of the document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.push((method.to_string(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_route_is_documented_with_its_bodies() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let documented = operations(&doc);
    let mut routes: Vec<(Method, &str)> = conduit::api::routes();
    routes.push((Method::GET, conduit::api::MEDIA_ROUTE));
    for (method, path) in &routes {
        let key = (method.as_str().to_lowercase(), path.to_string());
        assert!(
            documented.contains(&key),
            "{method} {path} is served but not documented"
        );
        let operation = &doc["paths"][*path][key.0.as_str()];
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
        if path.starts_with("/v1/") && *path != conduit::api::MEDIA_ROUTE {
            assert!(
                operation["responses"].get("401").is_some() || operation.get("security").is_some(),
                "{method} {path} says nothing of credentials"
            );
        }
        if path.starts_with("/admin/") {
            assert!(
                operation["security"].to_string().contains("master_key"),
                "{method} {path} does not ask for the master key"
            );
        }
    }

    // The webhook routes are in the table, for both scopes.
    for (method, path) in [
        (Method::POST, "/v1/webhooks"),
        (Method::PATCH, "/v1/webhooks/{id}"),
        (Method::POST, "/v1/webhooks/deliveries/{id}/retry"),
        (Method::POST, "/v1/events/{id}/redeliver"),
        (Method::POST, "/admin/v1/webhooks"),
        (Method::DELETE, "/admin/v1/webhooks/{id}"),
        (Method::GET, "/admin/v1/webhooks/deliveries/{id}/attempts"),
    ] {
        assert!(
            routes.contains(&(method.clone(), path)),
            "{method} {path} is not in the route table"
        );
    }

    // Submit routes reference their request schema, and the schemas are there.
    for (path, schema) in [
        ("/v1/images/generations", "ImageGenerationRequest"),
        ("/v1/images/generations/async", "ImageGenerationRequest"),
        ("/v1/videos/generations", "VideoGenerationRequest"),
        ("/v1/audio/speech", "SpeechRequest"),
        ("/admin/v1/keys", "CreateKeyRequest"),
        ("/v1/webhooks", "CreateWebhookEndpointRequest"),
        ("/admin/v1/webhooks", "CreateWebhookEndpointRequest"),
    ] {
        let body = doc["paths"][path]["post"]["requestBody"].to_string();
        assert!(
            body.contains(&format!("#/components/schemas/{schema}")),
            "{path}: {body}"
        );
    }
    for path in ["/v1/webhooks/{id}", "/admin/v1/webhooks/{id}"] {
        let body = doc["paths"][path]["patch"]["requestBody"].to_string();
        assert!(
            body.contains("#/components/schemas/UpdateWebhookEndpointRequest"),
            "{path}: {body}"
        );
    }

    // Webhook answers reference their schemas, in both scopes.
    for prefix in ["/v1/webhooks", "/admin/v1/webhooks"] {
        for (method, rest, status, schema) in [
            ("post", "", "201", "CreatedWebhookEndpoint"),
            ("get", "", "200", "WebhookEndpointList"),
            ("get", "/{id}", "200", "WebhookEndpoint"),
            ("patch", "/{id}", "200", "WebhookEndpoint"),
            ("delete", "/{id}", "200", "DeletedWebhookEndpoint"),
            ("get", "/{id}/secret", "200", "WebhookSecret"),
            ("post", "/{id}/rotate-secret", "200", "WebhookSecret"),
            ("get", "/deliveries", "200", "WebhookDeliveryList"),
            ("get", "/deliveries/{id}", "200", "WebhookDelivery"),
            (
                "get",
                "/deliveries/{id}/attempts",
                "200",
                "WebhookAttemptList",
            ),
            ("post", "/deliveries/{id}/retry", "202", "WebhookDelivery"),
        ] {
            let path = format!("{prefix}{rest}");
            let answer = doc["paths"][&path][method]["responses"][status].to_string();
            assert!(
                answer.contains(&format!("#/components/schemas/{schema}\"")),
                "{method} {path} {status}: {answer}"
            );
        }
    }
    let answer = doc["paths"]["/v1/events/{id}/redeliver"]["post"]["responses"]["202"].to_string();
    assert!(
        answer.contains("#/components/schemas/WebhookDeliveryList"),
        "{answer}"
    );
    let form = doc["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]["content"].clone();
    assert!(form.get("multipart/form-data").is_some(), "{form}");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ImageGenerationRequest",
        "TaskAccepted",
        "TaskObject",
        "EventList",
        "ErrorBody",
        "WebhookEndpoint",
        "WebhookDelivery",
        "Delivery",
        "WebhookAttempt",
        "Attempt",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let image = properties(&doc, "ImageGenerationRequest");
    for field in [
        "prompt",
        "model",
        "n",
        "size",
        "quality",
        "style",
        "response_format",
        "user",
        "async",
        "webhook_url",
        "webhook_headers",
        "metadata",
    ] {
        assert!(
            image.contains(&field.to_string()),
            "ImageGenerationRequest lacks `{field}`"
        );
    }
}

/// The property names of a component schema, following `allOf` references.
fn properties(doc: &Value, name: &str) -> Vec<String> {
    let schema = &doc["components"]["schemas"][name];
    let mut out: Vec<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        if let Some(reference) = part["$ref"].as_str() {
            out.extend(properties(doc, reference.rsplit('/').next().unwrap()));
        }
        if let Some(props) = part["properties"].as_object() {
            out.extend(props.keys().cloned());
        }
    }
    out
}

#[tokio::test]
async fn every_documented_operation_is_in_the_route_table() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let routes: Vec<(String, String)> = conduit::api::routes()
        .iter()
        .map(|(m, p)| (m.as_str().to_lowercase(), p.to_string()))
        .collect();
    for (method, path) in operations(&doc) {
        assert!(
            routes.contains(&(method.clone(), path.clone()))
                || (method == "get" && path == conduit::api::MEDIA_ROUTE),
            "{method} {path} is documented but not in the route table"
        );
    }
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    for (method, path) in operations(&doc) {
        let key = if path.starts_with("/admin/") {
            MASTER_KEY
        } else {
            server.key.as_str()
        };
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let url = server.url(&concrete(&path));
        let res = server
            .http
            .request(method.clone(), url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.bytes().await.unwrap_or_default();
        let unknown_route =
            status == 404 && String::from_utf8_lossy(&body).contains("unknown_route");
        assert!(
            !unknown_route && status != 405,
            "{method} {path} is documented but not routed ({status})"
        );
        assert!(status < 500, "{method} {path} answered {status}");
    }
}

#[tokio::test]
async fn the_route_table_has_no_duplicates() {
    let mut routes: Vec<String> = conduit::api::routes()
        .iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    let count = routes.len();
    routes.sort();
    routes.dedup();
    assert_eq!(routes.len(), count);
}
