//! Issue 25, item 12: every string a request body carries has its bound in the OpenAPI
//! document (the handlers enforce them; `hardening_input` checks the enforcing).

use serde_json::Value;

/// String fields of `schema` (following `$ref`s into `schemas`) without a `maxLength`, an
/// `enum` or a `format`, named `path.field`.
fn unbounded(schemas: &Value, schema: &Value, path: &str, found: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return unbounded(schemas, &schemas[name], name, found);
    }
    if schema["type"] == "string"
        && schema.get("maxLength").is_none()
        && schema.get("enum").is_none()
        && schema.get("format").is_none()
    {
        found.push(path.to_owned());
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            unbounded(schemas, property, &format!("{path}.{name}"), found);
        }
    }
    if schema.get("items").is_some() {
        unbounded(schemas, &schema["items"], &format!("{path}[]"), found);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for (i, variant) in schema[key].as_array().into_iter().flatten().enumerate() {
            unbounded(schemas, variant, &format!("{path}|{i}"), found);
        }
    }
}

#[test]
fn every_request_string_has_a_documented_bound() {
    let doc = nerveshub_server::openapi_document();
    let schemas = &doc["components"]["schemas"];
    let mut found = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            for (_, content) in operation["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                unbounded(
                    schemas,
                    &content["schema"],
                    &format!("{method} {path}"),
                    &mut found,
                );
            }
        }
    }
    found.sort();
    found.dedup();
    assert!(
        found.is_empty(),
        "request strings without a documented bound:\n{}",
        found.join("\n")
    );
}
