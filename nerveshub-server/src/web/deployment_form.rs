//! The create and edit forms of a deployment: every setting the API accepts, grouped as
//! NervesHub groups them, each with its bound in the help text.
//!
//! A refusal **re-renders the form** (status 422) with the values as typed and the API's
//! messages, at the top and next to the field they name: a redirect would lose a long form's
//! input. The bounds here are only help text and browser hints; the API checks them.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::backend::{WebState, seg};
use super::page::{Page, PageContext, WebError, form_outcome, text};
use super::session::{Posted, Session};
use crate::auth::Role;

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route(
            "/orgs/{org}/products/{product}/deployments/new",
            get(new_form),
        )
        .route(
            "/orgs/{org}/products/{product}/deployments/{name}/edit",
            get(edit_form).post(update),
        )
}

/// The form as posted (and as shown): text as typed, so a refused form comes back unchanged.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(super) struct DeploymentForm {
    name: String,
    firmware: String,
    version: String,
    tags: String,
    tag_operator: String,
    concurrent_updates: String,
    queue_management: String,
    priority_queue_enabled: Option<String>,
    priority_queue_concurrent_updates: String,
    priority_queue_firmware_version_threshold: String,
    device_failure_threshold: String,
    device_failure_rate_amount: String,
    device_failure_rate_seconds: String,
    penalty_timeout_minutes: String,
    halt_failure_rate: String,
    halt_window: String,
    require_validated: Option<String>,
    health_timeout_minutes: String,
    release_tags: String,
    lock_device_membership: Option<String>,
    notes: String,
    is_active: Option<String>,
}

/// A whole-number setting: its API field, label, bounds (as `fleet/deployment_settings.rs`
/// checks them) and help.
struct Number {
    field: &'static str,
    label: &'static str,
    min: i64,
    max: i64,
    help: &'static str,
}

const CONCURRENT: Number = Number {
    field: "concurrent_updates",
    label: "Concurrent updates",
    min: 1,
    max: 100_000,
    help: "How many devices may be updating at once.",
};
const PRIORITY_CONCURRENT: Number = Number {
    field: "priority_queue_concurrent_updates",
    label: "Priority queue concurrent updates",
    min: 1,
    max: 100_000,
    help: "Extra slots for devices at or below the priority version.",
};
const FAILURE_THRESHOLD: Number = Number {
    field: "device_failure_threshold",
    label: "Failed attempts before the penalty box",
    min: 1,
    max: 1000,
    help: "A device with this many update attempts in all is put in the penalty box.",
};
const FAILURE_AMOUNT: Number = Number {
    field: "device_failure_rate_amount",
    label: "Attempts within the rate window",
    min: 1,
    max: 1000,
    help: "…or this many attempts within the rate window below.",
};
const FAILURE_SECONDS: Number = Number {
    field: "device_failure_rate_seconds",
    label: "Rate window (seconds)",
    min: 60,
    max: 31_536_000,
    help: "The window the attempts above are counted in (a year at most).",
};
const PENALTY_MINUTES: Number = Number {
    field: "penalty_timeout_minutes",
    label: "Penalty box time (minutes)",
    min: 60,
    max: 525_600,
    help: "How long a penalized device is sent nothing (a year at most).",
};
const HALT_RATE: Number = Number {
    field: "halt_failure_rate",
    label: "Halt at failure rate (%)",
    min: 1,
    max: 100,
    help: "Halt the rollout when this percentage of the halt window failed. Empty: never halt.",
};
const HALT_WINDOW: Number = Number {
    field: "halt_window",
    label: "Halt window (updates)",
    min: 1,
    max: 1000,
    help: "How many of the release's latest finished updates the rate is taken over.",
};
const HEALTH_MINUTES: Number = Number {
    field: "health_timeout_minutes",
    label: "Health timeout (minutes)",
    min: 1,
    max: 1440,
    help: "An update not confirmed healthy within this time fails.",
};

impl DeploymentForm {
    /// A new deployment's form, with the API's defaults.
    fn defaults() -> Self {
        DeploymentForm {
            tag_operator: "and".into(),
            concurrent_updates: "10".into(),
            queue_management: "FIFO".into(),
            priority_queue_concurrent_updates: "5".into(),
            device_failure_threshold: "3".into(),
            device_failure_rate_amount: "5".into(),
            device_failure_rate_seconds: "180".into(),
            penalty_timeout_minutes: "1440".into(),
            halt_window: "20".into(),
            health_timeout_minutes: "15".into(),
            ..Default::default()
        }
    }

    /// A stored deployment's form, from its API JSON.
    fn of(d: &Value) -> Self {
        let num = |key: &str| d[key].as_i64().map(|n| n.to_string()).unwrap_or_default();
        let flag = |key: &str| d[key].as_bool().unwrap_or(false).then(|| "on".to_owned());
        let list = super::page::comma_list;
        let string = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        DeploymentForm {
            name: string(&d["name"]),
            firmware: string(&d["firmware_uuid"]),
            version: string(&d["conditions"]["version"]),
            tags: list(&d["conditions"]["tags"]),
            tag_operator: string(&d["conditions"]["tag_operator"]),
            concurrent_updates: num("concurrent_updates"),
            queue_management: string(&d["queue_management"]),
            priority_queue_enabled: flag("priority_queue_enabled"),
            priority_queue_concurrent_updates: num("priority_queue_concurrent_updates"),
            priority_queue_firmware_version_threshold: string(
                &d["priority_queue_firmware_version_threshold"],
            ),
            device_failure_threshold: num("device_failure_threshold"),
            device_failure_rate_amount: num("device_failure_rate_amount"),
            device_failure_rate_seconds: num("device_failure_rate_seconds"),
            penalty_timeout_minutes: num("penalty_timeout_minutes"),
            halt_failure_rate: num("halt_failure_rate"),
            halt_window: num("halt_window"),
            require_validated: flag("require_validated"),
            health_timeout_minutes: num("health_timeout_minutes"),
            release_tags: list(&d["release_tags"]),
            lock_device_membership: flag("lock_device_membership"),
            notes: string(&d["notes"]),
            is_active: flag("is_active"),
        }
    }

    fn number(&self, field: &str) -> &str {
        match field {
            "concurrent_updates" => &self.concurrent_updates,
            "priority_queue_concurrent_updates" => &self.priority_queue_concurrent_updates,
            "device_failure_threshold" => &self.device_failure_threshold,
            "device_failure_rate_amount" => &self.device_failure_rate_amount,
            "device_failure_rate_seconds" => &self.device_failure_rate_seconds,
            "penalty_timeout_minutes" => &self.penalty_timeout_minutes,
            "halt_failure_rate" => &self.halt_failure_rate,
            "halt_window" => &self.halt_window,
            "health_timeout_minutes" => &self.health_timeout_minutes,
            _ => "",
        }
    }

    /// The API body. `current_firmware` (on edit) leaves the firmware out when unchanged, as
    /// sending it would make a new release. Only a number that is not one is refused here.
    fn body(&self, current_firmware: Option<&str>) -> Result<Value, Vec<String>> {
        let mut body = Map::new();
        let mut errors = Vec::new();
        body.insert("name".into(), json!(self.name.trim()));
        let firmware = self.firmware.trim();
        if current_firmware != Some(firmware) {
            body.insert("firmware".into(), json!(firmware));
        }
        body.insert(
            "conditions".into(),
            json!({
                "version": self.version.trim(),
                "tags": self.tags.trim(),
                "tag_operator": self.tag_operator.trim(),
            }),
        );
        for n in [
            &CONCURRENT,
            &PRIORITY_CONCURRENT,
            &FAILURE_THRESHOLD,
            &FAILURE_AMOUNT,
            &FAILURE_SECONDS,
            &PENALTY_MINUTES,
            &HALT_RATE,
            &HALT_WINDOW,
            &HEALTH_MINUTES,
        ] {
            let typed = self.number(n.field).trim();
            if typed.is_empty() {
                // Empty: no halt; for the others, the API's default (create) or no change.
                if n.field == HALT_RATE.field {
                    body.insert(n.field.into(), Value::Null);
                }
                continue;
            }
            match typed.parse::<i64>() {
                Ok(value) => {
                    body.insert(n.field.into(), json!(value));
                }
                Err(_) => errors.push(format!("{}: must be a whole number", n.field)),
            }
        }
        body.insert(
            "queue_management".into(),
            json!(self.queue_management.trim()),
        );
        let threshold = self.priority_queue_firmware_version_threshold.trim();
        body.insert(
            "priority_queue_firmware_version_threshold".into(),
            if threshold.is_empty() {
                Value::Null
            } else {
                json!(threshold)
            },
        );
        let release_tags: Vec<&str> = self
            .release_tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        body.insert("release_tags".into(), json!(release_tags));
        for (field, value) in [
            ("priority_queue_enabled", &self.priority_queue_enabled),
            ("require_validated", &self.require_validated),
            ("lock_device_membership", &self.lock_device_membership),
        ] {
            body.insert(field.into(), json!(value.is_some()));
        }
        body.insert("notes".into(), json!(self.notes));
        if current_firmware.is_none() {
            body.insert("is_active".into(), json!(self.is_active.is_some()));
        }
        if errors.is_empty() {
            Ok(Value::Object(body))
        } else {
            Err(errors)
        }
    }
}

/// The messages about `field` (the API names fields as its body does).
fn errors_for<'a>(errors: &'a [String], field: &str) -> Vec<&'a str> {
    errors
        .iter()
        .filter_map(|e| e.strip_prefix(field)?.strip_prefix(": "))
        .collect()
}

fn field_errors(errors: &[String], field: &str) -> Markup {
    html! {
        @for message in errors_for(errors, field) {
            p.error { (message) }
        }
    }
}

fn number_input(form: &DeploymentForm, errors: &[String], n: &Number) -> Markup {
    let id = format!("d-{}", n.field);
    let help = format!("{id}-help");
    html! {
        label for=(id) { (n.label) }
        input id=(id) name=(n.field) type="number" min=(n.min) max=(n.max) step="1"
            value=(form.number(n.field)) aria-describedby=(help)
            required[n.field != HALT_RATE.field];
        p.help id=(help) { (n.help) " From " (n.min) " to " (n.max) "." }
        (field_errors(errors, n.field))
    }
}

fn checkbox(id: &str, name: &str, checked: bool, label: &str, help: &str) -> Markup {
    let help_id = format!("{id}-help");
    html! {
        label.check for=(id) {
            input id=(id) type="checkbox" name=(name) checked[checked] aria-describedby=(help_id);
            (label)
        }
        p.help id=(help_id) { (help) }
    }
}

/// The form's markup; `current_firmware` is set when editing.
fn form_markup(
    ctx: &PageContext,
    action: &str,
    form: &DeploymentForm,
    firmwares: &[Value],
    errors: &[String],
    editing: bool,
) -> Markup {
    let submit = if editing {
        "Save changes"
    } else {
        "Create deployment"
    };
    html! {
        @if !errors.is_empty() {
            div.flash.error role="alert" {
                p { "The deployment was not saved:" }
                ul { @for message in errors { li { (message) } } }
            }
        }
        form.deployment method="post" action=(action) {
            (ctx.csrf_field())
            fieldset {
                legend { "Deployment" }
                label for="d-name" { "Name" }
                input #d-name name="name" required maxlength="100" value=(form.name)
                    aria-describedby="d-name-help";
                p.help #d-name-help { "1 to 100 characters, no “/”, no surrounding spaces; unique in the product." }
                (field_errors(errors, "name"))
                label for="d-firmware" { "Firmware" }
                select #d-firmware name="firmware" required aria-describedby="d-firmware-help" {
                    @if firmwares.is_empty() {
                        option value="" { "No firmware uploaded yet" }
                    }
                    @for fw in firmwares {
                        @let uuid = text(&fw["uuid"]);
                        option value=(uuid) selected[uuid == form.firmware] {
                            (text(&fw["version"])) " — " (text(&fw["platform"])) "/"
                            (text(&fw["architecture"])) " — " (uuid.get(..8).unwrap_or(&uuid))
                        }
                    }
                }
                p.help #d-firmware-help {
                    @if editing { "Choosing another firmware makes a new release, sent to every member." }
                    @else { "The first release. Its platform and architecture decide which devices may join." }
                }
                (field_errors(errors, "firmware"))
                @if !editing {
                    (checkbox("d-is_active", "is_active", form.is_active.is_some(), "Switch it on now",
                        "Off: devices are not sent the release until you switch it on."))
                }
            }
            fieldset {
                legend { "Conditions" }
                p.help { "Devices join the deployment when their firmware version and tags match." }
                label for="d-version" { "Version requirement" }
                input #d-version name="version" maxlength="1000" value=(form.version)
                    placeholder="~> 1.2 or >= 2.0.0 and < 3.0.0" aria-describedby="d-version-help";
                p.help #d-version-help { "An Elixir version requirement (~>, ==, >=, <, and, or), at most 1000 characters. Empty: any version." }
                label for="d-tags" { "Tags" }
                input #d-tags name="tags" value=(form.tags) aria-describedby="d-tags-help";
                p.help #d-tags-help { "Comma-separated; at most 100 tags of 1 to 100 characters, no spaces or quotes." }
                label for="d-tag_operator" { "Devices need" }
                select #d-tag_operator name="tag_operator" {
                    option value="and" selected[form.tag_operator != "or"] { "all of the tags" }
                    option value="or" selected[form.tag_operator == "or"] { "any of the tags" }
                }
                (field_errors(errors, "conditions"))
            }
            fieldset {
                legend { "Caps and queue" }
                (number_input(form, errors, &CONCURRENT))
                label for="d-queue_management" { "Queue order" }
                select #d-queue_management name="queue_management" aria-describedby="d-queue-help" {
                    option value="FIFO" selected[form.queue_management != "LIFO"] { "FIFO: longest connected first" }
                    option value="LIFO" selected[form.queue_management == "LIFO"] { "LIFO: latest connected first" }
                }
                p.help #d-queue-help { "Which waiting devices get a free slot first." }
                (field_errors(errors, "queue_management"))
                (checkbox("d-priority_queue_enabled", "priority_queue_enabled",
                    form.priority_queue_enabled.is_some(), "Priority queue",
                    "Devices on the priority version or older update in their own slots."))
                (number_input(form, errors, &PRIORITY_CONCURRENT))
                label for="d-pq-threshold" { "Priority version" }
                input #d-pq-threshold name="priority_queue_firmware_version_threshold"
                    maxlength="1000" value=(form.priority_queue_firmware_version_threshold)
                    aria-describedby="d-pq-threshold-help";
                p.help #d-pq-threshold-help { "A SemVer version (e.g. 1.4.0); empty: none." }
                (field_errors(errors, "priority_queue_firmware_version_threshold"))
                label for="d-release_tags" { "Release tags" }
                input #d-release_tags name="release_tags" value=(form.release_tags)
                    aria-describedby="d-release_tags-help";
                p.help #d-release_tags-help { "Comma-separated; only members carrying all of them are sent the release. At most 100 tags." }
                (field_errors(errors, "release_tags"))
                (checkbox("d-lock", "lock_device_membership", form.lock_device_membership.is_some(),
                    "Lock membership", "Members stay even when they no longer match the conditions."))
            }
            fieldset {
                legend { "Penalty box" }
                (number_input(form, errors, &FAILURE_THRESHOLD))
                (number_input(form, errors, &FAILURE_AMOUNT))
                (number_input(form, errors, &FAILURE_SECONDS))
                (number_input(form, errors, &PENALTY_MINUTES))
            }
            fieldset {
                legend { "Halt" }
                p.help { "A halted deployment sends nothing until it is resumed (switched on again)." }
                (number_input(form, errors, &HALT_RATE))
                (number_input(form, errors, &HALT_WINDOW))
            }
            fieldset {
                legend { "Health gate" }
                (checkbox("d-require_validated", "require_validated", form.require_validated.is_some(),
                    "Require validated firmware",
                    "An update succeeds only once the device reports the new firmware validated."))
                (number_input(form, errors, &HEALTH_MINUTES))
            }
            fieldset {
                legend { "Notes" }
                label for="d-notes" { "Notes" }
                textarea #d-notes name="notes" maxlength="10000" aria-describedby="d-notes-help" { (form.notes) }
                p.help #d-notes-help { "At most 10,000 characters." }
                (field_errors(errors, "notes"))
            }
            button.primary type="submit" { (submit) }
        }
    }
}

fn product_path(org: &str, product: &str) -> String {
    format!("/orgs/{}/products/{}", seg(org), seg(product))
}

/// Only managers get the forms: the API would refuse what they post anyway.
fn must_manage(ctx: &PageContext) -> Result<(), WebError> {
    if ctx.can(Role::Manage) {
        Ok(())
    } else {
        Err(WebError::Refused {
            status: StatusCode::FORBIDDEN,
            messages: vec!["Changing deployments needs the manage role.".to_owned()],
        })
    }
}

async fn firmwares(
    web: &WebState,
    session: &Session,
    product_path: &str,
) -> Result<Vec<Value>, WebError> {
    let list = web
        .get(session, &format!("{product_path}/firmwares"))
        .await?;
    Ok(list.as_array().cloned().unwrap_or_default())
}

/// The form page (422 when it comes back refused).
async fn form_page(
    web: &WebState,
    session: &Session,
    (org, product): (&str, &str),
    editing: Option<&str>,
    form: &DeploymentForm,
    errors: &[String],
) -> Result<Response, WebError> {
    let base = product_path(org, product);
    let firmwares = firmwares(web, session, &base).await?;
    let ctx = web.context(session, Some(org), Some(product)).await?;
    must_manage(&ctx)?;
    let (title, action) = match editing {
        Some(name) => (
            format!("Edit deployment {name}"),
            format!("{base}/deployments/{}/edit", seg(name)),
        ),
        None => ("New deployment".to_owned(), format!("{base}/deployments")),
    };
    let body = form_markup(&ctx, &action, form, &firmwares, errors, editing.is_some());
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Page::new(ctx, title, body)).into_response())
}

async fn new_form(
    State(web): State<WebState>,
    session: Session,
    Path((org, product)): Path<(String, String)>,
) -> Result<Response, WebError> {
    form_page(
        &web,
        &session,
        (&org, &product),
        None,
        &DeploymentForm::defaults(),
        &[],
    )
    .await
}

async fn edit_form(
    State(web): State<WebState>,
    session: Session,
    Path((org, product, name)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let path = format!(
        "{}/deployments/{}",
        product_path(&org, &product),
        seg(&name)
    );
    let d = web.get(&session, &path).await?;
    form_page(
        &web,
        &session,
        (&org, &product),
        Some(&name),
        &DeploymentForm::of(&d),
        &[],
    )
    .await
}

/// After a POST: to `to` when saved, the form again with the messages when refused for a
/// value, the error page for a role or org (403/404).
async fn outcome(
    web: &WebState,
    session: &Session,
    (org, product): (&str, &str),
    editing: Option<&str>,
    form: &DeploymentForm,
    result: Result<Value, WebError>,
    done: &str,
) -> Response {
    let saved_name = result
        .as_ref()
        .ok()
        .and_then(|d| d["name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| form.name.trim().to_owned());
    let errors = match result {
        Err(WebError::Refused { status, messages })
            if status != StatusCode::FORBIDDEN && status != StatusCode::NOT_FOUND =>
        {
            messages
        }
        other => {
            let to = format!(
                "{}/deployments/{}",
                product_path(org, product),
                seg(&saved_name)
            );
            return form_outcome(other, &to, &to, done, web.secure_cookies);
        }
    };
    match form_page(web, session, (org, product), editing, form, &errors).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// `POST …/deployments` (routed by `deployments.rs`, which owns the collection's URL).
pub(super) async fn create(
    State(web): State<WebState>,
    Path((org, product)): Path<(String, String)>,
    posted: Posted<DeploymentForm>,
) -> Response {
    let form = posted.form;
    let session = posted.session;
    let result = match form.body(None) {
        Ok(body) => {
            let path = format!("{}/deployments", product_path(&org, &product));
            web.post(&session, &path, &body).await
        }
        Err(messages) => Err(WebError::Refused {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            messages,
        }),
    };
    let done = format!("Deployment {} created.", form.name.trim());
    outcome(&web, &session, (&org, &product), None, &form, result, &done).await
}

async fn update(
    State(web): State<WebState>,
    Path((org, product, name)): Path<(String, String, String)>,
    posted: Posted<DeploymentForm>,
) -> Response {
    let form = posted.form;
    let session = posted.session;
    let path = format!(
        "{}/deployments/{}",
        product_path(&org, &product),
        seg(&name)
    );
    let result = async {
        let current = web.get(&session, &path).await?;
        let body = form
            .body(current["firmware_uuid"].as_str())
            .map_err(|messages| WebError::Refused {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                messages,
            })?;
        web.put(&session, &path, &json!({ "deployment": body }))
            .await
    }
    .await;
    outcome(
        &web,
        &session,
        (&org, &product),
        Some(&name),
        &form,
        result,
        &format!("Deployment {} saved.", form.name.trim()),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_becomes_the_api_body() {
        let mut form = DeploymentForm::defaults();
        form.name = " beta ".into();
        form.firmware = "abc".into();
        form.tags = "a, b".into();
        form.release_tags = "x, ,y".into();
        form.require_validated = Some("on".into());
        let body = form.body(None).unwrap();
        assert_eq!(body["name"], "beta");
        assert_eq!(body["firmware"], "abc");
        assert_eq!(body["conditions"]["tags"], "a, b");
        assert_eq!(body["release_tags"], json!(["x", "y"]));
        assert_eq!(body["concurrent_updates"], 10);
        assert_eq!(body["halt_failure_rate"], Value::Null);
        assert_eq!(body["require_validated"], true);
        assert_eq!(body["is_active"], false);
        // Editing: the same firmware is no new release, and the switch is not the form's.
        let body = form.body(Some("abc")).unwrap();
        assert!(body.get("firmware").is_none() && body.get("is_active").is_none());
        form.halt_window = "ten".into();
        assert_eq!(
            form.body(None).unwrap_err(),
            ["halt_window: must be a whole number"]
        );
    }

    #[test]
    fn a_stored_deployment_fills_the_form() {
        let d = json!({"name": "main", "firmware_uuid": "u", "conditions": {"version": "~> 1.0",
            "tags": ["a", "b"], "tag_operator": "or"}, "concurrent_updates": 3,
            "halt_failure_rate": null, "release_tags": [], "require_validated": true});
        let form = DeploymentForm::of(&d);
        assert_eq!(form.tags, "a, b");
        assert_eq!(form.concurrent_updates, "3");
        assert_eq!(form.halt_failure_rate, "");
        assert!(form.require_validated.is_some() && form.lock_device_membership.is_none());
        assert_eq!(
            errors_for(&["conditions: bad".into()], "conditions"),
            ["bad"]
        );
    }
}
