//! Deployments (NervesHub's deployment groups): which firmware goes to which devices, and a
//! live view of a rollout.

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use crate::Ctx;
use crate::args::{DeploymentCommand, DeploymentSettings, TagOperator};
use crate::output;

const COLUMNS: &[output::Column] = &[
    ("name", "name"),
    ("state", "state"),
    ("status", "status"),
    ("release", "current_release.number"),
    ("version", "current_release.firmware.version"),
    ("firmware", "firmware_uuid"),
    ("devices", "device_count"),
];

/// The `conditions` and other settings given on the command line, as the API's JSON.
fn settings(settings: DeploymentSettings, for_create: bool) -> Map<String, Value> {
    let mut body = Map::new();
    let mut conditions = Map::new();
    if let Some(version) = settings.version {
        conditions.insert("version".into(), json!(version));
    } else if for_create {
        conditions.insert("version".into(), json!(""));
    }
    if !settings.tags.is_empty() || for_create {
        conditions.insert("tags".into(), json!(settings.tags));
    }
    if let Some(operator) = settings.tag_operator {
        let operator = match operator {
            TagOperator::And => "and",
            TagOperator::Or => "or",
        };
        conditions.insert("tag_operator".into(), json!(operator));
    }
    if !conditions.is_empty() {
        body.insert("conditions".into(), Value::Object(conditions));
    }
    if let Some(notes) = settings.notes {
        body.insert("notes".into(), json!(notes));
    }
    if let Some(n) = settings.concurrent_updates {
        body.insert("concurrent_updates".into(), json!(n));
    }
    body.extend(settings.fields);
    body
}

pub(crate) async fn deployment(ctx: &Ctx, command: DeploymentCommand) -> Result<()> {
    let client = ctx.client()?;
    let (org, product) = ctx.product()?;
    match command {
        DeploymentCommand::Create {
            name,
            firmware,
            settings: given,
        } => {
            let mut body = settings(given, true);
            body.insert("name".into(), json!(name));
            body.insert("firmware".into(), json!(firmware));
            let created = client
                .create_deployment(&org, &product, Value::Object(body))
                .await?;
            ctx.out.done(
                &format!(
                    "Created deployment {name} (off; `nerveshub deployment on {name}` starts it)"
                ),
                &created,
            );
        }
        DeploymentCommand::List => {
            let list = client.deployments(&org, &product).await?;
            ctx.out.list(&list, COLUMNS);
        }
        DeploymentCommand::Show { name } => {
            ctx.out
                .object(&client.deployment(&org, &product, &name).await?);
        }
        DeploymentCommand::Update {
            name,
            firmware,
            rename,
            settings: given,
        } => {
            let mut changes = settings(given, false);
            if let Some(firmware) = firmware {
                changes.insert("firmware".into(), json!(firmware));
            }
            if let Some(rename) = rename {
                changes.insert("name".into(), json!(rename));
            }
            if changes.is_empty() {
                bail!("nothing to change: see `nerveshub deployment update --help`");
            }
            let updated = client
                .update_deployment(&org, &product, &name, Value::Object(changes))
                .await?;
            ctx.out
                .done(&format!("Updated deployment {name}"), &updated);
        }
        DeploymentCommand::On { name } => switch(ctx, &client, &org, &product, &name, true).await?,
        DeploymentCommand::Off { name } => {
            switch(ctx, &client, &org, &product, &name, false).await?;
        }
        DeploymentCommand::Delete { name } => {
            client.delete_deployment(&org, &product, &name).await?;
            ctx.out.done(
                &format!("Deleted deployment {name}"),
                &json!({"deleted": name}),
            );
        }
        DeploymentCommand::Status {
            name,
            watch,
            interval,
        } => status(ctx, &client, &org, &product, &name, watch, interval).await?,
        DeploymentCommand::Releases { name } => {
            let releases = client.deployment_releases(&org, &product, &name).await?;
            ctx.out.list(
                &releases,
                &[
                    ("number", "number"),
                    ("version", "firmware.version"),
                    ("firmware", "firmware.uuid"),
                    ("by", "created_by"),
                    ("created", "inserted_at"),
                ],
            );
        }
    }
    Ok(())
}

async fn switch(
    ctx: &Ctx,
    client: &nerveshub_examples::Client,
    org: &str,
    product: &str,
    name: &str,
    on: bool,
) -> Result<()> {
    let updated = client
        .update_deployment(org, product, name, json!({"is_active": on}))
        .await?;
    let state = if on { "on" } else { "off" };
    ctx.out
        .done(&format!("Deployment {name} is {state}"), &updated);
    Ok(())
}

async fn status(
    ctx: &Ctx,
    client: &nerveshub_examples::Client,
    org: &str,
    product: &str,
    name: &str,
    watch: bool,
    interval: u64,
) -> Result<()> {
    let redraw = watch && !ctx.out.json && crate::prompt::interactive();
    loop {
        let status = client.deployment_status(org, product, name).await?;
        if ctx.out.json && watch {
            // One JSON document per line while watching: easy to stream into `jq`.
            output::line(&status.to_string());
        } else if redraw {
            // Clear the screen and draw the counts in place.
            output::line(&format!(
                "\x1b[H\x1b[2J{org}/{product} (every {interval}s, Ctrl-C to stop)\n\n{}",
                render_status(&status)
            ));
        } else if ctx.out.json {
            ctx.out.raw(&status);
        } else {
            output::line(&render_status(&status));
        }
        if !watch {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(interval.max(1))) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The rollout for people: one summary line, the device counts, the devices updating now
/// and the failing ones.
fn render_status(status: &Value) -> String {
    let text = |v: &Value| output::cell(v);
    let state = if status["is_active"] == true {
        "on"
    } else {
        "off"
    };
    let release = &status["release"];
    let mut out = format!(
        "deployment {}: {state}, {}; release {} (firmware {} {}), {}% of devices up to date",
        text(&status["name"]),
        text(&status["status"]),
        text(&release["number"]),
        text(&release["firmware_version"]),
        text(&release["firmware_uuid"]),
        text(&release["percent_complete"]),
    );
    if let Some(reason) = status["halt_reason"].as_str() {
        out.push_str(&format!("\nhalted: {reason}"));
    }
    if let Some(counts) = status["devices"].as_object() {
        let counts: Vec<String> = counts
            .iter()
            .map(|(k, v)| format!("{k} {}", text(v)))
            .collect();
        out.push_str(&format!("\ndevices: {}", counts.join(", ")));
    }
    for (title, key, columns) in [
        (
            "updating now",
            "in_flight",
            &[
                ("identifier", "identifier"),
                ("status", "status"),
                ("progress", "progress"),
            ][..],
        ),
        (
            "failing",
            "failing_devices",
            &[("identifier", "identifier"), ("reason", "reason")][..],
        ),
    ] {
        let rows: Vec<Vec<String>> = status[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| {
                columns
                    .iter()
                    .map(|(_, k)| text(output::member(item, k)))
                    .collect()
            })
            .collect();
        if !rows.is_empty() {
            out.push_str(&format!("\n\n{title}:\n{}", output::table(columns, &rows)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_for_people() {
        let status = json!({
            "name": "beta", "is_active": true, "status": "ready", "halt_reason": null,
            "release": {"number": 2, "firmware_uuid": "u", "firmware_version": "2.0.0", "percent_complete": 50},
            "devices": {"total": 2, "up_to_date": 1},
            "in_flight": [{"identifier": "d-1", "status": "downloading", "progress": 40}],
            "failing_devices": [],
        });
        assert_eq!(
            render_status(&status),
            "deployment beta: on, ready; release 2 (firmware 2.0.0 u), 50% of devices up to date\n\
             devices: total 2, up_to_date 1\n\n\
             updating now:\n\
             IDENTIFIER  STATUS       PROGRESS\n\
             d-1         downloading  40"
        );
    }
}
