//! Keys and certificates made here, never on the server: Device CAs (and their proof of
//! possession), device certificates, firmware signing keys, user certificate requests.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use nerveshub_examples::{Client, Error as ApiError};
use nerveshub_pki::{CertOptions, DeviceCa, ProofPlacement, UnixTime};
use serde_json::json;

use crate::Ctx;
use crate::args::{CaCommand, CaCreateArgs, CaRegisterArgs, IssueArgs, KeyCommand};
use crate::config::{write_new, write_new_private};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Validity from an hour ago (clocks of devices and servers drift) to `days` from now.
fn validity(days: u32) -> Result<(UnixTime, UnixTime)> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .context("the clock is before 1970")?;
    let from = now.saturating_sub(Duration::from_secs(3600));
    let until = now + DAY * days;
    Ok((
        UnixTime::since_unix_epoch(from),
        UnixTime::since_unix_epoch(until),
    ))
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn load_ca(cert: &Path, key: &Path) -> Result<DeviceCa> {
    DeviceCa::from_pem(&read_text(cert)?, &read_text(key)?).with_context(|| {
        format!(
            "{} and {} are not a CA certificate and its private key",
            cert.display(),
            key.display()
        )
    })
}

pub(crate) async fn ca(ctx: &Ctx, command: CaCommand) -> Result<()> {
    let columns = &[
        ("serial", "serial"),
        ("description", "description"),
        ("not_after", "not_after"),
        ("jitp_product", "jitp"),
    ];
    match command {
        CaCommand::Create(args) => create_ca(ctx, &args),
        CaCommand::Register(args) => register_ca(ctx, args).await,
        CaCommand::List => {
            let cas = ctx.client()?.cas(&ctx.org()?).await?;
            let mut rows = cas.clone();
            // The table shows only the JITP product's name.
            for ca in rows.as_array_mut().into_iter().flatten() {
                ca["jitp"] = ca["jitp"]["product_name"].clone();
            }
            if ctx.out.json {
                ctx.out.raw(&cas);
            } else {
                ctx.out.list(&rows, columns);
            }
            Ok(())
        }
        CaCommand::Show { serial } => {
            ctx.out
                .object(&ctx.client()?.ca(&ctx.org()?, &serial).await?);
            Ok(())
        }
        CaCommand::Delete { serial } => {
            ctx.client()?.delete_ca(&ctx.org()?, &serial).await?;
            ctx.out.done(
                &format!("Unregistered Device CA {serial}"),
                &json!({"deleted": serial}),
            );
            Ok(())
        }
    }
}

fn create_ca(ctx: &Ctx, args: &CaCreateArgs) -> Result<()> {
    let (from, until) = validity(args.days)?;
    let ca = DeviceCa::generate(&CertOptions::new(args.name.clone(), from, until))
        .context("generating the CA")?;
    // The key first: if it cannot be written, no certificate without a key is left behind.
    write_new_private(&args.key_out, ca.private_key_pem().as_bytes())?;
    if let Err(e) = write_new(&args.out, ca.certificate().to_pem().as_bytes()) {
        let _ = std::fs::remove_file(&args.key_out);
        return Err(e);
    }
    let cert = ca.certificate();
    ctx.out.done(
        &format!(
            "Device CA {:?} (ECDSA P-256, serial {}) written to {} with its key in {} (mode 0600; keep it safe)",
            args.name,
            cert.serial(),
            args.out.display(),
            args.key_out.display()
        ),
        &json!({
            "serial": cert.serial(),
            "subject": cert.subject(),
            "certificate": args.out,
            "key": args.key_out,
        }),
    );
    Ok(())
}

async fn register_ca(ctx: &Ctx, args: CaRegisterArgs) -> Result<()> {
    let client = ctx.client()?;
    let org = ctx.org()?;
    let ca = load_ca(&args.cert, &args.key)?;
    // Proof of possession: the server's one-time token in a certificate the CA's key signs.
    let token = client.ca_verification_token(&org).await?;
    let (from, until) = validity(1)?;
    let proof = ca
        .verification_certificate(&token, ProofPlacement::SanUri, from, until)
        .context("signing the verification certificate")?;
    let mut body = json!({
        "cert": ca.certificate().to_pem(),
        "verification_cert": proof.to_pem(),
    });
    if let Some(description) = args.description {
        body["description"] = json!(description);
    }
    if let Some(product) = args.jitp_product {
        body["jitp"] = json!({
            "product_name": product,
            "tags": args.jitp_tags,
            "description": args.jitp_description.unwrap_or_default(),
        });
    }
    let registered = client.register_ca(&org, body).await?;
    ctx.out.done(
        &format!(
            "Registered Device CA {} in {org} (proof of possession checked)",
            registered["serial"].as_str().unwrap_or_default()
        ),
        &registered,
    );
    Ok(())
}

/// `device cert issue`: a device key and certificate from a local CA, optionally registered.
pub(crate) async fn issue(
    ctx: &Ctx,
    client: &Client,
    org: &str,
    product: &str,
    args: IssueArgs,
) -> Result<()> {
    let ca = load_ca(&args.ca, &args.ca_key)?;
    let (from, until) = validity(args.days)?;
    let (cert, key) = ca
        .issue_device(&CertOptions::new(args.identifier.clone(), from, until))
        .context("issuing the device certificate")?;
    let cert_path = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.pem", args.identifier)));
    let key_path = args
        .key_out
        .unwrap_or_else(|| PathBuf::from(format!("{}-key.pem", args.identifier)));
    write_new_private(&key_path, key.to_pem().as_bytes())?;
    if let Err(e) = write_new(&cert_path, cert.to_pem().as_bytes()) {
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    let result = json!({
        "identifier": args.identifier,
        "serial": cert.serial(),
        "certificate": cert_path,
        "key": key_path,
        "registered": args.register,
    });
    if args.register {
        match client.device(org, product, &args.identifier).await {
            Ok(_) => {}
            Err(ApiError::NotFound { .. }) => {
                client
                    .create_device(org, product, json!({"identifier": args.identifier}))
                    .await
                    .context("creating the device")?;
            }
            Err(e) => return Err(e.into()),
        }
        client
            .add_device_certificate(org, product, &args.identifier, &cert.to_pem())
            .await
            .context("adding the certificate to the device")?;
    }
    let registered = if args.register {
        format!(
            "; registered on device {} in {org}/{product}",
            args.identifier
        )
    } else {
        String::new()
    };
    ctx.out.done(
        &format!(
            "Certificate for {} (serial {}) written to {}, key to {} (mode 0600){registered}",
            args.identifier,
            cert.serial(),
            cert_path.display(),
            key_path.display()
        ),
        &result,
    );
    Ok(())
}

pub(crate) async fn key(ctx: &Ctx, command: KeyCommand) -> Result<()> {
    match command {
        KeyCommand::Create { output } => {
            let key = nerveshub_fwup::PrivateKey::generate().context("generating the key")?;
            let (public, private) = (format!("{output}.pub"), format!("{output}.priv"));
            // The same files as `fwup -g`: base64 of the public key, base64 of the 64-byte
            // private key, no newline, created new with mode 0600.
            let public_text = key.public_key().to_base64();
            write_new_private(Path::new(&public), public_text.as_bytes())?;
            if let Err(e) = write_new_private(Path::new(&private), key.to_base64().as_bytes()) {
                let _ = std::fs::remove_file(&public);
                return Err(e);
            }
            ctx.out.done(
                &format!(
                    "Firmware signing keys created and saved to '{public}' and '{private}'\n\
                     Register '{public}' with `nerveshub key register NAME --public-key {public}`; \
                     keep '{private}' safe"
                ),
                &json!({"public_key": public_text, "public_key_file": public, "private_key_file": private}),
            );
        }
        KeyCommand::Register { name, public_key } => {
            let bytes = std::fs::read(&public_key)
                .with_context(|| format!("reading {}", public_key.display()))?;
            let key = nerveshub_fwup::PublicKey::from_file_contents(
                &bytes,
                &public_key.display().to_string(),
            )
            .with_context(|| format!("{} is not a fwup public key", public_key.display()))?;
            let org = ctx.org()?;
            let registered = ctx
                .client()?
                .register_key(&org, &name, &key.to_base64())
                .await?;
            ctx.out
                .done(&format!("Registered key {name} in {org}"), &registered);
        }
        KeyCommand::List => {
            let keys = ctx.client()?.keys(&ctx.org()?).await?;
            ctx.out.list(&keys, &[("name", "name"), ("key", "key")]);
        }
        KeyCommand::Delete { name } => {
            ctx.client()?.delete_key(&ctx.org()?, &name).await?;
            ctx.out
                .done(&format!("Deleted key {name}"), &json!({"deleted": name}));
        }
    }
    Ok(())
}

/// `login --certificate`: a P-256 key made here, a CSR sent with `token`, the signed
/// certificate and the key saved beside the config (key mode 0600). Their paths.
pub(crate) async fn request_user_certificate(
    ctx: &Ctx,
    token: &str,
    note: &str,
) -> Result<(PathBuf, PathBuf)> {
    let client = ctx.anonymous_client()?.token(token).build()?;
    let me = client.me().await?;
    let email = me["email"].as_str().unwrap_or("user");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("generating the key")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .context("certificate request parameters")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, email);
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .context("making the certificate signing request")?;
    let answer = client.request_user_certificate(&csr, note).await?;
    let Some(cert) = answer["certificate"].as_str() else {
        bail!("the server's answer has no certificate: {answer}");
    };
    let dir = crate::account::config_dir(ctx)?;
    let (cert_path, key_path) = (dir.join("user.pem"), dir.join("user-key.pem"));
    // Replacing an older certificate of a previous login is intended here.
    for path in [&cert_path, &key_path] {
        let _ = std::fs::remove_file(path);
    }
    write_new_private(&key_path, key.serialize_pem().as_bytes())?;
    write_new_private(&cert_path, cert.as_bytes())?;
    Ok((cert_path, key_path))
}
