//! The description of each endpoint and the OpenAPI 3 document made from them
//! (`GET /api/openapi`).

use std::collections::BTreeMap;

use axum::Json;
use serde_json::{Value, json};

use super::users::{MAX_EMAIL_BYTES, MAX_NOTE_CHARS, MAX_PASSWORD_BYTES, MAX_USER_NAME_CHARS};
use super::{Access, Api};
use crate::auth::Role;

/// An HTTP method the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// What a successful call answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Success {
    /// `{"data": <schema>}` with this status.
    Object(u16, &'static str),
    /// `{"data": [<schema>]}`.
    List(&'static str),
    /// `{"data": [<schema>], "pagination": …}`.
    Page(&'static str),
    /// 204 and no body.
    NoContent,
    /// 202, the request was handed on.
    Accepted,
    /// 302 to the given kind of URL.
    Redirect,
    /// A raw document (the OpenAPI document itself).
    Document,
}

/// One route of the management API.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) method: Method,
    /// axum syntax, `{param}`, relative to `/api`; OpenAPI uses the same syntax.
    pub(crate) path: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) tag: &'static str,
    pub(crate) access: Access,
    pub(crate) body: Option<&'static str>,
    pub(crate) multipart: bool,
    pub(crate) query: &'static [(&'static str, &'static str)],
    pub(crate) success: Success,
    pub(crate) errors: &'static [u16],
}

impl Endpoint {
    fn new(method: Method, path: &'static str, summary: &'static str) -> Self {
        Endpoint {
            method,
            path,
            summary,
            tag: "",
            access: Access::User,
            body: None,
            multipart: false,
            query: &[],
            success: Success::NoContent,
            errors: &[],
        }
    }
    pub(crate) fn get(path: &'static str, summary: &'static str) -> Self {
        Endpoint::new(Method::Get, path, summary)
    }
    pub(crate) fn post(path: &'static str, summary: &'static str) -> Self {
        Endpoint::new(Method::Post, path, summary)
    }
    pub(crate) fn put(path: &'static str, summary: &'static str) -> Self {
        Endpoint::new(Method::Put, path, summary)
    }
    pub(crate) fn delete(path: &'static str, summary: &'static str) -> Self {
        Endpoint::new(Method::Delete, path, summary)
    }
    pub(crate) fn tag(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }
    pub(crate) fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }
    /// Needs membership of the path's org with at least `role`.
    pub(crate) fn role(self, role: Role) -> Self {
        self.access(Access::Org(role))
    }
    /// A JSON request body of the named schema.
    pub(crate) fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }
    /// A `multipart/form-data` request body with a `firmware` file field.
    pub(crate) fn multipart(mut self) -> Self {
        self.multipart = true;
        self
    }
    pub(crate) fn query(mut self, params: &'static [(&'static str, &'static str)]) -> Self {
        self.query = params;
        self
    }
    pub(crate) fn ok(mut self, success: Success) -> Self {
        self.success = success;
        self
    }
    /// Status codes this endpoint answers besides the ones its access implies.
    pub(crate) fn errors(mut self, codes: &'static [u16]) -> Self {
        self.errors = codes;
        self
    }
}

pub(super) fn routes(api: Api) -> Api {
    api.route(
        Endpoint::get("/openapi", "This OpenAPI document")
            .tag("meta")
            .access(Access::Public)
            .ok(Success::Document),
        || async { Json(openapi()) },
    )
}

/// The OpenAPI 3 document of every endpoint.
pub(crate) fn openapi() -> Value {
    let mut paths: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    for endpoint in super::endpoints() {
        paths
            .entry(format!("/api{}", endpoint.path))
            .or_default()
            .insert(
                endpoint.method.as_str().to_lowercase(),
                operation(&endpoint),
            );
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "nerveshub-rs management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "NervesHub's management API paths and shapes. Authenticate with `Authorization: token nhu_…` (or `Bearer`). Objects come as {\"data\": …}; errors as {\"errors\": {\"detail\": …}} or, for invalid input, {\"errors\": {field: [message]}} with 422. Limits: request targets up to 8 KiB (414 beyond), at most 100 header fields of 32 KiB in all (431), request heads as HTTP/1.1 defines them (400; all three answered in JSON, then the connection closes), JSON bodies up to 2 MiB (413), no NUL or control characters in paths, queries or JSON strings (400/422); names (orgs, products, keys) are 1 to 100 characters, not `.` or `..`, without `/`, control characters or surrounding spaces. Sign-in is rate limited per account and per address (429 with Retry-After)."
        },
        "components": {
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "Authorization",
                          "description": "`token nhu_…` or `Bearer nhu_…`"}
            },
            "schemas": schemas(),
        },
        "paths": paths,
    })
}

fn operation(endpoint: &Endpoint) -> Value {
    let mut op = serde_json::Map::new();
    op.insert("summary".into(), json!(endpoint.summary));
    op.insert("tags".into(), json!([endpoint.tag]));
    op.insert(
        "operationId".into(),
        json!(format!(
            "{}{}",
            endpoint.method.as_str().to_lowercase(),
            endpoint.path.replace(['/', '{', '}'], "_")
        )),
    );
    let mut parameters: Vec<Value> = path_params(endpoint.path)
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    parameters.extend(endpoint.query.iter().map(|(name, description)| {
        json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
    }));
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }
    if endpoint.access == Access::Public {
        op.insert("security".into(), json!([]));
    } else {
        op.insert("security".into(), json!([{"token": []}]));
    }
    if let Some(schema) = endpoint.body {
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": schema_ref(schema)}}}),
        );
    } else if endpoint.multipart {
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["firmware"],
                "properties": {"firmware": {"type": "string", "format": "binary"}}}}}}),
        );
    }
    let mut responses = serde_json::Map::new();
    let (status, response) = match endpoint.success {
        Success::Object(status, schema) => (
            status,
            json_response(json!({
            "type": "object", "required": ["data"], "properties": {"data": schema_ref(schema)}})),
        ),
        Success::List(schema) => (
            200,
            json_response(json!({
            "type": "object", "required": ["data"],
            "properties": {"data": {"type": "array", "items": schema_ref(schema)}}})),
        ),
        Success::Page(schema) => (
            200,
            json_response(json!({
            "type": "object", "required": ["data", "pagination"],
            "properties": {"data": {"type": "array", "items": schema_ref(schema)},
                           "pagination": schema_ref("Pagination")}})),
        ),
        Success::NoContent => (204, json!({"description": "No Content"})),
        Success::Accepted => (202, json!({"description": "Accepted"})),
        Success::Redirect => (
            302,
            json!({"description": "Found: the Location header holds a signed URL"}),
        ),
        Success::Document => (
            200,
            json!({"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}),
        ),
    };
    responses.insert(status.to_string(), response);
    let mut errors: Vec<u16> = endpoint.errors.to_vec();
    match endpoint.access {
        Access::Public => {}
        Access::User => errors.push(401),
        Access::ServerAdmin => errors.extend([401, 403]),
        Access::Org(_) | Access::OrgAdminOrServerAdmin => errors.extend([401, 403, 404]),
    }
    if endpoint.body.is_some() || endpoint.multipart {
        errors.extend([400, 422]);
    }
    errors.sort_unstable();
    errors.dedup();
    for code in errors {
        let schema = if code == 422 {
            "ValidationErrors"
        } else {
            "Error"
        };
        responses.insert(
            code.to_string(),
            json!({
                "description": reason(code),
                "content": {"application/json": {"schema": schema_ref(schema)}}
            }),
        );
    }
    op.insert("responses".into(), Value::Object(responses));
    match endpoint.access {
        Access::Org(role) => {
            op.insert("x-required-role".into(), json!(role.as_str()));
        }
        Access::OrgAdminOrServerAdmin => {
            op.insert("x-required-role".into(), json!("admin"));
            op.insert("x-server-admin-allowed".into(), json!(true));
        }
        _ => {}
    }
    Value::Object(op)
}

fn json_response(schema: Value) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The `{name}` parameters of an axum path.
pub(crate) fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
}

fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized: missing or invalid token",
        403 => "Forbidden: the caller's role is too low",
        404 => "Not Found, or not a member of the org",
        409 => "Conflict with the resource's current state",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity: invalid fields",
        _ => "Error",
    }
}

fn string() -> Value {
    json!({"type": "string"})
}

/// A name used in URLs (see `check_name`).
fn name() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 100,
           "description": "not `.` or `..`; no `/`, control characters or surrounding spaces"})
}

fn bounded(max: usize) -> Value {
    json!({"type": "string", "maxLength": max})
}

/// A product's poll interval for devices that poll over HTTP.
fn poll_interval() -> Value {
    json!({"type": "integer", "minimum": 10, "maximum": 604_800, "nullable": true,
           "description": "seconds between polls asked of the product's polling devices; null (or, in answers, absent): the server's (--device-poll-interval, default 3600)"})
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// The schemas the endpoints refer to. Modules add theirs to [`extra_schemas`].
fn schemas() -> Value {
    let mut all = serde_json::Map::new();
    let role = json!({"type": "string", "enum": ["admin", "manage", "view"]});
    let base = [
        (
            "Error",
            object(
                &["errors"],
                json!({"errors": object(&["detail"], json!({"detail": string()}))}),
            ),
        ),
        (
            "ValidationErrors",
            object(
                &["errors"],
                json!({"errors": {"type": "object",
            "additionalProperties": {"type": "array", "items": string()}}}),
            ),
        ),
        (
            "Pagination",
            object(
                &["page", "page_size", "total_pages", "total_entries"],
                json!({
            "page": {"type": "integer"}, "page_size": {"type": "integer"},
            "total_pages": {"type": "integer"}, "total_entries": {"type": "integer"}}),
            ),
        ),
        (
            "Login",
            object(
                &["email", "password"],
                json!({"email": bounded(MAX_EMAIL_BYTES), "password": bounded(MAX_PASSWORD_BYTES),
                       "note": bounded(MAX_NOTE_CHARS)}),
            ),
        ),
        (
            "UserToken",
            object(
                &["name", "email", "token"],
                json!({"name": string(), "email": string(), "token": string()}),
            ),
        ),
        (
            "User",
            object(
                &["name", "email"],
                json!({"name": string(), "email": string()}),
            ),
        ),
        (
            "UserCreate",
            object(
                &["email", "password"],
                json!({"email": bounded(MAX_EMAIL_BYTES),
                       "password": {"type": "string", "minLength": 8, "maxLength": MAX_PASSWORD_BYTES},
                       "name": bounded(MAX_USER_NAME_CHARS)}),
            ),
        ),
        (
            "Org",
            object(&["name"], json!({"name": string(), "role": role.clone()})),
        ),
        (
            "OrgCreate",
            object(
                &["name"],
                json!({"name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[A-Za-z0-9_.-]+$",
                        "description": "letters, digits, `-`, `_` and `.`; not `.` or `..`"}}),
            ),
        ),
        (
            "Member",
            object(
                &["name", "email", "role"],
                json!({"name": string(), "email": string(), "role": role.clone()}),
            ),
        ),
        (
            "MemberCreate",
            object(
                &["email", "role"],
                json!({"email": bounded(MAX_EMAIL_BYTES), "role": role.clone()}),
            ),
        ),
        ("MemberUpdate", object(&["role"], json!({"role": role}))),
        (
            "Key",
            object(
                &["name", "key"],
                json!({"name": string(), "key": string(), "scheme": string(),
                       "inserted_at": {"type": "string", "format": "date-time"}}),
            ),
        ),
        (
            "KeyCreate",
            object(
                &["name", "key"],
                json!({"name": name(),
            "key": {"type": "string", "maxLength": super::keys::MAX_KEY_TEXT_BYTES,
                    "description": "base64 Ed25519 public key, as in fwup-key.pub"}}),
            ),
        ),
        (
            "Product",
            object(
                &["name"],
                json!({"name": string(), "poll_interval_seconds": poll_interval()}),
            ),
        ),
        (
            "ProductCreate",
            object(
                &["name"],
                json!({"name": name(), "poll_interval_seconds": poll_interval()}),
            ),
        ),
        (
            "ProductUpdate",
            object(
                &[],
                json!({"name": name(), "poll_interval_seconds": poll_interval()}),
            ),
        ),
    ];
    for (name, schema) in base {
        all.insert(name.to_owned(), schema);
    }
    for (name, schema) in extra_schemas() {
        all.insert(name.to_owned(), schema);
    }
    Value::Object(all)
}

/// Schemas of the later API modules (devices, certificates, firmware …).
fn extra_schemas() -> Vec<(&'static str, Value)> {
    let mut all = Vec::new();
    all.extend(super::devices::schemas());
    all.extend(super::tokens::schemas());
    all.extend(super::user_certificates::schemas());
    all.extend(super::certificates::schemas());
    all.extend(super::ca_certificates::schemas());
    all.extend(super::shared_secrets::schemas());
    all.extend(super::audit::schemas());
    all.extend(super::firmwares::schemas());
    all.extend(super::device_actions::schemas());
    all.extend(super::device_updates::schemas());
    all.extend(super::deployments::schemas());
    all
}
