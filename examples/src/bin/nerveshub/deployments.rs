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
    ("firmware", "firmware_uuid"),
    ("version", "firmware_version"),
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
    body
}

/// A deployment with `firmware_version` lifted out of its current release, for the table.
fn flatten(deployment: &Value) -> Value {
    let mut row = deployment.clone();
    if row.get("firmware_version").is_none() {
        row["firmware_version"] = deployment["current_release"]["firmware"]["version"].clone();
    }
    if row.get("state").is_none() {
        row["state"] = match deployment["is_active"].as_bool() {
            Some(true) => json!("on"),
            Some(false) => json!("off"),
            None => Value::Null,
        };
    }
    row
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
                &format!("Created deployment {name} (off; `nerveshub deployment on {name}` starts it)"),
                &created,
            );
        }
        DeploymentCommand::List => {
            let list = client.deployments(&org, &product).await?;
            if ctx.out.json {
                ctx.out.raw(&list);
            } else {
                let rows: Vec<Value> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(flatten)
                    .collect();
                ctx.out.list(&Value::Array(rows), COLUMNS);
            }
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
                    ("firmware", "firmware_uuid"),
                    ("version", "firmware_version"),
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
                "\x1b[H\x1b[2J{org}/{product} deployment {name} (every {interval}s, Ctrl-C to stop)\n\n{}",
                output::details(&status)
            ));
        } else {
            ctx.out.object(&status);
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
