//! Signing in and out, orgs, products and members.

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::Ctx;
use crate::args::{LoginArgs, OrgCommand, ProductCommand, UserCommand};
use crate::config::{self, Config};
use crate::prompt;

pub(crate) async fn login(ctx: &Ctx, args: LoginArgs) -> Result<()> {
    let url = ctx.url()?;
    let anonymous = ctx.anonymous_client()?.build()?;
    let (token, who) = if args.token {
        let token = prompt::secret("API token")?;
        let client = ctx.anonymous_client()?.token(token.clone()).build()?;
        let me = client.me().await?;
        (token, me)
    } else {
        let email = args
            .email
            .context("pass --email EMAIL (the password is then asked for), or --token")?;
        let password = prompt::secret("Password")?;
        let answer = anonymous.sign_in(&email, &password, &args.note).await?;
        let token = answer["token"]
            .as_str()
            .context("the server's answer has no token")?
            .to_owned();
        (token, answer)
    };
    let mut config = ctx.config.clone();
    config.url = Some(url.clone());
    if let Some(ca) = &ctx.global.ca_file {
        config.ca_file = Some(std::path::absolute(ca).unwrap_or_else(|_| ca.clone()));
    }
    if args.certificate {
        let (cert, key) = crate::pki::request_user_certificate(ctx, &token, &args.note).await?;
        // The certificate alone signs in from now on: the token is not kept.
        config.token = None;
        config.certificate = Some(cert);
        config.certificate_key = Some(key);
    } else {
        config.token = Some(token);
        config.certificate = None;
        config.certificate_key = None;
    }
    ctx.save(&config)?;
    let email = who["email"].as_str().unwrap_or_default();
    let how = if args.certificate {
        "a user certificate"
    } else {
        "a token"
    };
    ctx.out.done(
        &format!(
            "Signed in to {url} as {email}; {how} saved in {}",
            ctx.config_path.display()
        ),
        &json!({"name": who["name"], "email": who["email"], "url": url}),
    );
    Ok(())
}

pub(crate) async fn logout(ctx: &Ctx) -> Result<()> {
    let mut config = ctx.config.clone();
    // A certificate made by `login --certificate` lives beside the config: remove it too.
    for path in [&config.certificate, &config.certificate_key]
        .into_iter()
        .flatten()
    {
        if path.parent() == ctx.config_path.parent() {
            let _ = std::fs::remove_file(path);
        }
    }
    config.token = None;
    config.certificate = None;
    config.certificate_key = None;
    ctx.save(&config)?;
    ctx.out.done("Signed out", &json!({"signed_out": true}));
    Ok(())
}

pub(crate) async fn whoami(ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    let me = client.me().await?;
    if ctx.out.json {
        ctx.out.raw(&me);
    } else {
        let name = me["name"].as_str().unwrap_or_default();
        let email = me["email"].as_str().unwrap_or_default();
        let who = if name.is_empty() {
            email.to_owned()
        } else {
            format!("{name} <{email}>")
        };
        crate::output::line(&format!("{who} on {}", client.base_url()));
    }
    Ok(())
}

pub(crate) async fn org(ctx: &Ctx, command: OrgCommand) -> Result<()> {
    let client = ctx.client()?;
    match command {
        OrgCommand::List => {
            let orgs = client.orgs().await?;
            ctx.out.list(&orgs, &[("name", "name"), ("role", "role")]);
        }
        OrgCommand::Create { name } => {
            let org = client.create_org(&name).await?;
            ctx.out.done(&format!("Created org {name}"), &org);
        }
        OrgCommand::Use { name } => {
            let orgs = client.orgs().await?;
            let known = orgs
                .as_array()
                .is_some_and(|list| list.iter().any(|o| o["name"] == name.as_str()));
            if !known {
                bail!("you are not a member of an org named {name:?} (see `nerveshub org list`)");
            }
            let mut config: Config = ctx.config.clone();
            if config.org.as_deref() != Some(name.as_str()) {
                config.product = None;
            }
            config.org = Some(name.clone());
            ctx.save(&config)?;
            ctx.out.done(
                &format!("Commands now act in org {name}"),
                &json!({"org": name}),
            );
        }
    }
    Ok(())
}

pub(crate) async fn product(ctx: &Ctx, command: ProductCommand) -> Result<()> {
    let client = ctx.client()?;
    let org = ctx.org()?;
    match command {
        ProductCommand::List => {
            let products = client.products(&org).await?;
            ctx.out.list(&products, &[("name", "name")]);
        }
        ProductCommand::Show { name } => ctx.out.object(&client.product(&org, &name).await?),
        ProductCommand::Create { name } => {
            let product = client.create_product(&org, &name).await?;
            ctx.out
                .done(&format!("Created product {name} in {org}"), &product);
        }
        ProductCommand::Rename { name, new_name } => {
            let product = client.rename_product(&org, &name, &new_name).await?;
            ctx.out
                .done(&format!("Renamed product {name} to {new_name}"), &product);
        }
        ProductCommand::Delete { name } => {
            client.delete_product(&org, &name).await?;
            ctx.out.done(
                &format!("Deleted product {name}"),
                &json!({"deleted": name}),
            );
        }
        ProductCommand::Use { name } => {
            client.product(&org, &name).await?;
            let mut config = ctx.config.clone();
            config.org = Some(org.clone());
            config.product = Some(name.clone());
            ctx.save(&config)?;
            ctx.out.done(
                &format!("Commands now act in product {name} of org {org}"),
                &json!({"org": org, "product": name}),
            );
        }
    }
    Ok(())
}

pub(crate) async fn user(ctx: &Ctx, command: UserCommand) -> Result<()> {
    let client = ctx.client()?;
    let columns = &[("email", "email"), ("name", "name"), ("role", "role")];
    match command {
        UserCommand::Create { email, name } => {
            let password = prompt::secret("Password for the new user")?;
            let user = client.create_user(&email, &name, &password).await?;
            ctx.out.done(&format!("Created user {email}"), &user);
        }
        UserCommand::Certificates => {
            let certs = client.user_certificates().await?;
            ctx.out.list(
                &certs,
                &[
                    ("serial", "serial"),
                    ("note", "note"),
                    ("not_after", "not_after"),
                    ("revoked", "revoked_at"),
                ],
            );
        }
        UserCommand::RevokeCertificate { serial } => {
            client.revoke_user_certificate(&serial).await?;
            ctx.out.done(
                &format!("Revoked user certificate {serial}"),
                &json!({"revoked": serial}),
            );
        }
        UserCommand::List => {
            let members = client.members(&ctx.org()?).await?;
            ctx.out.list(&members, columns);
        }
        UserCommand::Add { email, role } => {
            let org = ctx.org()?;
            let member = client.add_member(&org, &email, role.as_str()).await?;
            ctx.out.done(
                &format!("Added {email} to {org} as {}", role.as_str()),
                &member,
            );
        }
        UserCommand::Update { email, role } => {
            let org = ctx.org()?;
            let member = client.update_member(&org, &email, role.as_str()).await?;
            ctx.out.done(
                &format!("{email} is now {} in {org}", role.as_str()),
                &member,
            );
        }
        UserCommand::Remove { email } => {
            let org = ctx.org()?;
            client.remove_member(&org, &email).await?;
            ctx.out.done(
                &format!("Removed {email} from {org}"),
                &json!({"removed": email}),
            );
        }
    }
    Ok(())
}

/// The config directory (for files `login --certificate` keeps beside the config).
pub(crate) fn config_dir(ctx: &Ctx) -> Result<std::path::PathBuf> {
    let dir = ctx
        .config_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| std::path::PathBuf::from("."), std::path::Path::to_owned);
    config::create_private_dir(&dir)?;
    Ok(dir)
}
