//! Devices, their certificates, bulk import from CSV, and shared secrets.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use nerveshub_examples::{DeviceQuery, Error as ApiError};
use serde_json::{Value, json};

use crate::Ctx;
use crate::args::{DeviceCertCommand, DeviceCommand, DeviceListArgs, SecretCommand};
use crate::output::{self, Column};

const DEVICE_COLUMNS: &[Column] = &[
    ("identifier", "identifier"),
    ("status", "connection_status"),
    ("version", "version"),
    ("tags", "tags"),
    ("description", "description"),
];

/// The largest CSV `device import` reads: far above any real fleet file, and bounded.
const MAX_IMPORT_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) async fn device(ctx: &Ctx, command: DeviceCommand) -> Result<()> {
    let client = ctx.client()?;
    let (org, product) = ctx.product()?;
    let action = |name: &'static str, identifier: String, body: Option<Value>| {
        let (client, org, product) = (client.clone(), org.clone(), product.clone());
        async move {
            client
                .device_action(&org, &product, &identifier, name, body)
                .await?;
            ctx.out.done(
                &format!("{identifier}: {name} sent"),
                &json!({"identifier": identifier, "action": name, "accepted": true}),
            );
            Ok::<_, anyhow::Error>(())
        }
    };
    match command {
        DeviceCommand::List(args) => list(ctx, &client, &org, &product, args).await?,
        DeviceCommand::Show { identifier } => {
            ctx.out
                .object(&client.device(&org, &product, &identifier).await?);
        }
        DeviceCommand::Create {
            identifier,
            description,
            tags,
        } => {
            let mut body = json!({"identifier": identifier, "tags": tags});
            if let Some(description) = description {
                body["description"] = json!(description);
            }
            let device = client.create_device(&org, &product, body).await?;
            ctx.out
                .done(&format!("Created device {identifier}"), &device);
        }
        DeviceCommand::Update {
            identifier,
            tags,
            description,
            updates_enabled,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(tags) = tags {
                body.insert("tags".into(), json!(split_tags(&tags)));
            }
            if let Some(description) = description {
                body.insert("description".into(), json!(description));
            }
            if let Some(enabled) = updates_enabled {
                body.insert("updates_enabled".into(), json!(enabled));
            }
            if body.is_empty() {
                bail!("nothing to change: pass --tags, --description or --updates-enabled");
            }
            let device = client
                .update_device(&org, &product, &identifier, Value::Object(body))
                .await?;
            ctx.out
                .done(&format!("Updated device {identifier}"), &device);
        }
        DeviceCommand::Delete { identifier } => {
            client.delete_device(&org, &product, &identifier).await?;
            ctx.out.done(
                &format!("Deleted device {identifier}"),
                &json!({"deleted": identifier}),
            );
        }
        DeviceCommand::Import { file } => import(ctx, &client, &org, &product, &file).await?,
        DeviceCommand::Reboot { identifier } => action("reboot", identifier, None).await?,
        DeviceCommand::Reconnect { identifier } => action("reconnect", identifier, None).await?,
        DeviceCommand::Identify { identifier } => action("identify", identifier, None).await?,
        DeviceCommand::Upgrade {
            identifier,
            firmware,
        } => action("upgrade", identifier, Some(json!({"uuid": firmware}))).await?,
        DeviceCommand::ClearPenalty { identifier } => {
            client.clear_penalty(&org, &product, &identifier).await?;
            ctx.out.done(
                &format!("{identifier}: penalty cleared"),
                &json!({"identifier": identifier, "penalty_cleared": true}),
            );
        }
        DeviceCommand::Updates { identifier } => {
            let updates = client.device_updates(&org, &product, &identifier).await?;
            ctx.out.list(
                &updates,
                &[
                    ("firmware", "firmware_uuid"),
                    ("status", "status"),
                    ("progress", "progress"),
                    ("started", "inserted_at"),
                ],
            );
        }
        DeviceCommand::Cert(command) => cert(ctx, &client, &org, &product, command).await?,
    }
    Ok(())
}

async fn list(
    ctx: &Ctx,
    client: &nerveshub_examples::Client,
    org: &str,
    product: &str,
    args: DeviceListArgs,
) -> Result<()> {
    let mut query = DeviceQuery::default();
    query.tag = args.tag;
    query.identifier = args.search;
    query.online = match (args.online, args.offline) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    query.page_size = Some(args.page_size);
    query.page = Some(args.page);
    let mut answer = client.devices(org, product, &query).await?;
    if args.all {
        let mut all = take_data(&mut answer);
        let total_pages = answer["pagination"]["total_pages"].as_u64().unwrap_or(1);
        let mut page = args.page;
        while u64::from(page) < total_pages {
            page += 1;
            query.page = Some(page);
            let mut next = client.devices(org, product, &query).await?;
            all.extend(take_data(&mut next));
        }
        answer["data"] = Value::Array(all);
    }
    if ctx.out.json {
        ctx.out.raw(&answer);
        return Ok(());
    }
    ctx.out.list(&answer["data"], DEVICE_COLUMNS);
    let pagination = &answer["pagination"];
    let total = pagination["total_entries"].as_u64().unwrap_or(0);
    if !args.all && pagination["total_pages"].as_u64().unwrap_or(1) > 1 {
        output::line(&format!(
            "page {} of {} ({total} devices; --page N or --all for more)",
            pagination["page"], pagination["total_pages"]
        ));
    }
    Ok(())
}

fn take_data(answer: &mut Value) -> Vec<Value> {
    match answer.get_mut("data").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

/// Tags as written on the command line or in a CSV cell: separated by `,`, `;` or spaces.
fn split_tags(text: &str) -> Vec<String> {
    text.split([',', ';', ' ', '\t'])
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One CSV row to import.
#[derive(Debug, PartialEq, Eq)]
struct ImportRow {
    /// 1-based number of the CSV record in the file (the header counts; blank lines do not).
    row: u64,
    identifier: String,
    description: Option<String>,
    tags: Vec<String>,
}

/// Reads `identifier,description,tags` rows. A first row whose first cell is `identifier`
/// is a header naming the columns (any order; unknown columns are an error); without one the
/// columns are in that order. Empty lines are skipped.
fn read_csv(bytes: &[u8]) -> Result<Vec<ImportRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut columns = ["identifier", "description", "tags"]
        .map(str::to_owned)
        .to_vec();
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.context("reading the CSV")?;
        let line = index as u64 + 1;
        if index == 0
            && record
                .get(0)
                .is_some_and(|c| c.eq_ignore_ascii_case("identifier"))
        {
            columns = record.iter().map(str::to_lowercase).collect();
            if let Some(unknown) = columns
                .iter()
                .find(|c| !matches!(c.as_str(), "identifier" | "description" | "tags"))
            {
                bail!("CSV header: unknown column {unknown:?} (use identifier, description, tags)");
            }
            continue;
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() > columns.len() {
            bail!(
                "CSV row {line}: {} cells, but only {} columns ({})",
                record.len(),
                columns.len(),
                columns.join(",")
            );
        }
        let mut row = ImportRow {
            row: line,
            identifier: String::new(),
            description: None,
            tags: Vec::new(),
        };
        for (column, cell) in columns.iter().zip(record.iter()) {
            match column.as_str() {
                "identifier" => row.identifier = cell.to_owned(),
                "description" if !cell.is_empty() => row.description = Some(cell.to_owned()),
                "tags" => row.tags = split_tags(cell),
                _ => {}
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

async fn import(
    ctx: &Ctx,
    client: &nerveshub_examples::Client,
    org: &str,
    product: &str,
    file: &Path,
) -> Result<()> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    if size > MAX_IMPORT_BYTES {
        bail!(
            "{} is {size} bytes; import at most {MAX_IMPORT_BYTES} bytes at a time",
            file.display()
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let rows = read_csv(&bytes).with_context(|| format!("{}", file.display()))?;
    if rows.is_empty() {
        bail!("{} holds no devices", file.display());
    }
    // The server has no bulk endpoint: one create per row, each reported, none stopping the
    // rest (a row that fails leaves nothing behind: creates are single transactions).
    let mut report = Vec::new();
    let mut failed = 0usize;
    let mut fatal = None;
    for row in &rows {
        let mut body = json!({"identifier": row.identifier, "tags": row.tags});
        if let Some(description) = &row.description {
            body["description"] = json!(description);
        }
        let result = if row.identifier.is_empty() {
            Err("identifier is empty".to_owned())
        } else {
            match client.create_device(org, product, body).await {
                Ok(_) => Ok(()),
                Err(ApiError::Validation { fields }) => Err(fields
                    .iter()
                    .flat_map(|(f, ms)| ms.iter().map(move |m| format!("{f} {m}")))
                    .collect::<Vec<_>>()
                    .join("; ")),
                // No later row can do better: stop, report what was done, say why.
                Err(
                    e @ (ApiError::Unreachable { .. }
                    | ApiError::Unauthorized
                    | ApiError::Forbidden { .. }
                    | ApiError::NotFound { .. }),
                ) => {
                    fatal = Some(e);
                    break;
                }
                Err(other) => Err(other.to_string()),
            }
        };
        let entry = match result {
            Ok(()) => json!({"row": row.row, "identifier": row.identifier, "result": "created"}),
            Err(message) => {
                failed += 1;
                json!({"row": row.row, "identifier": row.identifier, "result": "failed", "error": message})
            }
        };
        report.push(entry);
    }
    let created = report.len() - failed;
    let not_tried = rows.len() - report.len();
    let summary =
        json!({"created": created, "failed": failed, "not_tried": not_tried, "rows": report});
    if ctx.out.json {
        ctx.out.raw(&summary);
    } else {
        ctx.out.list(
            &summary["rows"],
            &[
                ("row", "row"),
                ("identifier", "identifier"),
                ("result", "result"),
                ("error", "error"),
            ],
        );
        output::line(&format!(
            "{created} created, {failed} failed, {not_tried} not tried"
        ));
    }
    if let Some(e) = fatal {
        return Err(anyhow::Error::new(e).context(format!("stopped after {} rows", report.len())));
    }
    if failed > 0 {
        bail!(
            "{failed} of {} rows failed (see the report above)",
            rows.len()
        );
    }
    Ok(())
}

async fn cert(
    ctx: &Ctx,
    client: &nerveshub_examples::Client,
    org: &str,
    product: &str,
    command: DeviceCertCommand,
) -> Result<()> {
    let columns = &[
        ("serial", "serial"),
        ("not_before", "not_before"),
        ("not_after", "not_after"),
    ];
    match command {
        DeviceCertCommand::List { identifier } => {
            let certs = client
                .device_certificates(org, product, &identifier)
                .await?;
            ctx.out.list(&certs, columns);
        }
        DeviceCertCommand::Add { identifier, file } => {
            let pem = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let cert = client
                .add_device_certificate(org, product, &identifier, &pem)
                .await?;
            ctx.out.done(
                &format!(
                    "Added certificate {} to {identifier}",
                    cert["serial"].as_str().unwrap_or_default()
                ),
                &cert,
            );
        }
        DeviceCertCommand::Remove { identifier, serial } => {
            client
                .remove_device_certificate(org, product, &identifier, &serial)
                .await?;
            ctx.out.done(
                &format!("Removed certificate {serial} from {identifier}"),
                &json!({"identifier": identifier, "removed": serial}),
            );
        }
        DeviceCertCommand::Issue(args) => {
            crate::pki::issue(ctx, client, org, product, args).await?
        }
    }
    Ok(())
}

pub(crate) async fn secret(ctx: &Ctx, command: SecretCommand) -> Result<()> {
    let client = ctx.client()?;
    let (org, product) = ctx.product()?;
    match command {
        SecretCommand::List { device } => {
            let secrets = client
                .shared_secrets(&org, &product, device.as_deref())
                .await?;
            ctx.out.list(
                &secrets,
                &[
                    ("key", "key"),
                    ("created", "inserted_at"),
                    ("deactivated", "deactivated_at"),
                ],
            );
        }
        SecretCommand::Create { device } => {
            let secret = client
                .create_shared_secret(&org, &product, device.as_deref())
                .await?;
            if ctx.out.json {
                ctx.out.raw(&secret);
            } else {
                output::line(&format!(
                    "key:    {}\nsecret: {}\n(the secret is shown only now)",
                    output::cell(&secret["key"]),
                    output::cell(&secret["secret"])
                ));
            }
        }
        SecretCommand::Delete { key, device } => {
            client
                .deactivate_shared_secret(&org, &product, device.as_deref(), &key)
                .await?;
            ctx.out
                .done(&format!("Deactivated {key}"), &json!({"deactivated": key}));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_with_and_without_header() {
        let rows =
            read_csv(b"identifier,tags,description\nd-1,beta;eu,\"bench, unit\"\n\n d-2 ,,\n")
                .unwrap();
        assert_eq!(
            rows,
            vec![
                ImportRow {
                    row: 2,
                    identifier: "d-1".into(),
                    description: Some("bench, unit".into()),
                    tags: vec!["beta".into(), "eu".into()],
                },
                ImportRow {
                    row: 3,
                    identifier: "d-2".into(),
                    description: None,
                    tags: vec![],
                },
            ]
        );
        let rows = read_csv(b"d-3,desc,a b\n").unwrap();
        assert_eq!(rows[0].tags, vec!["a", "b"]);
        assert_eq!(rows[0].description.as_deref(), Some("desc"));
        assert!(read_csv(b"identifier,colour\nx,red\n").is_err());
        assert!(read_csv(b"a,b,c,d\n").is_err());
    }

    proptest::proptest! {
        /// Any file: rows or an error, never a panic; every row has a number past the header.
        #[test]
        fn any_csv_is_read_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            if let Ok(rows) = read_csv(&bytes) {
                for row in rows {
                    proptest::prop_assert!(row.row >= 1);
                }
            }
        }
    }
}
