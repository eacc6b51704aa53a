//! The command line: `serve`, and the administration commands that act on
//! the database directly (a running server picks their changes up within a
//! second, see [`crate::app`]).

use crate::config::Config;
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use switchboard_core::{Address, PolicyKind};
use switchboard_store::sqlite::SqliteStore;
use switchboard_store::{Directory as _, NewUser, Policies as _, PolicyScope, StoreError};

/// Switchboard: enterprise instant messaging and presence server (SIP).
#[derive(Debug, Parser)]
#[command(name = "switchboard", version)]
pub struct Cli {
    /// Data directory (database, generated certificate).
    #[arg(
        long,
        global = true,
        default_value = "./switchboard-data",
        env = "SWITCHBOARD_DATA"
    )]
    pub data: PathBuf,
    /// Configuration file (TOML); every key is optional.
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage served domains.
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Configuration file tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Policies (IM, …) at global or user scope.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Users' contact lists (groups and privacy access levels).
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Users' privacy settings.
    #[command(subcommand)]
    Privacy(PrivacyCommand),
    /// Compliance archiving: configuration, policies, search, export, verification.
    #[command(subcommand)]
    Archive(crate::archive_cli::ArchiveCommand),
}

/// `contact …`
#[derive(Debug, Subcommand)]
pub enum ContactCommand {
    /// Add a contact to OWNER's list, or change its group or level. For a
    /// contact already in the list, an option left out keeps its value.
    Add {
        owner: String,
        contact: String,
        /// Group name; "" removes the contact from its group.
        #[arg(long)]
        group: Option<String>,
        /// Access level: blocked, external, colleagues, workgroup or family;
        /// "default" removes an explicit level (the default level applies).
        #[arg(long)]
        level: Option<String>,
    },
    /// Remove a contact from OWNER's list.
    Remove { owner: String, contact: String },
    /// Add many contacts to OWNER's list from a file (one `address[,group[,level]]`
    /// per line; `-` reads standard input). Migrates lists from another system.
    Import { owner: String, file: PathBuf },
    /// Show OWNER's list.
    List {
        owner: String,
        #[arg(long)]
        json: bool,
    },
}

/// `privacy …`
#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Turn privacy mode on or off (on: only contacts see presence).
    Set {
        user: String,
        #[arg(long, value_parser = parse_on_off, action = clap::ArgAction::Set, value_name = "on|off")]
        mode: bool,
    },
    /// Show a user's privacy settings (privacy mode) and where each comes
    /// from: the user's own setting, the global one, or the default.
    Show {
        user: String,
        #[arg(long)]
        json: bool,
    },
}

/// `policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The IM policy (offline IM).
    #[command(subcommand)]
    Im(ImPolicyCommand),
}

/// `policy im …`
#[derive(Debug, Subcommand)]
pub enum ImPolicyCommand {
    /// Set the IM policy globally or for one user (a user setting wins).
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Keep messages for signed-out users.
        #[arg(long, value_parser = parse_on_off, action = clap::ArgAction::Set, value_name = "on|off")]
        offline: bool,
    },
    /// Remove a user's override (the global policy applies again).
    Clear {
        #[arg(long, value_name = "USER@DOMAIN")]
        user: String,
    },
    /// Show the global policy and every user override.
    Show {
        #[arg(long)]
        json: bool,
    },
}

/// `--global` or `--user USER@DOMAIN`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ScopeArgs {
    /// The global policy.
    #[arg(long)]
    pub global: bool,
    /// One user's policy.
    #[arg(long, value_name = "USER@DOMAIN")]
    pub user: Option<String>,
}

impl ScopeArgs {
    fn scope(&self) -> anyhow::Result<PolicyScope> {
        match &self.user {
            Some(u) => Ok(PolicyScope::User(parse_address(u)?.to_string())),
            None => Ok(PolicyScope::Global),
        }
    }
}

/// Parses `on`/`off` (also true/false, yes/no).
pub fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("{s:?} is not on or off")),
    }
}

/// Options of `serve` (each overrides the configuration file).
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// A domain to serve (repeatable). Without any, the host name is served.
    #[arg(long = "domain")]
    pub domains: Vec<String>,
    /// SIP over UDP listen address ("" disables).
    #[arg(long)]
    pub sip_udp: Option<String>,
    /// SIP over TCP listen address ("" disables).
    #[arg(long)]
    pub sip_tcp: Option<String>,
    /// SIP over TLS listen address ("" disables).
    #[arg(long)]
    pub sip_tls: Option<String>,
    /// HTTP listen address: API, web client, presence badges, SIP over
    /// WebSocket ("" disables; default 0.0.0.0:8080).
    #[arg(long)]
    pub http: Option<String>,
}

/// `user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password-stdin a random password is generated and printed.
    Add {
        address: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a user and everything that belongs to them.
    Remove { address: String },
    /// Change a user's password.
    Passwd {
        address: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Grant (on) or take away (off) the administrator role of the web
    /// admin API.
    Admin {
        address: String,
        #[arg(value_parser = parse_on_off, action = clap::ArgAction::Set, value_name = "on|off")]
        admin: bool,
    },
}

/// `domain …`
#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Serve a domain.
    Add { name: String },
    /// List served domains.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop serving a domain (it must have no users).
    Remove { name: String },
}

/// `config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file; names the exact key and problem.
    Check {
        /// The file (defaults to --config).
        file: Option<PathBuf>,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = match &cli.config {
                Some(p) => Config::load(p)?,
                None => Config::default(),
            };
            crate::app::serve(&cli.data, config, args).await
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let path = file
                .or(cli.config)
                .context("name the file: switchboard config check FILE")?;
            Config::load(&path)?;
            println!("{}: OK", path.display());
            Ok(())
        }
        Command::User(cmd) => user(&cli.data, cli.config.as_deref(), cmd).await,
        Command::Policy(PolicyCommand::Im(cmd)) => im_policy(&cli.data, cmd).await,
        Command::Archive(cmd) => crate::archive_cli::run(&cli.data, cmd).await,
        Command::Contact(cmd) => {
            let max = match &cli.config {
                Some(p) => Config::load(p)?.presence.max_contacts,
                None => Config::default().presence.max_contacts,
            };
            contact(&cli.data, cmd, max).await
        }
        Command::Privacy(PrivacyCommand::Show { user, json }) => {
            let store = open_store(&cli.data).await?;
            let user = parse_address(&user)?;
            require_user(&store, &user).await?;
            show_privacy(&store, &user, json).await
        }
        Command::Privacy(PrivacyCommand::Set { user, mode }) => {
            let store = open_store(&cli.data).await?;
            let user = parse_address(&user)?;
            let mut fields = serde_json::Map::new();
            fields.insert("privacy_mode".into(), serde_json::Value::Bool(mode));
            set_policy_fields(
                &store,
                switchboard_core::policy::PrivacyPolicy::KIND,
                &PolicyScope::User(user.to_string()),
                fields,
            )
            .await?;
            println!(
                "privacy mode for {user}: {}",
                if mode { "on" } else { "off" }
            );
            Ok(())
        }
        Command::Domain(cmd) => domain(&cli.data, cmd).await,
    }
}

/// An error that ends the process with `code` instead of 1: main prints
/// `switchboard: MESSAGE` on standard error and exits with it.
#[derive(Debug)]
pub struct ExitWith {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitWith {}

/// The main database's file in a data directory.
pub const STORE_FILE: &str = "switchboard.db";

/// Fails unless `data` is an existing directory: administration commands
/// other than the first-time setup (`user add`, `domain add`) and `serve`
/// never create one, so that a mistyped `--data` is an error instead of an
/// empty database.
pub fn require_data_dir(data: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(data) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("{} is not a directory (--data)", data.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no data directory at {} (point --data or SWITCHBOARD_DATA at the server's; \
             only serve, user add and domain add create one)",
            data.display()
        ),
        Err(e) => bail!("cannot read the data directory {}: {e}", data.display()),
    }
}

/// Fails unless the data directory exists and holds `file`.
pub fn require_data_file(data: &Path, file: &str, missing: &str) -> anyhow::Result<()> {
    require_data_dir(data)?;
    match std::fs::metadata(data.join(file)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{}: {file} does not exist ({missing})", data.display())
        }
        Err(e) => bail!("cannot read {}: {e}", data.join(file).display()),
    }
}

/// Opens the database of an existing data directory for an administration
/// command; fails (creating nothing) when the directory or its database is
/// missing.
pub async fn open_store(data: &Path) -> anyhow::Result<SqliteStore> {
    require_data_file(
        data,
        STORE_FILE,
        "not a Switchboard data directory; serve, user add and domain add create the database",
    )?;
    open_or_create_store(data).await
}

/// Opens the database of a data directory, creating the directory and the
/// database when missing: for `user add` and `domain add`, the first-time
/// setup.
pub async fn open_or_create_store(data: &Path) -> anyhow::Result<SqliteStore> {
    SqliteStore::open(&data.join(STORE_FILE))
        .await
        .with_context(|| format!("cannot open the database in {}", data.display()))
}

fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((crate::credentials::random_password()?, true));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let pw = line.trim_end_matches(['\r', '\n']).to_owned();
    if pw.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    Ok((pw, false))
}

fn parse_address(s: &str) -> anyhow::Result<Address> {
    Address::parse(s).with_context(|| format!("{s:?} is not a valid address"))
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

async fn user(data: &Path, config_path: Option<&Path>, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            address,
            password_stdin,
            display_name,
        } => {
            let address = parse_address(&address)?;
            let factory = load_config(config_path)?
                .conference
                .factory_user
                .to_ascii_lowercase();
            if address.user() == factory
                || crate::sip::conference::is_conference_user(address.user())
            {
                bail!("{:?} is reserved for conferences", address.user());
            }
            let (password, generated) = read_password(password_stdin)?;
            let credentials = crate::credentials::derive(&address, &password)?;
            let store = open_or_create_store(data).await?;
            let new = NewUser {
                address: address.to_string(),
                display_name,
                credentials,
                created_ms: switchboard_core::now_ms(),
            };
            match store.add_user(&new).await {
                Ok(()) => {}
                Err(StoreError::NotFound(_)) => bail!(
                    "domain {} is not served (add it with: switchboard domain add {})",
                    address.domain(),
                    address.domain()
                ),
                Err(StoreError::Conflict(_)) => bail!("user {address} already exists"),
                Err(e) => return Err(e.into()),
            }
            if generated {
                println!("created {address} with password: {password}");
            } else {
                println!("created {address}");
            }
        }
        UserCommand::List { json } => {
            let users = open_store(data).await?.list_users().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else if users.is_empty() {
                println!("no users");
            } else {
                for u in users {
                    let role = if u.admin { "\tadministrator" } else { "" };
                    println!(
                        "{}\t{}{role}",
                        u.address,
                        u.display_name.unwrap_or_default()
                    );
                }
            }
        }
        UserCommand::Remove { address } => {
            let address = parse_address(&address)?;
            let store = open_store(data).await?;
            match store.remove_user(&address.to_string()).await {
                Ok(()) => println!("removed {address}"),
                Err(StoreError::NotFound(_)) => bail!("no such user: {address}"),
                Err(e) => return Err(e.into()),
            }
        }
        UserCommand::Admin { address, admin } => {
            let address = parse_address(&address)?;
            let store = open_store(data).await?;
            match store.set_admin(&address.to_string(), admin).await {
                Ok(()) if admin => println!("{address} is an administrator"),
                Ok(()) => println!("{address} is no longer an administrator"),
                Err(StoreError::NotFound(_)) => bail!("no such user: {address}"),
                Err(e) => return Err(e.into()),
            }
        }
        UserCommand::Passwd {
            address,
            password_stdin,
        } => {
            let address = parse_address(&address)?;
            let store = open_store(data).await?;
            let (password, generated) = read_password(password_stdin)?;
            let credentials = crate::credentials::derive(&address, &password)?;
            match store
                .set_credentials(&address.to_string(), &credentials)
                .await
            {
                Ok(()) if generated => println!("new password for {address}: {password}"),
                Ok(()) => println!("password changed for {address}"),
                Err(StoreError::NotFound(_)) => bail!("no such user: {address}"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn domain(data: &Path, cmd: DomainCommand) -> anyhow::Result<()> {
    match cmd {
        DomainCommand::Add { name } => {
            let name = switchboard_core::address::normalise_domain(&name)
                .with_context(|| format!("{name:?} is not a valid domain name"))?;
            let store = open_or_create_store(data).await?;
            match store.add_domain(&name, switchboard_core::now_ms()).await {
                Ok(()) => println!("serving {name}"),
                Err(StoreError::Conflict(_)) => bail!("domain {name} is already served"),
                Err(e) => return Err(e.into()),
            }
        }
        DomainCommand::List { json } => {
            let domains = open_store(data).await?.list_domains().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&domains)?);
            } else if domains.is_empty() {
                println!("no domains");
            } else {
                for d in domains {
                    println!("{}", d.name);
                }
            }
        }
        DomainCommand::Remove { name } => {
            let name = switchboard_core::address::normalise_domain(&name)
                .with_context(|| format!("{name:?} is not a valid domain name"))?;
            let store = open_store(data).await?;
            match store.remove_domain(&name).await {
                Ok(()) => println!("no longer serving {name}"),
                Err(StoreError::NotFound(_)) => bail!("domain {name} is not served"),
                Err(StoreError::Conflict(_)) => {
                    bail!("domain {name} still has users; remove them first")
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Sets fields of the policy document of `kind` at `scope`, keeping the others.
pub async fn set_policy_fields(
    store: &SqliteStore,
    kind: &str,
    scope: &PolicyScope,
    fields: serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    let mut doc = store
        .get_policy(kind, scope)
        .await?
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(obj) = doc.as_object_mut() {
        obj.extend(fields);
    }
    match store.set_policy(kind, scope, &doc).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound(_)) => {
            bail!("no such user: {}", scope.key().trim_start_matches("user:"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Prints every document of a policy kind, as JSON or one line per scope.
pub async fn show_policies<K: switchboard_core::PolicyKind>(
    store: &SqliteStore,
    json: bool,
) -> anyhow::Result<()> {
    let docs = store.list_policies(K::KIND).await?;
    let global_doc = docs
        .iter()
        .find(|(s, _)| *s == PolicyScope::Global)
        .map(|(_, d)| d.clone());
    let mut global = serde_json::to_value(K::default())?;
    if let Some(g) = &global_doc {
        global = switchboard_core::policy::overlay(&global, g);
    }
    let users: serde_json::Map<String, serde_json::Value> = docs
        .into_iter()
        .filter_map(|(s, d)| match s {
            PolicyScope::User(u) => Some((u, d)),
            PolicyScope::Global => None,
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "global": global, "users": users }))?
        );
    } else {
        println!("global: {}", describe(&global));
        for (u, d) in &users {
            println!("user {u}: {}", describe(d));
        }
    }
    Ok(())
}

/// Where each field of a user's effective policy comes from.
fn field_sources(
    effective: &serde_json::Value,
    global: Option<&serde_json::Value>,
    user: Option<&serde_json::Value>,
) -> Vec<(String, serde_json::Value, &'static str)> {
    let has = |doc: Option<&serde_json::Value>, k: &str| {
        doc.and_then(|d| d.as_object())
            .is_some_and(|o| o.contains_key(k))
    };
    effective
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let source = if has(user, k) {
                        "set for the user"
                    } else if has(global, k) {
                        "global setting"
                    } else {
                        "default"
                    };
                    (k.clone(), v.clone(), source)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `privacy show`: the user's effective privacy policy (defaults, then the
/// global document, then the user's own), field by field with its source.
async fn show_privacy(store: &SqliteStore, user: &Address, json: bool) -> anyhow::Result<()> {
    use switchboard_core::policy::PrivacyPolicy;
    let global = store
        .get_policy(PrivacyPolicy::KIND, &PolicyScope::Global)
        .await?;
    let own = store
        .get_policy(PrivacyPolicy::KIND, &PolicyScope::User(user.to_string()))
        .await?;
    let mut effective = serde_json::to_value(PrivacyPolicy::default())?;
    for doc in [&global, &own].into_iter().flatten() {
        effective = switchboard_core::policy::overlay(&effective, doc);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "user": user.to_string(),
                "effective": effective,
                "user_setting": own,
                "global_setting": global,
            }))?
        );
        return Ok(());
    }
    for (key, value, source) in field_sources(&effective, global.as_ref(), own.as_ref()) {
        let name = if key == "privacy_mode" {
            "privacy mode".to_owned()
        } else {
            key.replace('_', " ")
        };
        let value = match value {
            serde_json::Value::Bool(b) => (if b { "on" } else { "off" }).to_owned(),
            other => other.to_string(),
        };
        println!("{name} for {user}: {value} ({source})");
    }
    Ok(())
}

fn describe(doc: &serde_json::Value) -> String {
    match doc.as_object() {
        Some(o) => o
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::Bool(b) => format!("{k}={}", if *b { "on" } else { "off" }),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => doc.to_string(),
    }
}

async fn im_policy(data: &Path, cmd: ImPolicyCommand) -> anyhow::Result<()> {
    let store = open_store(data).await?;
    match cmd {
        ImPolicyCommand::Set { scope, offline } => {
            let scope = scope.scope()?;
            let mut fields = serde_json::Map::new();
            fields.insert("offline_im".into(), serde_json::Value::Bool(offline));
            set_policy_fields(&store, switchboard_core::ImPolicy::KIND, &scope, fields).await?;
            println!(
                "IM policy ({}): offline_im={}",
                scope.key(),
                if offline { "on" } else { "off" }
            );
        }
        ImPolicyCommand::Clear { user } => {
            let user = parse_address(&user)?;
            match store
                .clear_policy(
                    switchboard_core::ImPolicy::KIND,
                    &PolicyScope::User(user.to_string()),
                )
                .await
            {
                Ok(()) => println!("IM policy override of {user} removed"),
                Err(StoreError::NotFound(_)) => bail!("{user} has no IM policy override"),
                Err(e) => return Err(e.into()),
            }
        }
        ImPolicyCommand::Show { json } => {
            show_policies::<switchboard_core::ImPolicy>(&store, json).await?
        }
    }
    Ok(())
}

/// Fails with `no such user: …` unless `address` is a user.
pub async fn require_user(store: &SqliteStore, address: &Address) -> anyhow::Result<()> {
    match store.get_user(&address.to_string()).await? {
        Some(_) => Ok(()),
        None => bail!("no such user: {address}"),
    }
}

/// The entry `contact add` stores. For a contact already in the list, the
/// options given replace its values and those left out keep them (and it
/// keeps the time it was added); a new contact gets what is given. Someone
/// the owner blocked without adding them (an unlisted entry) is new to the
/// list but keeps the block unless `--level` is given. `group` is trimmed,
/// and empty means no group; `level` is `Some(None)` for `--level default`
/// (no explicit level).
fn merge_contact(
    existing: Option<switchboard_store::ContactRecord>,
    owner: &Address,
    contact: &Address,
    group: Option<String>,
    level: Option<Option<String>>,
    now_ms: i64,
) -> switchboard_store::ContactRecord {
    let (old_group, old_level, added_ms) = match existing {
        Some(e) if e.listed => (e.group, e.level, e.added_ms),
        Some(e) => (None, e.level, now_ms),
        None => (None, None, now_ms),
    };
    switchboard_store::ContactRecord {
        owner: owner.to_string(),
        contact: contact.to_string(),
        group: match group {
            Some(g) => Some(g.trim().to_owned()).filter(|g| !g.is_empty()),
            None => old_group,
        },
        level: level.unwrap_or(old_level),
        added_ms,
        listed: true,
    }
}

async fn contact(data: &Path, cmd: ContactCommand, max_contacts: u32) -> anyhow::Result<()> {
    use switchboard_core::presence::AccessLevel;
    use switchboard_store::{ContactRecord, Contacts as _};
    let store = open_store(data).await?;
    match cmd {
        ContactCommand::Add {
            owner,
            contact,
            group,
            level,
        } => {
            let owner = parse_address(&owner)?;
            let contact = parse_address(&contact)?;
            if owner == contact {
                bail!("a user cannot be their own contact");
            }
            let level = match level {
                None => None,
                Some(l) if l.trim().eq_ignore_ascii_case("default") => Some(None),
                Some(l) => Some(Some(
                    AccessLevel::from_token(l.trim())
                        .with_context(|| {
                            format!(
                                "{l:?} is not one of blocked, external, colleagues, workgroup, family, default"
                            )
                        })?
                        .token()
                        .to_owned(),
                )),
            };
            require_user(&store, &owner).await?;
            let existing = store
                .get_contact(&owner.to_string(), &contact.to_string())
                .await?;
            let entry = merge_contact(
                existing,
                &owner,
                &contact,
                group,
                level,
                switchboard_core::now_ms(),
            );
            match store.upsert_contact(&entry, max_contacts).await {
                Ok(()) => println!(
                    "{owner}: {contact} in {}{}",
                    entry.group.as_deref().unwrap_or("(no group)"),
                    entry
                        .level
                        .as_deref()
                        .map(|l| format!(" at level {l}"))
                        .unwrap_or_default()
                ),
                Err(StoreError::NotFound(_)) => bail!("no such user: {owner}"),
                Err(StoreError::Limit(_)) => {
                    bail!("{owner} already has {max_contacts} contacts (presence.max_contacts)")
                }
                Err(e) => return Err(e.into()),
            }
        }
        ContactCommand::Import { owner, file } => {
            let owner = parse_address(&owner)?;
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .context("cannot read standard input")?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let mut count = 0usize;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let mut fields = line.split(',').map(str::trim);
                let contact = fields.next().unwrap_or_default();
                let contact = Address::parse(contact).with_context(|| {
                    format!("line {}: {contact:?} is not a valid address", n + 1)
                })?;
                let group = fields.next().filter(|g| !g.is_empty()).map(str::to_owned);
                let level = match fields.next().filter(|l| !l.is_empty()) {
                    Some(l) => Some(
                        AccessLevel::from_token(l)
                            .with_context(|| {
                                format!("line {}: {l:?} is not an access level", n + 1)
                            })?
                            .token()
                            .to_owned(),
                    ),
                    None => None,
                };
                let entry = ContactRecord {
                    owner: owner.to_string(),
                    contact: contact.to_string(),
                    group,
                    level,
                    added_ms: switchboard_core::now_ms(),
                    listed: true,
                };
                match store.upsert_contact(&entry, max_contacts).await {
                    Ok(()) => count += 1,
                    Err(StoreError::NotFound(_)) => bail!("no such user: {owner}"),
                    Err(StoreError::Limit(_)) => bail!(
                        "line {}: {owner} already has {max_contacts} contacts (presence.max_contacts); {count} imported",
                        n + 1
                    ),
                    Err(e) => return Err(e.into()),
                }
            }
            println!("{owner}: imported {count} contacts");
        }
        ContactCommand::Remove { owner, contact } => {
            let owner = parse_address(&owner)?;
            let contact = parse_address(&contact)?;
            require_user(&store, &owner).await?;
            match store
                .remove_contact(&owner.to_string(), &contact.to_string())
                .await
            {
                Ok(()) => println!("{owner}: removed {contact}"),
                Err(StoreError::NotFound(_)) => bail!("{contact} is not in {owner}'s contact list"),
                Err(e) => return Err(e.into()),
            }
        }
        ContactCommand::List { owner, json } => {
            let owner = parse_address(&owner)?;
            require_user(&store, &owner).await?;
            let list = match store.list_contacts(&owner.to_string()).await {
                Ok(l) => l,
                Err(StoreError::NotFound(_)) => bail!("no such user: {owner}"),
                Err(e) => return Err(e.into()),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("{owner} has no contacts");
            } else {
                for c in list {
                    println!(
                        "{}\t{}\t{}",
                        c.contact,
                        c.group.unwrap_or_default(),
                        c.level.unwrap_or_else(|| "default".into())
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clap checks a command's definition only when that command is used:
    /// check every one here, so a bad one fails the tests, not a user.
    #[test]
    fn every_command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    fn entry(
        group: Option<&str>,
        level: Option<&str>,
        added_ms: i64,
    ) -> switchboard_store::ContactRecord {
        switchboard_store::ContactRecord {
            owner: "alice@example.test".into(),
            contact: "bob@example.test".into(),
            group: group.map(str::to_owned),
            level: level.map(str::to_owned),
            added_ms,
            listed: true,
        }
    }

    #[test]
    fn privacy_fields_name_their_source() {
        let effective = serde_json::json!({"privacy_mode": true, "other": 3, "third": false});
        let global = serde_json::json!({"other": 3});
        let user = serde_json::json!({"privacy_mode": true});
        let got: Vec<(String, &str)> = field_sources(&effective, Some(&global), Some(&user))
            .into_iter()
            .map(|(k, _, s)| (k, s))
            .collect();
        assert_eq!(
            got,
            vec![
                ("other".to_owned(), "global setting"),
                ("privacy_mode".to_owned(), "set for the user"),
                ("third".to_owned(), "default"),
            ]
        );
        let got = field_sources(&effective, None, None);
        assert!(got.iter().all(|(_, _, s)| *s == "default"));
    }

    #[test]
    fn contact_add_keeps_what_is_not_given() {
        let owner = Address::parse("alice@example.test").expect("owner");
        let contact = Address::parse("bob@example.test").expect("contact");
        let old = || Some(entry(Some("Team"), Some("workgroup"), 5));
        let merge = |existing, group: Option<&str>, level: Option<Option<&str>>| {
            merge_contact(
                existing,
                &owner,
                &contact,
                group.map(str::to_owned),
                level.map(|l| l.map(str::to_owned)),
                99,
            )
        };
        // Only --level: the group stays; only --group: the level stays.
        assert_eq!(
            merge(old(), None, Some(Some("family"))),
            entry(Some("Team"), Some("family"), 5)
        );
        assert_eq!(
            merge(old(), Some("Partners"), None),
            entry(Some("Partners"), Some("workgroup"), 5)
        );
        assert_eq!(
            merge(old(), None, None),
            entry(Some("Team"), Some("workgroup"), 5)
        );
        // Clearing is explicit: --group "" and --level default.
        assert_eq!(merge(old(), Some("  "), Some(None)), entry(None, None, 5));
        // A new contact gets what is given, and now as its time.
        assert_eq!(
            merge(None, None, Some(Some("external"))),
            entry(None, Some("external"), 99)
        );
        assert_eq!(
            merge(None, Some(" Team "), None),
            entry(Some("Team"), None, 99)
        );
        // Someone blocked without being in the list joins it as new, and
        // stays blocked unless a level is given.
        let block = || {
            Some(switchboard_store::ContactRecord {
                listed: false,
                ..entry(None, Some("blocked"), 5)
            })
        };
        assert_eq!(
            merge(block(), Some("Team"), None),
            entry(Some("Team"), Some("blocked"), 99)
        );
        assert_eq!(
            merge(block(), None, Some(Some("family"))),
            entry(None, Some("family"), 99)
        );
    }
}
