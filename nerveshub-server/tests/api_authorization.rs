//! The authorization matrix of the management API (1/4): every endpoint × admin, manage,
//! view, a member of another org, no token and a bad token — on SQLite and PostgreSQL.
//! Plus: the OpenAPI document lists exactly the routes the server answers.

mod common;

use common::{OrgFixture, TestServer, databases};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
enum Needs {
    View,
    Manage,
    Admin,
}

/// What must exist, per caller, before the call can succeed.
#[derive(Clone, Copy, PartialEq)]
enum Setup {
    None,
    /// A user `<who>-u@acme.test` who is not yet a member.
    User,
    /// A member `<who>-m@acme.test`.
    Member,
    /// A signing key `del-<who>`.
    Key,
    /// A product `x-<who>`.
    Product,
}

struct Case {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    needs: Needs,
    success: StatusCode,
    setup: Setup,
}

fn cases() -> Vec<Case> {
    use Method as M;
    let case = |method, path, body, needs, success: u16, setup| Case {
        method,
        path,
        body,
        needs,
        success: StatusCode::from_u16(success).unwrap(),
        setup,
    };
    vec![
        case(
            M::GET,
            "/orgs/acme/users",
            None,
            Needs::Admin,
            200,
            Setup::None,
        ),
        case(
            M::POST,
            "/orgs/acme/users",
            Some(json!({"email": "{who}-u@acme.test", "role": "view"})),
            Needs::Admin,
            201,
            Setup::User,
        ),
        case(
            M::GET,
            "/orgs/acme/users/view@acme.test",
            None,
            Needs::Admin,
            200,
            Setup::None,
        ),
        case(
            M::PUT,
            "/orgs/acme/users/{who}-m@acme.test",
            Some(json!({"role": "manage"})),
            Needs::Admin,
            200,
            Setup::Member,
        ),
        case(
            M::DELETE,
            "/orgs/acme/users/{who}-m@acme.test",
            None,
            Needs::Admin,
            204,
            Setup::Member,
        ),
        case(
            M::GET,
            "/orgs/acme/keys",
            None,
            Needs::View,
            200,
            Setup::None,
        ),
        case(
            M::POST,
            "/orgs/acme/keys",
            Some(json!({"name": "new-{who}", "key": "{key}"})),
            Needs::Manage,
            201,
            Setup::None,
        ),
        case(
            M::GET,
            "/orgs/acme/keys/k0",
            None,
            Needs::View,
            200,
            Setup::None,
        ),
        case(
            M::DELETE,
            "/orgs/acme/keys/del-{who}",
            None,
            Needs::Manage,
            204,
            Setup::Key,
        ),
        case(
            M::GET,
            "/orgs/acme/products",
            None,
            Needs::View,
            200,
            Setup::None,
        ),
        case(
            M::POST,
            "/orgs/acme/products",
            Some(json!({"name": "new-{who}"})),
            Needs::Admin,
            201,
            Setup::None,
        ),
        case(
            M::GET,
            "/orgs/acme/products/p0",
            None,
            Needs::View,
            200,
            Setup::None,
        ),
        case(
            M::PUT,
            "/orgs/acme/products/x-{who}",
            Some(json!({"name": "renamed-{who}"})),
            Needs::Manage,
            200,
            Setup::Product,
        ),
        case(
            M::DELETE,
            "/orgs/acme/products/x-{who}",
            None,
            Needs::Admin,
            204,
            Setup::Product,
        ),
        case(
            M::GET,
            "/orgs/acme/audit_logs",
            None,
            Needs::View,
            200,
            Setup::None,
        ),
    ]
}

fn fill(template: &str, who: &str, key: &str) -> String {
    template.replace("{who}", who).replace("{key}", key)
}

fn fill_json(value: &Value, who: &str, key: &str) -> Value {
    match value {
        Value::String(s) => Value::String(fill(s, who, key)),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_json(v, who, key)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn fresh_key() -> String {
    nerveshub_fwup::PrivateKey::generate()
        .unwrap()
        .public_key()
        .to_base64()
}

async fn setup(ts: &TestServer, f: &OrgFixture, setup: Setup, who: &str) {
    let ok =
        |status: StatusCode, body: &Value| assert!(status.is_success(), "setup failed: {body}");
    match setup {
        Setup::None => {}
        Setup::User => {
            ts.user(&format!("{who}-u@acme.test")).await;
        }
        Setup::Member => {
            let email = format!("{who}-m@acme.test");
            ts.user(&email).await;
            let (s, b) = ts
                .post(
                    &f.admin,
                    "/orgs/acme/users",
                    json!({"email": email, "role": "view"}),
                )
                .await;
            ok(s, &b);
        }
        Setup::Key => {
            let (s, b) = ts
                .post(
                    &f.admin,
                    "/orgs/acme/keys",
                    json!({"name": format!("del-{who}"), "key": fresh_key()}),
                )
                .await;
            ok(s, &b);
        }
        Setup::Product => {
            let (s, b) = ts
                .post(
                    &f.admin,
                    "/orgs/acme/products",
                    json!({"name": format!("x-{who}")}),
                )
                .await;
            ok(s, &b);
        }
    }
}

#[tokio::test]
async fn org_endpoints_by_role() {
    for db in databases().await {
        let ts = TestServer::start(db.clone()).await;
        let f = ts.org_fixture("acme").await;
        let (s, _) = ts
            .post(
                &f.admin,
                "/orgs/acme/keys",
                json!({"name": "k0", "key": fresh_key()}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, _) = ts
            .post(&f.admin, "/orgs/acme/products", json!({"name": "p0"}))
            .await;
        assert_eq!(s, StatusCode::CREATED);

        let callers: [(&str, Option<&str>, Option<Needs>); 6] = [
            ("admin", Some(&f.admin), Some(Needs::Admin)),
            ("manage", Some(&f.manage), Some(Needs::Manage)),
            ("view", Some(&f.view), Some(Needs::View)),
            ("outsider", Some(&f.outsider), None),
            ("none", None, None),
            (
                "bad",
                Some("nhu_1M7ZvVbLzOVvbGe0ZKybvDCUbrNq0wOp1JEDcE4Y1ZRSpfmc9D3O"),
                None,
            ),
        ];
        let mut checked = 0;
        for (index, case) in cases().into_iter().enumerate() {
            for (who, token, role) in callers {
                // Names unique to this case and caller, so each attempt has its own resource.
                let unique = format!("{who}{index}");
                setup(&ts, &f, case.setup, &unique).await;
                let key = fresh_key();
                let path = fill(case.path, &unique, &key);
                let body = case.body.as_ref().map(|b| fill_json(b, &unique, &key));
                let (status, answer) = ts.request(case.method.clone(), token, &path, body).await;
                let expected = match (who, role) {
                    ("none" | "bad", _) => StatusCode::UNAUTHORIZED,
                    (_, None) => StatusCode::NOT_FOUND,
                    (_, Some(role)) if role < case.needs => StatusCode::FORBIDDEN,
                    _ => case.success,
                };
                assert_eq!(
                    status,
                    expected,
                    "[{}] {} {path} as {who}: {answer}",
                    db.name(),
                    case.method
                );
                if matches!(expected, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN) {
                    assert_eq!(
                        answer,
                        json!({"errors": {"detail": "Resource Not Found or Authorization Insufficient"}}),
                        "{} {path} as {who}",
                        case.method
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, cases().len() * 6);

        // A missing org looks exactly like someone else's.
        let (status, missing) = ts.get(&f.admin, "/orgs/nowhere/products").await;
        let (_, foreign) = ts
            .get(&f.admin, &format!("/orgs/{}/products", f.other_org))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(missing, foreign);
        ts.stop().await;
    }
}

#[tokio::test]
async fn user_endpoints_need_a_token_and_admin_rights() {
    for db in databases().await {
        let ts = TestServer::start(db).await;
        let jane = ts.user("jane@example.com").await;
        for (method, path, body) in [
            (Method::GET, "/users/me", None),
            (Method::GET, "/orgs", None),
            (Method::POST, "/orgs", Some(json!({"name": "x"}))),
            (
                Method::POST,
                "/users",
                Some(json!({"email": "a@b.c", "password": "longenough"})),
            ),
        ] {
            let (status, _) = ts.request(method.clone(), None, path, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            let (status, _) = ts.request(method.clone(), Some("nhu_x"), path, body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        }
        let (status, body) = ts
            .post(
                &jane,
                "/users",
                json!({"email": "a@b.c", "password": "longenough"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, _) = ts.post(&jane, "/orgs", json!({"name": "janes"})).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "any signed-in user may create an org"
        );
        ts.stop().await;
    }
}

/// Every (path, method) in the OpenAPI document is a route the server answers, and every
/// route answers on a path the document lists.
#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let ts = TestServer::start(common::TestDb::Sqlite).await;
    let (status, doc) = ts.request(Method::GET, None, "/openapi", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc, nerveshub_server::openapi_document());
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "{}", paths.len());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut operations = 0;
    for (path, methods) in paths {
        assert!(path.starts_with("/api/"), "{path}");
        for (method, op) in methods.as_object().unwrap() {
            operations += 1;
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path}"
            );
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            // Every referenced schema exists.
            let text = op.to_string();
            for reference in text.split("#/components/schemas/").skip(1) {
                let name: String = reference
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                assert!(
                    schemas.contains_key(&name),
                    "{method} {path} refers to missing schema {name}"
                );
            }
            // The route exists: call it with placeholder parameters.
            let concrete: String = path
                .trim_start_matches("/api")
                .split('/')
                .map(|part| {
                    if part.starts_with('{') {
                        "placeholder"
                    } else {
                        part
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = matches!(method, Method::POST | Method::PUT).then(|| json!({}));
            let (status, answer) = ts
                .request(method.clone(), Some(&ts.admin_token), &concrete, body)
                .await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(
                answer,
                json!({"errors": {"detail": "route not found"}}),
                "{method} {path}"
            );
        }
    }
    assert!(operations >= 20, "{operations}");
    // And a path that is not in the document is not served.
    let (status, answer) = ts.get(&ts.admin_token, "/not/a/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer, json!({"errors": {"detail": "route not found"}}));
    ts.stop().await;
}

/// Roles are enforced in one place, from the route table, before the handler runs: for every
/// documented org operation, a caller without the role is refused before the request's body
/// is read or any of the path's other names is looked up (placeholders that exist nowhere and a
/// body that is not JSON still give 401, 404 and 403, not 400, 422 or "product not found").
#[tokio::test]
async fn every_org_route_is_authorized_by_the_route_table_before_the_handler() {
    for db in databases().await {
        let ts = TestServer::start(db).await;
        let f: OrgFixture = ts.org_fixture("acme").await;
        let doc = nerveshub_server::openapi_document();
        let mut checked = 0;
        for (path, methods) in doc["paths"].as_object().unwrap() {
            for (method, op) in methods.as_object().unwrap() {
                let Some(role) = op["x-required-role"].as_str() else {
                    continue;
                };
                let concrete: String = path
                    .trim_start_matches("/api")
                    .split('/')
                    .map(|part| match part {
                        "{org}" => "acme",
                        p if p.starts_with('{') => "no-such-thing",
                        p => p,
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let call = |token: Option<String>| {
                    let mut request = ts
                        .http
                        .request(method.clone(), ts.api(&concrete))
                        .header("content-type", "application/json")
                        .body("{ this is not json");
                    if let Some(token) = token {
                        request = request.header("authorization", format!("token {token}"));
                    }
                    async move { request.send().await.unwrap().status() }
                };
                let what = format!("{method} {path}");
                assert_eq!(call(None).await, StatusCode::UNAUTHORIZED, "{what}");
                assert_eq!(
                    call(Some(f.outsider.clone())).await,
                    StatusCode::NOT_FOUND,
                    "{what}"
                );
                let below: &[&String] = match role {
                    "admin" => &[&f.view, &f.manage],
                    "manage" => &[&f.view],
                    _ => &[],
                };
                for token in below {
                    assert_eq!(
                        call(Some((*token).clone())).await,
                        StatusCode::FORBIDDEN,
                        "{what}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 30, "{checked} org operations checked");
        ts.stop().await;
    }
}
