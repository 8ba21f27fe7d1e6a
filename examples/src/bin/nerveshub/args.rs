//! The command line: every command, its flags and its `--help` example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit status: 0 success; 1 other errors; 2 bad usage; 3 server unreachable; 4 not signed in \
(HTTP 401: run `nerveshub login`); 5 role too low (403); 6 not found (404); 7 conflict, e.g. \
device offline (409); 8 invalid fields (422).

Settings come from flags, then NERVESHUB_URL, NERVESHUB_TOKEN, NERVESHUB_ORG, \
NERVESHUB_PRODUCT, then ~/.config/nerveshub/config.toml (written by `nerveshub login`).

Example:
  nerveshub login --url http://127.0.0.1:4000 --email me@example.com
  nerveshub org create acme && nerveshub product create gizmo --org acme";

#[derive(Parser, Debug)]
#[command(
    name = "nerveshub",
    version,
    about = "Manage a NervesHub server: orgs, products, devices, certificates, firmware, deployments",
    after_help = EXIT_CODES
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Args, Debug, Clone)]
pub(crate) struct Global {
    /// Server URL, e.g. http://127.0.0.1:4000 [default: the one `login` saved]
    #[arg(long, global = true, env = "NERVESHUB_URL")]
    pub(crate) url: Option<String>,
    /// Org to act in [default: the one saved with `org use`]
    #[arg(long, global = true, env = "NERVESHUB_ORG")]
    pub(crate) org: Option<String>,
    /// Product to act in [default: the one saved with `product use`]
    #[arg(long, short = 'p', global = true, env = "NERVESHUB_PRODUCT")]
    pub(crate) product: Option<String>,
    /// Print the API's JSON instead of tables
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// PEM CA certificate(s) to trust for https:// servers and firmware downloads (e.g. a
    /// development server's nerveshub-data/tls/ca.pem)
    #[arg(long, global = true, env = "NERVESHUB_CA_FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Configuration file [default: ~/.config/nerveshub/config.toml]
    #[arg(long, global = true, env = "NERVESHUB_CONFIG")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Sign in and save the server URL and an API token (or a user certificate)
    #[command(
        after_help = "Examples:\n  nerveshub login --url http://127.0.0.1:4000 --email jane@example.com\n  \
        echo \"$TOKEN\" | nerveshub login --url http://127.0.0.1:4000 --token\n  \
        nerveshub login --url https://127.0.0.1:4443 --ca-file ca.pem --email jane@example.com --certificate"
    )]
    Login(LoginArgs),
    /// Forget the saved token (and user certificate)
    #[command(after_help = "Example:\n  nerveshub logout")]
    Logout,
    /// Show who the saved credentials sign in as
    #[command(after_help = "Example:\n  nerveshub whoami --json")]
    Whoami,
    /// Orgs: list, create, choose the default
    #[command(subcommand)]
    Org(OrgCommand),
    /// Products of an org
    #[command(subcommand)]
    Product(ProductCommand),
    /// Org members and their roles; user accounts (server admins)
    #[command(subcommand)]
    User(UserCommand),
    /// Devices of a product
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Shared secrets (NH1) of a product or of one device
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Device CAs: make one locally, register it with proof of possession
    #[command(subcommand)]
    Ca(CaCommand),
    /// Firmware signing keys (fwup Ed25519 keys)
    #[command(subcommand)]
    Key(KeyCommand),
    /// Firmware: sign locally, publish, list, download
    #[command(subcommand)]
    Firmware(FirmwareCommand),
    /// Deployments: which firmware goes to which devices
    #[command(subcommand)]
    Deployment(DeploymentCommand),
    /// Print a shell completion script
    #[command(
        after_help = "Example:\n  nerveshub completions bash > ~/.local/share/bash-completion/completions/nerveshub"
    )]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
pub(crate) struct LoginArgs {
    /// Email to sign in with; the password is read from the terminal (or stdin)
    #[arg(long, conflicts_with = "token")]
    pub(crate) email: Option<String>,
    /// Paste an existing API token instead (read from the terminal or stdin, never argv)
    #[arg(long)]
    pub(crate) token: bool,
    /// Also request a user certificate (key made and kept here) and sign in with it on the
    /// server's HTTPS API instead of a token
    #[arg(long)]
    pub(crate) certificate: bool,
    /// A note stored with the token on the server
    #[arg(long, default_value = "nerveshub CLI")]
    pub(crate) note: String,
}

#[derive(Subcommand, Debug)]
pub(crate) enum OrgCommand {
    /// The orgs you belong to, with your role
    #[command(after_help = "Example:\n  nerveshub org list")]
    List,
    /// Create an org (you become its admin)
    #[command(after_help = "Example:\n  nerveshub org create acme")]
    Create {
        /// Letters, digits, '-', '_' and '.'
        name: String,
    },
    /// Save the org commands act in by default
    #[command(after_help = "Example:\n  nerveshub org use acme")]
    Use {
        /// The org's name
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ProductCommand {
    /// The org's products
    #[command(after_help = "Example:\n  nerveshub product list --org acme")]
    List,
    /// One product
    #[command(after_help = "Example:\n  nerveshub product show gizmo")]
    Show {
        /// The product's name
        name: String,
    },
    /// Create a product (org admins)
    #[command(after_help = "Example:\n  nerveshub product create gizmo --org acme")]
    Create {
        /// The product's name (firmware's meta-product)
        name: String,
    },
    /// Rename a product
    #[command(after_help = "Example:\n  nerveshub product rename gizmo gizmo2")]
    Rename {
        /// The current name
        name: String,
        /// The new name
        new_name: String,
    },
    /// Delete a product (org admins)
    #[command(after_help = "Example:\n  nerveshub product delete gizmo")]
    Delete {
        /// The product's name
        name: String,
    },
    /// Save the product commands act in by default
    #[command(after_help = "Example:\n  nerveshub product use gizmo")]
    Use {
        /// The product's name
        name: String,
    },
}

/// An org role.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub(crate) enum RoleArg {
    /// Everything, members included
    Admin,
    /// Devices, keys, firmware, deployments
    Manage,
    /// Read only
    View,
}

impl RoleArg {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RoleArg::Admin => "admin",
            RoleArg::Manage => "manage",
            RoleArg::View => "view",
        }
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum UserCommand {
    /// The org's members and roles (org admins)
    #[command(after_help = "Example:\n  nerveshub user list --org acme")]
    List,
    /// Add an existing user to the org with a role
    #[command(after_help = "Example:\n  nerveshub user add jane@example.com --role manage")]
    Add {
        /// The user's email
        email: String,
        /// The role in the org
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Change a member's role
    #[command(after_help = "Example:\n  nerveshub user update jane@example.com --role view")]
    Update {
        /// The member's email
        email: String,
        /// The new role
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Remove a member from the org
    #[command(after_help = "Example:\n  nerveshub user remove jane@example.com")]
    Remove {
        /// The member's email
        email: String,
    },
    /// Your user certificates (made by `login --certificate`)
    #[command(after_help = "Example:\n  nerveshub user certificates")]
    Certificates,
    /// Revoke one of your user certificates: it no longer signs in
    #[command(after_help = "Example:\n  nerveshub user revoke-certificate 1234567890")]
    RevokeCertificate {
        /// The certificate's serial (decimal, as listed)
        serial: String,
    },
    /// Create a user account (server admins); the password is read from the terminal or stdin
    #[command(
        after_help = "Example:\n  echo 'a long password' | nerveshub user create jane@example.com --name Jane"
    )]
    Create {
        /// The new user's email
        email: String,
        /// Display name
        #[arg(long, default_value = "")]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum DeviceCommand {
    /// The product's devices (filters, pagination)
    #[command(
        after_help = "Examples:\n  nerveshub device list --tag eu --online\n  nerveshub device list --search nerves- --all --json"
    )]
    List(DeviceListArgs),
    /// One device: connection, firmware, tags
    #[command(after_help = "Example:\n  nerveshub device show nerves-0001")]
    Show {
        /// The device's identifier
        identifier: String,
    },
    /// Create a device
    #[command(
        after_help = "Example:\n  nerveshub device create nerves-0001 --description 'bench unit' --tag beta --tag eu"
    )]
    Create {
        /// The device's identifier (its certificate's common name)
        identifier: String,
        /// Free text
        #[arg(long)]
        description: Option<String>,
        /// A tag (repeat for more)
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Change a device's tags, description or whether it takes updates
    #[command(
        after_help = "Example:\n  nerveshub device update nerves-0001 --tags beta,eu --updates-enabled false"
    )]
    Update {
        /// The device's identifier
        identifier: String,
        /// The new tags, comma-separated (replaces the old ones; empty clears them)
        #[arg(long)]
        tags: Option<String>,
        /// The new description
        #[arg(long)]
        description: Option<String>,
        /// Whether the device takes updates
        #[arg(long)]
        updates_enabled: Option<bool>,
    },
    /// Delete a device with its certificates and secrets
    #[command(after_help = "Example:\n  nerveshub device delete nerves-0001")]
    Delete {
        /// The device's identifier
        identifier: String,
    },
    /// Create devices from a CSV file (identifier,description,tags), reporting each row
    #[command(after_help = "Example (tags separated by ';' or spaces):\n  \
        printf 'identifier,description,tags\\nnerves-1,bench,beta;eu\\n' > devices.csv\n  \
        nerveshub device import devices.csv")]
    Import {
        /// The CSV file; a first row naming `identifier` is a header
        file: PathBuf,
    },
    /// Ask a connected device to reboot
    #[command(after_help = "Example:\n  nerveshub device reboot nerves-0001")]
    Reboot {
        /// The device's identifier
        identifier: String,
    },
    /// Close a connected device's socket; it reconnects
    #[command(after_help = "Example:\n  nerveshub device reconnect nerves-0001")]
    Reconnect {
        /// The device's identifier
        identifier: String,
    },
    /// Ask a connected device to identify itself (blink an LED)
    #[command(after_help = "Example:\n  nerveshub device identify nerves-0001")]
    Identify {
        /// The device's identifier
        identifier: String,
    },
    /// Push a firmware of the product to a connected device now
    #[command(
        after_help = "Example:\n  nerveshub device upgrade nerves-0001 --firmware 59b5ec24-5bdf-5d62-04a8-53ad5e52706c"
    )]
    Upgrade {
        /// The device's identifier
        identifier: String,
        /// The firmware's UUID
        #[arg(long)]
        firmware: String,
    },
    /// Let a device penalised for failed updates take updates again
    #[command(after_help = "Example:\n  nerveshub device clear-penalty nerves-0001")]
    ClearPenalty {
        /// The device's identifier
        identifier: String,
    },
    /// The device's updates, oldest first
    #[command(after_help = "Example:\n  nerveshub device updates nerves-0001")]
    Updates {
        /// The device's identifier
        identifier: String,
    },
    /// The device's certificates; issue one from a local CA
    #[command(subcommand)]
    Cert(DeviceCertCommand),
}

#[derive(Args, Debug)]
pub(crate) struct DeviceListArgs {
    /// Only devices with this tag
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// Only devices whose identifier contains this
    #[arg(long)]
    pub(crate) search: Option<String>,
    /// Only connected devices
    #[arg(long, conflicts_with = "offline")]
    pub(crate) online: bool,
    /// Only devices not connected
    #[arg(long)]
    pub(crate) offline: bool,
    /// The page to show (from 1)
    #[arg(long, default_value_t = 1, conflicts_with = "all")]
    pub(crate) page: u32,
    /// Devices per page (1 to 100)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) page_size: u32,
    /// Every page
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum DeviceCertCommand {
    /// The device's certificates
    #[command(after_help = "Example:\n  nerveshub device cert list nerves-0001")]
    List {
        /// The device's identifier
        identifier: String,
    },
    /// Add a certificate (PEM) the device may authenticate with
    #[command(after_help = "Example:\n  nerveshub device cert add nerves-0001 nerves-0001.pem")]
    Add {
        /// The device's identifier
        identifier: String,
        /// The PEM certificate file
        file: PathBuf,
    },
    /// Remove a certificate, by decimal serial
    #[command(after_help = "Example:\n  nerveshub device cert remove nerves-0001 1234567890")]
    Remove {
        /// The device's identifier
        identifier: String,
        /// The certificate's serial (decimal, as listed)
        serial: String,
    },
    /// Sign a device certificate (CN = identifier, clientAuth) with a local CA
    #[command(
        after_help = "Example:\n  nerveshub device cert issue nerves-0001 --ca devca.pem --ca-key ca-key.pem --register"
    )]
    Issue(IssueArgs),
}

#[derive(Args, Debug)]
pub(crate) struct IssueArgs {
    /// The device's identifier (the certificate's common name)
    pub(crate) identifier: String,
    /// The CA certificate (PEM)
    #[arg(long, default_value = "devca.pem")]
    pub(crate) ca: PathBuf,
    /// The CA's private key (PEM)
    #[arg(long, default_value = "ca-key.pem")]
    pub(crate) ca_key: PathBuf,
    /// Where to write the certificate [default: IDENTIFIER.pem]
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Where to write the new private key [default: IDENTIFIER-key.pem]
    #[arg(long)]
    pub(crate) key_out: Option<PathBuf>,
    /// Days the certificate is valid
    #[arg(long, default_value_t = 365 * 10)]
    pub(crate) days: u32,
    /// Also create the device (if missing) and add the certificate to it on the server
    #[arg(long)]
    pub(crate) register: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum SecretCommand {
    /// The shared-secret keys (secrets are never shown again)
    #[command(after_help = "Example:\n  nerveshub secret list --device nerves-0001")]
    List {
        /// A device's secrets instead of the product's
        #[arg(long)]
        device: Option<String>,
    },
    /// Create a shared secret; the secret is shown once
    #[command(after_help = "Example:\n  nerveshub secret create --json > secret.json")]
    Create {
        /// A device secret (nhd_) instead of a product one (nhp_)
        #[arg(long)]
        device: Option<String>,
    },
    /// Deactivate a shared secret
    #[command(after_help = "Example:\n  nerveshub secret delete nhp_abc")]
    Delete {
        /// The key (nhp_… or nhd_…)
        key: String,
        /// The device the key belongs to
        #[arg(long)]
        device: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum CaCommand {
    /// Make a Device CA key and self-signed certificate locally (ECDSA P-256)
    #[command(after_help = "Example:\n  nerveshub ca create --name acme-devices")]
    Create(CaCreateArgs),
    /// Register a Device CA with the org, proving possession of its key automatically
    #[command(
        after_help = "Example:\n  nerveshub ca register devca.pem --key ca-key.pem --jitp-product gizmo --jitp-tag beta"
    )]
    Register(CaRegisterArgs),
    /// The org's Device CAs
    #[command(after_help = "Example:\n  nerveshub ca list")]
    List,
    /// One Device CA, by decimal serial
    #[command(after_help = "Example:\n  nerveshub ca show 1234567890")]
    Show {
        /// The CA's serial (decimal)
        serial: String,
    },
    /// Unregister a Device CA
    #[command(after_help = "Example:\n  nerveshub ca delete 1234567890")]
    Delete {
        /// The CA's serial (decimal)
        serial: String,
    },
}

#[derive(Args, Debug)]
pub(crate) struct CaCreateArgs {
    /// The CA's common name
    #[arg(long, default_value = "NervesHub Device CA")]
    pub(crate) name: String,
    /// Where to write the certificate
    #[arg(long, default_value = "devca.pem")]
    pub(crate) out: PathBuf,
    /// Where to write the private key (mode 0600)
    #[arg(long, default_value = "ca-key.pem")]
    pub(crate) key_out: PathBuf,
    /// Days the CA is valid
    #[arg(long, default_value_t = 365 * 20)]
    pub(crate) days: u32,
}

#[derive(Args, Debug)]
pub(crate) struct CaRegisterArgs {
    /// The CA certificate (PEM)
    #[arg(default_value = "devca.pem")]
    pub(crate) cert: PathBuf,
    /// The CA's private key, used here only to sign the proof of possession
    #[arg(long, default_value = "ca-key.pem")]
    pub(crate) key: PathBuf,
    /// Free text
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// Just-in-time provisioning: devices this CA signed are created in this product on
    /// their first connection
    #[arg(long)]
    pub(crate) jitp_product: Option<String>,
    /// Tags given to JITP devices (repeat for more)
    #[arg(long = "jitp-tag", requires = "jitp_product")]
    pub(crate) jitp_tags: Vec<String>,
    /// Description given to JITP devices
    #[arg(long, requires = "jitp_product")]
    pub(crate) jitp_description: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum KeyCommand {
    /// Make a firmware signing key pair: PREFIX.pub and PREFIX.priv, as `fwup -g`
    #[command(after_help = "Example:\n  nerveshub key create --output fwup-key")]
    Create {
        /// File name prefix
        #[arg(long, short = 'o', default_value = "fwup-key")]
        output: String,
    },
    /// Register a public key with the org
    #[command(after_help = "Example:\n  nerveshub key register prod --public-key fwup-key.pub")]
    Register {
        /// The key's name in the org
        name: String,
        /// The fwup public key file
        #[arg(long, default_value = "fwup-key.pub")]
        public_key: PathBuf,
    },
    /// The org's signing keys
    #[command(after_help = "Example:\n  nerveshub key list")]
    List,
    /// Delete a signing key (refused while firmware uses it)
    #[command(after_help = "Example:\n  nerveshub key delete prod")]
    Delete {
        /// The key's name
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum FirmwareCommand {
    /// Sign a .fw locally with a private key (the key never leaves this machine)
    #[command(
        after_help = "Example:\n  nerveshub firmware sign app.fw --private-key fwup-key.priv"
    )]
    Sign {
        /// The archive
        file: PathBuf,
        /// The fwup private key file
        #[arg(long, default_value = "fwup-key.priv")]
        private_key: PathBuf,
        /// Where to write the signed archive [default: in place]
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Upload a .fw (checked first against the org's keys)
    #[command(after_help = "Example:\n  nerveshub firmware publish app.fw --product gizmo")]
    Publish {
        /// The archive
        file: PathBuf,
    },
    /// The product's firmware
    #[command(after_help = "Example:\n  nerveshub firmware list")]
    List,
    /// One firmware
    #[command(
        after_help = "Example:\n  nerveshub firmware show 59b5ec24-5bdf-5d62-04a8-53ad5e52706c"
    )]
    Show {
        /// The firmware's UUID
        uuid: String,
    },
    /// Download a firmware
    #[command(
        after_help = "Example:\n  nerveshub firmware download 59b5ec24-5bdf-5d62-04a8-53ad5e52706c -o app.fw"
    )]
    Download {
        /// The firmware's UUID
        uuid: String,
        /// Output file [default: UUID.fw]
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Delete a firmware no update refers to
    #[command(
        after_help = "Example:\n  nerveshub firmware delete 59b5ec24-5bdf-5d62-04a8-53ad5e52706c"
    )]
    Delete {
        /// The firmware's UUID
        uuid: String,
    },
}

/// How a deployment's tags must match a device's.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub(crate) enum TagOperator {
    /// The device has every tag
    And,
    /// The device has at least one tag
    Or,
}

#[derive(Args, Debug)]
pub(crate) struct DeploymentSettings {
    /// Version requirement devices must match, e.g. ">= 1.0.0" (empty: any)
    #[arg(long)]
    pub(crate) version: Option<String>,
    /// A tag devices must have (repeat for more)
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// How the tags match
    #[arg(long, value_enum)]
    pub(crate) tag_operator: Option<TagOperator>,
    /// Free text
    #[arg(long)]
    pub(crate) notes: Option<String>,
    /// How many devices update at once
    #[arg(long)]
    pub(crate) concurrent_updates: Option<u32>,
    /// Any other deployment field, e.g. --set halt_failure_rate=50 --set require_validated=true
    /// (the value is read as JSON when it parses, else as a string)
    #[arg(long = "set", value_name = "FIELD=VALUE", value_parser = parse_field)]
    pub(crate) fields: Vec<(String, serde_json::Value)>,
}

/// `FIELD=VALUE` with VALUE as JSON when it parses (`50`, `true`, `null`), else a string.
fn parse_field(text: &str) -> Result<(String, serde_json::Value), String> {
    let (field, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not FIELD=VALUE"))?;
    if field.is_empty() {
        return Err(format!("{text:?} has no field name"));
    }
    let value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    Ok((field.to_owned(), value))
}

#[derive(Subcommand, Debug)]
pub(crate) enum DeploymentCommand {
    /// Create a deployment (it starts off)
    #[command(
        after_help = "Example:\n  nerveshub deployment create beta --firmware 59b5ec24-… --version '>= 1.0.0' --tag beta --set halt_failure_rate=50"
    )]
    Create {
        /// The deployment's name
        name: String,
        /// The firmware's UUID
        #[arg(long)]
        firmware: String,
        #[command(flatten)]
        settings: DeploymentSettings,
    },
    /// The product's deployments
    #[command(after_help = "Example:\n  nerveshub deployment list")]
    List,
    /// One deployment
    #[command(after_help = "Example:\n  nerveshub deployment show beta")]
    Show {
        /// The deployment's name
        name: String,
    },
    /// Change a deployment; --firmware makes a new release
    #[command(
        after_help = "Example:\n  nerveshub deployment update beta --firmware 7f1c… --tag beta --tag eu"
    )]
    Update {
        /// The deployment's name
        name: String,
        /// A new firmware UUID (a new release)
        #[arg(long)]
        firmware: Option<String>,
        /// A new name
        #[arg(long)]
        rename: Option<String>,
        #[command(flatten)]
        settings: DeploymentSettings,
    },
    /// Turn a deployment on
    #[command(after_help = "Example:\n  nerveshub deployment on beta")]
    On {
        /// The deployment's name
        name: String,
    },
    /// Turn a deployment off
    #[command(after_help = "Example:\n  nerveshub deployment off beta")]
    Off {
        /// The deployment's name
        name: String,
    },
    /// Delete a deployment
    #[command(after_help = "Example:\n  nerveshub deployment delete beta")]
    Delete {
        /// The deployment's name
        name: String,
    },
    /// The rollout's counts; --watch keeps refreshing
    #[command(after_help = "Example:\n  nerveshub deployment status beta --watch")]
    Status {
        /// The deployment's name
        name: String,
        /// Refresh until interrupted
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes
        #[arg(long, default_value_t = 2)]
        interval: u64,
    },
    /// The deployment's releases
    #[command(after_help = "Example:\n  nerveshub deployment releases beta")]
    Releases {
        /// The deployment's name
        name: String,
    },
}

impl Command {
    /// The org role (or account) a command needs, said when the server answers 403.
    pub(crate) fn needs(&self) -> &'static str {
        match self {
            Command::User(UserCommand::Create { .. }) => "server admin",
            Command::User(UserCommand::Certificates | UserCommand::RevokeCertificate { .. }) => {
                "view"
            }
            Command::User(_) => "admin",
            Command::Product(ProductCommand::Create { .. } | ProductCommand::Delete { .. }) => {
                "admin"
            }
            Command::Org(_)
            | Command::Login(_)
            | Command::Logout
            | Command::Whoami
            | Command::Completions { .. } => "view",
            Command::Product(ProductCommand::List | ProductCommand::Show { .. }) => "view",
            Command::Device(
                DeviceCommand::List(_)
                | DeviceCommand::Show { .. }
                | DeviceCommand::Updates { .. }
                | DeviceCommand::Cert(DeviceCertCommand::List { .. }),
            )
            | Command::Secret(SecretCommand::List { .. })
            | Command::Ca(CaCommand::List | CaCommand::Show { .. })
            | Command::Key(KeyCommand::List)
            | Command::Firmware(
                FirmwareCommand::List
                | FirmwareCommand::Show { .. }
                | FirmwareCommand::Download { .. },
            )
            | Command::Deployment(
                DeploymentCommand::List
                | DeploymentCommand::Show { .. }
                | DeploymentCommand::Status { .. }
                | DeploymentCommand::Releases { .. },
            ) => "view",
            _ => "manage",
        }
    }
}
