//! `nerveshub`: the command-line tool for a NervesHub server, for people (tables) and
//! scripts (`--json`, exit codes). Built on the API client of this package's library
//! ([`nerveshub_examples::Client`]); `nerveshub --help` lists the commands, each with an
//! example.

mod account;
mod args;
mod config;
mod deployments;
mod devices;
mod firmware;
mod output;
mod pki;
mod prompt;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{CommandFactory as _, Parser as _};
use nerveshub_examples::{Client, Error as ApiError};

use args::{Cli, Command, Global};
use config::Config;
use output::Out;

/// Everything a command needs: the flags, the saved configuration, the output mode.
pub(crate) struct Ctx {
    pub(crate) global: Global,
    pub(crate) config_path: PathBuf,
    pub(crate) config: Config,
    pub(crate) out: Out,
}

impl Ctx {
    /// The server URL: `--url`/`NERVESHUB_URL`, else the saved one.
    pub(crate) fn url(&self) -> Result<String> {
        self.global
            .url
            .clone()
            .or_else(|| self.config.url.clone())
            .context(
                "no server URL: run `nerveshub login --url URL`, or pass --url / set NERVESHUB_URL",
            )
    }

    /// The CA file to trust: `--ca-file`, else the saved one.
    pub(crate) fn ca_file(&self) -> Option<PathBuf> {
        self.global
            .ca_file
            .clone()
            .or_else(|| self.config.ca_file.clone())
    }

    /// A client without credentials (for signing in).
    pub(crate) fn anonymous_client(&self) -> Result<nerveshub_examples::ClientBuilder> {
        let mut builder = Client::builder(self.url()?);
        if let Some(ca) = self.ca_file() {
            let pem = std::fs::read(&ca).with_context(|| format!("reading {}", ca.display()))?;
            builder = builder.ca_pem(pem);
        }
        Ok(builder)
    }

    /// A client with the credentials: `NERVESHUB_TOKEN`, else the saved token, else the saved
    /// user certificate.
    pub(crate) fn client(&self) -> Result<Client> {
        let mut builder = self.anonymous_client()?;
        let token = std::env::var("NERVESHUB_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| self.config.token.clone());
        if let Some(token) = token {
            builder = builder.token(token);
        } else if let (Some(cert), Some(key)) =
            (&self.config.certificate, &self.config.certificate_key)
        {
            let mut pem =
                std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
            pem.extend(std::fs::read(key).with_context(|| format!("reading {}", key.display()))?);
            builder = builder.identity_pem(pem);
        } else {
            bail!(NotSignedIn);
        }
        Ok(builder.build()?)
    }

    /// The org to act in.
    pub(crate) fn org(&self) -> Result<String> {
        self.global
            .org
            .clone()
            .or_else(|| self.config.org.clone())
            .context("no org: pass --org NAME, set NERVESHUB_ORG, or run `nerveshub org use NAME`")
    }

    /// The org and product to act in.
    pub(crate) fn product(&self) -> Result<(String, String)> {
        let org = self.org()?;
        let product = self
            .global
            .product
            .clone()
            .or_else(|| self.config.product.clone())
            .context(
                "no product: pass --product NAME, set NERVESHUB_PRODUCT, or run `nerveshub product use NAME`",
            )?;
        Ok((org, product))
    }

    /// Saves a changed configuration.
    pub(crate) fn save(&self, config: &Config) -> Result<()> {
        config.save(&self.config_path)
    }
}

/// No credentials at all: the same advice as a 401.
#[derive(Debug, thiserror::Error)]
#[error("not signed in")]
pub(crate) struct NotSignedIn;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = &cli.command {
        let mut command = Cli::command();
        clap_complete::generate(*shell, &mut command, "nerveshub", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let needs = cli.command.needs();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            prompt::error_line(&format!("error: starting the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let org = cli.global.org.clone();
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e, needs, org.as_deref()),
    }
}

async fn run(cli: Cli) -> Result<()> {
    let config_path = match &cli.global.config {
        Some(path) => path.clone(),
        None => config::default_path()?,
    };
    let config = Config::load(&config_path)?;
    let ctx = Ctx {
        out: Out {
            json: cli.global.json,
        },
        global: cli.global,
        config_path,
        config,
    };
    match cli.command {
        Command::Login(args) => account::login(&ctx, args).await,
        Command::Logout => account::logout(&ctx).await,
        Command::Whoami => account::whoami(&ctx).await,
        Command::Org(command) => account::org(&ctx, command).await,
        Command::Product(command) => account::product(&ctx, command).await,
        Command::User(command) => account::user(&ctx, command).await,
        Command::Device(command) => devices::device(&ctx, command).await,
        Command::Secret(command) => devices::secret(&ctx, command).await,
        Command::Ca(command) => pki::ca(&ctx, command).await,
        Command::Key(command) => pki::key(&ctx, command).await,
        Command::Firmware(command) => firmware::firmware(&ctx, command).await,
        Command::Deployment(command) => deployments::deployment(&ctx, command).await,
        Command::Completions { .. } => Ok(()),
    }
}

/// Prints the error as one clear line (plus a hint) and picks the exit status.
fn report(error: &anyhow::Error, needs: &str, org: Option<&str>) -> ExitCode {
    let mut lines = vec![format!("error: {}", chain(error))];
    let code = if error.downcast_ref::<NotSignedIn>().is_some() {
        lines = vec!["error: not signed in: run `nerveshub login` first".to_owned()];
        4
    } else if let Some(api) = error.downcast_ref::<ApiError>() {
        match api {
            ApiError::Unreachable { url, source } => {
                lines = vec![format!(
                    "error: cannot reach the server at {url}: {}",
                    source_chain(source)
                )];
                lines.push(
                    "hint: is the server running, and is the URL right (--url, NERVESHUB_URL, `nerveshub login`)?"
                        .to_owned(),
                );
                3
            }
            ApiError::Unauthorized => {
                lines.push(
                    "hint: the token is missing, wrong, expired or revoked: run `nerveshub login`"
                        .to_owned(),
                );
                4
            }
            ApiError::Forbidden { .. } => {
                let org = org.map_or_else(String::new, |o| format!(" in org {o}"));
                lines.push(if needs == "server admin" {
                    "hint: this needs a server admin account".to_owned()
                } else {
                    format!("hint: your role{org} is too low: this needs the `{needs}` role")
                });
                5
            }
            ApiError::NotFound { .. } => {
                lines.push(
                    "hint: check the names (org, product, identifier, UUID); orgs you are not a member of look missing too"
                        .to_owned(),
                );
                6
            }
            ApiError::Conflict { .. } => 7,
            ApiError::Validation { fields } => {
                lines = vec!["error: the server refused the input (HTTP 422):".to_owned()];
                for (field, messages) in fields {
                    for message in messages {
                        lines.push(format!("  {field}: {message}"));
                    }
                }
                8
            }
            _ => 1,
        }
    } else {
        1
    };
    for line in lines {
        prompt::error_line(&line);
    }
    ExitCode::from(code)
}

/// `context: cause: cause`, each message once.
fn chain(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn source_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
