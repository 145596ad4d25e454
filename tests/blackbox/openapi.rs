//! The OpenAPI document of the TSH-facing API (openapi/issuer-gateway.yaml): served by the admin
//! API of the real binary with the configured base path, valid YAML, internally consistent, and
//! naming exactly the routes and response codes the gateway has.

use crate::common::{ISSUER_ID, Served, keyed_config};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const DOCUMENT: &str = include_str!("../../openapi/issuer-gateway.yaml");
const OPERATIONS: [&str; 5] = [
    "checkCardEligibility",
    "requestCardEligibility",
    "requestCardDigitization",
    "sendOTP",
    "notifyVirtualCardChange",
];

fn parse(text: &str) -> Value {
    serde_yaml::from_str::<Value>(text).expect("the OpenAPI document is valid YAML")
}

/// Every `$ref` in `node`, which must all point inside the document.
fn refs(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_consistent_with_the_code() {
    let doc = parse(DOCUMENT);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<String> = OPERATIONS
        .iter()
        .map(|op| format!("/issuer/igwapi/v2.0/{op}"))
        .collect();
    assert_eq!(paths, expected.iter().map(String::as_str).collect());
    for path in &expected {
        let post = &doc["paths"][path.as_str()]["post"];
        assert!(post.is_object(), "{path}: POST");
        for status in ["200", "400", "500"] {
            assert!(post["responses"][status].is_object(), "{path}: {status}");
        }
        let headers: Vec<&str> = post["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["$ref"].as_str().unwrap())
            .collect();
        assert_eq!(
            headers,
            [
                "#/components/parameters/CorrelationId",
                "#/components/parameters/IssuerId"
            ]
        );
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local $ref");
        assert!(doc.pointer(pointer).is_some(), "unresolved $ref {r}");
    }
    // The response codes documented are exactly the default numbers of the reasons.
    let in_code: BTreeSet<u64> = issuer_gateway::domain::Reason::ALL
        .iter()
        .map(|r| u64::from(r.default_number()))
        .collect();
    let documented: BTreeSet<u64> =
        doc["components"]["schemas"]["Error"]["properties"]["responseCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
    assert!(in_code.len() >= 15, "default numbers: {in_code:?}");
    assert_eq!(documented, in_code);
    let description = doc["info"]["description"].as_str().unwrap();
    for code in &in_code {
        assert!(
            description.contains(&format!("| {code} |")),
            "{code} in the table"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_serves_the_document_with_the_configured_base_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = keyed_config(dir.path());
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("[server]\n", "[server]\nbase_path = \"/tsh/igw\"\n", 1),
    )
    .unwrap();
    let served = Served::start(&config);

    let resp = reqwest::get(format!("http://{}/openapi.yaml", served.admin))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/yaml"
    );
    let body = resp.text().await.unwrap();
    // The repository's document, its paths under the configured base path.
    assert_eq!(
        body.replace("\n  /tsh/igw/", "\n  /issuer/igwapi/v2.0/"),
        DOCUMENT
    );
    let doc = parse(&body);
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), OPERATIONS.len());

    // Every documented path is a route of the API: a call with the right headers and an empty
    // object reaches the operation (111: a mandatory field is missing), not a 404.
    let client = reqwest::Client::new();
    for path in paths.keys() {
        assert!(path.starts_with("/tsh/igw/"), "{path}");
        let resp = client
            .post(format!("http://{}{path}", served.api))
            .header("x-correlation-id", "openapi-doc")
            .header("x-issuer-id", ISSUER_ID)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["responseCode"], 111, "{path}: {answer}");
    }
    served.stop();
}
