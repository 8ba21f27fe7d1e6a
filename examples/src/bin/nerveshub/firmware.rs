//! Firmware: signed here with a local private key, checked here against the org's keys
//! before an upload, then published, listed, downloaded, deleted.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use nerveshub_fwup::{PrivateKey, PublicKey, SignatureStatus, Variables};
use serde_json::{Value, json};

use crate::Ctx;
use crate::args::FirmwareCommand;
use crate::prompt;

const COLUMNS: &[crate::output::Column] = &[
    ("uuid", "uuid"),
    ("version", "version"),
    ("platform", "platform"),
    ("architecture", "architecture"),
    ("size", "size"),
];

pub(crate) async fn firmware(ctx: &Ctx, command: FirmwareCommand) -> Result<()> {
    match command {
        FirmwareCommand::Sign {
            file,
            private_key,
            output,
        } => sign(ctx, &file, &private_key, output),
        FirmwareCommand::Publish { file } => publish(ctx, &file).await,
        FirmwareCommand::List => {
            let (org, product) = ctx.product()?;
            let list = ctx.client()?.firmwares(&org, &product).await?;
            ctx.out.list(&list, COLUMNS);
            Ok(())
        }
        FirmwareCommand::Show { uuid } => {
            let (org, product) = ctx.product()?;
            ctx.out
                .object(&ctx.client()?.firmware(&org, &product, &uuid).await?);
            Ok(())
        }
        FirmwareCommand::Download { uuid, output } => {
            let (org, product) = ctx.product()?;
            let out = output.unwrap_or_else(|| PathBuf::from(format!("{uuid}.fw")));
            let size = ctx
                .client()?
                .download_firmware(&org, &product, &uuid, &out)
                .await?;
            ctx.out.done(
                &format!("Downloaded {uuid} to {} ({size} bytes)", out.display()),
                &json!({"uuid": uuid, "file": out, "size": size}),
            );
            Ok(())
        }
        FirmwareCommand::Delete { uuid } => {
            let (org, product) = ctx.product()?;
            ctx.client()?.delete_firmware(&org, &product, &uuid).await?;
            ctx.out.done(
                &format!("Deleted firmware {uuid}"),
                &json!({"deleted": uuid}),
            );
            Ok(())
        }
    }
}

fn sign(ctx: &Ctx, file: &Path, key_file: &Path, output: Option<PathBuf>) -> Result<()> {
    let bytes =
        std::fs::read(key_file).with_context(|| format!("reading {}", key_file.display()))?;
    let key = PrivateKey::from_file_contents(&bytes, &key_file.display().to_string())
        .with_context(|| format!("{} is not a fwup private key", key_file.display()))?;
    let output = output.unwrap_or_else(|| file.to_owned());
    // fwup's rule for reproducible archives: SOURCE_DATE_EPOCH, else now.
    let creation_time = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        });
    nerveshub_fwup::sign_file(file, &output, &key, creation_time)
        .with_context(|| format!("signing {}", file.display()))?;
    let public = key.public_key().to_base64();
    ctx.out.done(
        &format!(
            "Signed {} with the key whose public half is {public}",
            output.display()
        ),
        &json!({"file": output, "public_key": public}),
    );
    Ok(())
}

/// Verifies the whole archive against `keys` (off the async runtime: it reads the file):
/// the index of the key that signed it and the firmware's meta-product.
async fn check_locally(file: &Path, keys: Vec<PublicKey>) -> Result<(usize, Option<String>)> {
    let path = file.to_owned();
    tokio::task::spawn_blocking(move || {
        let reader = std::io::BufReader::new(
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?,
        );
        let verified = nerveshub_fwup::verify(reader, &keys, &Variables::default())?;
        let product = verified.firmware_info().metadata().product.clone();
        match verified.signature() {
            SignatureStatus::Verified { key_index } => Ok((key_index, product)),
            other => bail!("signature not verified ({other:?})"),
        }
    })
    .await
    .context("the verification task failed")?
}

async fn publish(ctx: &Ctx, file: &Path) -> Result<()> {
    let client = ctx.client()?;
    let org = ctx.org()?;
    let registered = client.keys(&org).await?;
    let mut names = Vec::new();
    let mut keys = Vec::new();
    for key in registered.as_array().into_iter().flatten() {
        if let Some(public) = key["key"]
            .as_str()
            .and_then(|k| PublicKey::from_base64(k).ok())
        {
            names.push(key["name"].as_str().unwrap_or_default().to_owned());
            keys.push(public);
        }
    }
    if keys.is_empty() {
        bail!(
            "org {org} has no firmware signing key: register one first (`nerveshub key register NAME --public-key fwup-key.pub`)"
        );
    }
    // Refuse here, before sending megabytes the server would refuse anyway.
    let (index, meta_product) = check_locally(file, keys).await.with_context(|| {
        format!(
            "{} does not verify against any of org {org}'s keys ({}); sign it with `nerveshub firmware sign`",
            file.display(),
            names.join(", ")
        )
    })?;
    // The product: the one given or saved, else the firmware's own meta-product.
    let product = match ctx.product() {
        Ok((_, product)) => product,
        Err(e) => meta_product.context(e)?,
    };
    let show = !ctx.out.json && prompt::interactive();
    let label = file
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let firmware: Value = client
        .upload_firmware(&org, &product, file, move |sent, total| {
            if show {
                prompt::progress(&label, sent, total);
            }
        })
        .await?;
    ctx.out.done(
        &format!(
            "Published {} to {org}/{product}: uuid {}, version {} (signed with key {})",
            file.display(),
            firmware["uuid"].as_str().unwrap_or_default(),
            firmware["version"].as_str().unwrap_or_default(),
            names[index]
        ),
        &firmware,
    );
    Ok(())
}
