//! `switchboard archive …`: archiving configuration and policies (in the main
//! database, where the running server picks them up), and search, transcripts,
//! retention, verification and status (on the archive database).

use crate::cli::{
    STORE_FILE, ScopeArgs, open_store, parse_on_off, require_data_file, set_policy_fields,
    show_policies,
};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::path::Path;
use switchboard_core::archive::{ArchivingConfig, ArchivingPolicy};
use switchboard_core::{Address, PolicyKind};
use switchboard_store::archive::{
    Archive, ArchiveQuery, ArchiveRecord, ChainFinding, verify_chain,
};
use switchboard_store::sqlite::SqliteArchive;
use switchboard_store::{Policies as _, PolicyScope, StoreError};

/// `archive …`
#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// The archiving configuration (on/off, critical mode, retention).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Archiving policies at global or user scope.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Find archived messages.
    Search(SearchArgs),
    /// The transcript of one conversation.
    Show {
        conversation: String,
        #[arg(long)]
        json: bool,
    },
    /// Export archived conversations to EML, mbox or JSON lines.
    Export(crate::archive_export::ExportArgs),
    /// Check the hash chain: reports any altered, inserted or deleted record.
    Verify {
        /// The head (`SEQ:HASH`) recorded earlier, e.g. from the server log:
        /// proves that the records up to it are still there, unchanged (none
        /// removed from the end, none rewritten with recomputed hashes).
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Apply the retention period now, then compact the search indexes (the
    /// server does both daily at the purge hour).
    Purge,
    /// Head of the chain, records waiting in the spool, mail-store delivery.
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// `archive config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Change some settings (the others keep their value).
    Set {
        #[arg(long, value_parser = parse_on_off, action = clap::ArgAction::Set, value_name = "on|off")]
        enabled: Option<bool>,
        /// Critical mode: refuse IM that cannot be archived.
        #[arg(long, value_parser = parse_on_off, action = clap::ArgAction::Set, value_name = "on|off")]
        critical: Option<bool>,
        /// Keep records this many days (1–2562).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2562))]
        retention_days: Option<u32>,
        /// Hour of the day (UTC, 0–23) when old records are purged.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=23))]
        purge_hour: Option<u8>,
        /// Purge only records already delivered to the mail store.
        #[arg(long, value_parser = parse_on_off, action = clap::ArgAction::Set, value_name = "on|off")]
        purge_mailed_only: Option<bool>,
    },
    /// Show the configuration.
    Show {
        #[arg(long)]
        json: bool,
    },
}

/// `archive policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Set the global policy or a user's override.
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Archive conversations within the served domains.
        #[arg(long, value_parser = parse_on_off, action = clap::ArgAction::Set, value_name = "on|off")]
        internal: Option<bool>,
        /// Archive conversations with people outside the served domains.
        #[arg(long, value_parser = parse_on_off, action = clap::ArgAction::Set, value_name = "on|off")]
        external: Option<bool>,
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

/// `archive search`: the filters, and how many records to show how.
#[derive(Debug, Args, Default, Clone)]
pub struct SearchArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most this many records.
    #[arg(long, default_value_t = 1000)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

/// The filters of `search`, also those of `export`.
#[derive(Debug, Args, Default, Clone)]
pub struct FilterArgs {
    /// Messages USER sent or received.
    #[arg(long)]
    pub user: Option<String>,
    /// …in conversations that also involve this person.
    #[arg(long)]
    pub with: Option<String>,
    /// From this time (YYYY-MM-DD or RFC 3339, e.g. 2026-11-24T09:30:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Until this time, exclusive (same formats).
    #[arg(long)]
    pub until: Option<String>,
    /// Words that must all appear.
    #[arg(long)]
    pub text: Option<String>,
    /// One conversation.
    #[arg(long)]
    pub conversation: Option<String>,
}

/// Parses a date or time for --since/--until, naming the accepted formats.
pub fn parse_time(s: &str) -> anyhow::Result<i64> {
    use time::format_description::well_known::Rfc3339;
    let err = || {
        anyhow::anyhow!(
            "invalid date {s:?}: use YYYY-MM-DD or an RFC 3339 time such as 2026-11-24T09:30:00Z"
        )
    };
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, &fmt).map_err(|_| err())?;
    Ok(d.midnight().assume_utc().unix_timestamp() * 1000)
}

/// A time as RFC 3339 for people.
pub fn fmt_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// The archive database's file in a data directory.
pub const ARCHIVE_FILE: &str = "archive.db";

/// Opens the archive database of an existing data directory; fails
/// (creating nothing) when the directory or the archive is missing.
pub async fn open_archive(data: &Path) -> anyhow::Result<SqliteArchive> {
    require_data_file(
        data,
        ARCHIVE_FILE,
        "no archive: the server creates it when it starts",
    )?;
    SqliteArchive::open(&data.join(ARCHIVE_FILE))
        .await
        .with_context(|| format!("cannot open the archive in {}", data.display()))
}

fn address_arg(s: &Option<String>) -> anyhow::Result<Option<Address>> {
    s.as_deref()
        .map(|u| Address::parse(u).with_context(|| format!("{u:?} is not a valid address")))
        .transpose()
}

/// Builds the archive query of search filters (at most `limit` records),
/// checking that named people and conversations exist (in the directory or
/// the archive).
pub async fn query(
    data: &Path,
    archive: &SqliteArchive,
    a: &FilterArgs,
    limit: u32,
) -> anyhow::Result<ArchiveQuery> {
    let user = address_arg(&a.user)?;
    let with = address_arg(&a.with)?;
    // A copy of the archive alone (a backup being checked) has no
    // directory: people are then looked up in the archive only.
    let store = if data.join(STORE_FILE).exists() {
        Some(open_store(data).await?)
    } else {
        None
    };
    for who in [&user, &with].into_iter().flatten() {
        let known = match &store {
            Some(store) => switchboard_store::Directory::get_user(store, &who.to_string())
                .await?
                .is_some(),
            None => false,
        };
        if !known {
            let q = ArchiveQuery {
                user: Some(who.to_string()),
                limit: 1,
                ..Default::default()
            };
            if archive.search_archive(&q).await?.is_empty() {
                bail!("no such user: {who} (not in the directory, not in the archive)");
            }
        }
    }
    if let Some(c) = &a.conversation
        && archive.conversation_summary(c).await?.is_none()
    {
        bail!("no such conversation: {c}");
    }
    Ok(ArchiveQuery {
        user: user.map(|u| u.to_string()),
        with: with.map(|u| u.to_string()),
        since_ms: a.since.as_deref().map(parse_time).transpose()?,
        until_ms: a.until.as_deref().map(parse_time).transpose()?,
        text: a.text.clone(),
        conversation: a.conversation.clone(),
        after_seq: None,
        limit,
    })
}

fn print_record(r: &ArchiveRecord) {
    let text = if r.record.kind == "message" {
        r.record.text.replace('\n', " ")
    } else {
        format!("({})", r.record.kind)
    };
    println!(
        "{}  #{}  {}  {} -> {}  [{}]  {}",
        fmt_time(r.record.at_ms),
        r.seq,
        r.record.conversation,
        r.record.sender,
        r.record.participants.join(", "),
        r.record.outcome,
        text
    );
}

/// Runs an archive command.
pub async fn run(data: &Path, cmd: ArchiveCommand) -> anyhow::Result<()> {
    match cmd {
        ArchiveCommand::Config(ConfigCommand::Set {
            enabled,
            critical,
            retention_days,
            purge_hour,
            purge_mailed_only,
        }) => {
            let store = open_store(data).await?;
            let mut f = serde_json::Map::new();
            if let Some(v) = enabled {
                f.insert("enabled".into(), v.into());
            }
            if let Some(v) = critical {
                f.insert("critical".into(), v.into());
            }
            if let Some(v) = retention_days {
                f.insert("retention_days".into(), v.into());
            }
            if let Some(v) = purge_hour {
                f.insert("purge_hour".into(), v.into());
            }
            if let Some(v) = purge_mailed_only {
                f.insert("purge_mailed_only".into(), v.into());
            }
            if f.is_empty() {
                bail!(
                    "nothing to set: give at least one of --enabled, --critical, --retention-days, --purge-hour, --purge-mailed-only"
                );
            }
            set_policy_fields(&store, ArchivingConfig::KIND, &PolicyScope::Global, f).await?;
            print_config(&current_config(&store).await?, false)?;
        }
        ArchiveCommand::Config(ConfigCommand::Show { json }) => {
            let store = open_store(data).await?;
            print_config(&current_config(&store).await?, json)?;
        }
        ArchiveCommand::Policy(PolicyCommand::Set {
            scope,
            internal,
            external,
        }) => {
            let store = open_store(data).await?;
            let scope = scope_of(&scope)?;
            let mut f = serde_json::Map::new();
            if let Some(v) = internal {
                f.insert("archive_internal".into(), v.into());
            }
            if let Some(v) = external {
                f.insert("archive_external".into(), v.into());
            }
            if f.is_empty() {
                bail!("nothing to set: give --internal and/or --external");
            }
            set_policy_fields(&store, ArchivingPolicy::KIND, &scope, f).await?;
            println!("archiving policy ({}) updated", scope.key());
        }
        ArchiveCommand::Policy(PolicyCommand::Clear { user }) => {
            let store = open_store(data).await?;
            let user = Address::parse(&user)
                .with_context(|| format!("{user:?} is not a valid address"))?;
            match store
                .clear_policy(ArchivingPolicy::KIND, &PolicyScope::User(user.to_string()))
                .await
            {
                Ok(()) => println!("archiving policy override of {user} removed"),
                Err(StoreError::NotFound(_)) => bail!("{user} has no archiving policy override"),
                Err(e) => return Err(e.into()),
            }
        }
        ArchiveCommand::Policy(PolicyCommand::Show { json }) => {
            let store = open_store(data).await?;
            show_policies::<ArchivingPolicy>(&store, json).await?;
        }
        ArchiveCommand::Search(a) => {
            let archive = open_archive(data).await?;
            let q = query(data, &archive, &a.filter, a.limit).await?;
            let found = archive.search_archive(&q).await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else if found.is_empty() {
                println!("no archived message matches");
            } else {
                for r in &found {
                    print_record(r);
                }
            }
        }
        ArchiveCommand::Show { conversation, json } => {
            let archive = open_archive(data).await?;
            if archive.conversation_summary(&conversation).await?.is_none() {
                bail!("no such conversation: {conversation}");
            }
            let q = ArchiveQuery {
                conversation: Some(conversation.clone()),
                limit: switchboard_store::archive::MAX_ARCHIVE_LIMIT,
                ..Default::default()
            };
            let records = archive.search_archive(&q).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                print!(
                    "{}",
                    crate::archive_export::transcript(&conversation, &records)
                );
            }
        }
        ArchiveCommand::Export(args) => crate::archive_export::run(data, args).await?,
        ArchiveCommand::Verify { expect_head, json } => verify(data, expect_head, json).await?,
        ArchiveCommand::Purge => {
            let store = open_store(data).await?;
            let archive = open_archive(data).await?;
            let config = current_config(&store).await?;
            let removed = purge(&archive, &config, switchboard_core::now_ms()).await?;
            println!(
                "purged {removed} records older than {} days{}",
                config.retention_days,
                if config.purge_mailed_only {
                    " (mailed only)"
                } else {
                    ""
                }
            );
            let steps = archive.compact_archive_indexes().await?;
            println!("search indexes compacted ({steps} merge steps)");
        }
        ArchiveCommand::Status { json } => status(data, json).await?,
    }
    Ok(())
}

fn scope_of(scope: &ScopeArgs) -> anyhow::Result<PolicyScope> {
    match &scope.user {
        Some(u) => Ok(PolicyScope::User(
            Address::parse(u)
                .with_context(|| format!("{u:?} is not a valid address"))?
                .to_string(),
        )),
        None => Ok(PolicyScope::Global),
    }
}

async fn current_config(
    store: &switchboard_store::sqlite::SqliteStore,
) -> anyhow::Result<ArchivingConfig> {
    let doc = store
        .get_policy(ArchivingConfig::KIND, &PolicyScope::Global)
        .await?;
    let base = serde_json::to_value(ArchivingConfig::default())?;
    let merged = match doc {
        Some(d) => switchboard_core::policy::overlay(&base, &d),
        None => base,
    };
    Ok(serde_json::from_value(merged)?)
}

fn print_config(c: &ArchivingConfig, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(c)?);
    } else {
        let onoff = |b: bool| if b { "on" } else { "off" };
        println!(
            "archiving: {}  critical mode: {}  retention: {} days  purge hour: {:02}:00 UTC  purge mailed only: {}",
            onoff(c.enabled),
            onoff(c.critical),
            c.retention_days,
            c.purge_hour,
            onoff(c.purge_mailed_only)
        );
    }
    Ok(())
}

/// Applies retention: removes records older than the retention period.
pub async fn purge(
    archive: &dyn Archive,
    config: &ArchivingConfig,
    now_ms: i64,
) -> anyhow::Result<u64> {
    let before = now_ms - i64::from(config.retention_days) * 86_400_000;
    Ok(archive
        .purge_archive(before, config.purge_mailed_only)
        .await?)
}

/// Exit code of `archive verify` when the chain is intact but the expected
/// head (`--expect-head`) could not be checked: retention purged it.
pub const EXIT_HEAD_PURGED: u8 = 3;

/// What `archive verify --expect-head SEQ:HASH` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadCheck {
    /// The record is there, with that hash.
    Present,
    /// The record is there with another hash: rewritten.
    WrongHash,
    /// The record should be there (it is newer than the retention anchor)
    /// and is not: removed from the end.
    Missing,
    /// The record is at or before the retention anchor: retention removed
    /// it, so it cannot be checked.
    Purged,
}

impl HeadCheck {
    fn name(self) -> &'static str {
        match self {
            HeadCheck::Present => "present",
            HeadCheck::WrongHash => "wrong_hash",
            HeadCheck::Missing => "missing",
            HeadCheck::Purged => "purged",
        }
    }
}

/// Parses `--expect-head SEQ:HASH`.
fn parse_head(s: &str) -> anyhow::Result<(i64, String)> {
    let (seq, hash) = s.split_once(':').context("--expect-head takes SEQ:HASH")?;
    let seq: i64 = seq.parse().context("--expect-head: SEQ is not a number")?;
    if seq < 1 {
        bail!("--expect-head: SEQ must be at least 1 (records are numbered from 1)");
    }
    Ok((seq, hash.to_owned()))
}

/// Checks the expected head `(seq, hash)` against the records, given the
/// retention anchor's `seq`.
fn check_head(expected: (i64, &str), anchor_seq: i64, records: &[ArchiveRecord]) -> HeadCheck {
    let (seq, hash) = expected;
    if seq <= anchor_seq {
        return HeadCheck::Purged;
    }
    match records.iter().find(|r| r.seq == seq) {
        Some(r) if r.hash == hash => HeadCheck::Present,
        Some(_) => HeadCheck::WrongHash,
        None => HeadCheck::Missing,
    }
}

async fn verify(data: &Path, expect_head: Option<String>, json: bool) -> anyhow::Result<()> {
    let expected = expect_head.as_deref().map(parse_head).transpose()?;
    let archive = open_archive(data).await?;
    let anchor = archive.archive_anchor().await?;
    let mut findings: Vec<String> = Vec::new();
    let mut records = Vec::new();
    // Read from the very start (even below 1), not from the anchor: a record
    // forged below the anchor or at seq 0 must show up too.
    let mut after = i64::MIN;
    loop {
        match archive.archive_range(after, 5000).await {
            Ok(batch) if batch.is_empty() => break,
            Ok(batch) => {
                after = batch.last().map(|r| r.seq).unwrap_or(after);
                records.extend(batch);
            }
            Err(e) => {
                findings.push(format!("unreadable record after #{}: {e}", after.max(0)));
                break;
            }
        }
    }
    let (below, from_anchor): (Vec<&ArchiveRecord>, Vec<&ArchiveRecord>) =
        records.iter().partition(|r| r.seq <= anchor.0);
    for r in below {
        findings.push(format!(
            "record #{} lies below the retention anchor #{} (inserted after purge)",
            r.seq, anchor.0
        ));
    }
    let (chain, head) = verify_chain((anchor.0, anchor.1.as_str()), from_anchor);
    for f in chain {
        findings.push(match f {
            ChainFinding::Altered { seq } => {
                format!("record #{seq} was altered (its content no longer matches its hash)")
            }
            ChainFinding::Broken { seq, .. } => {
                format!("chain broken before record #{seq} (a record was inserted or deleted)")
            }
            ChainFinding::Gap { after, next } => format!(
                "records #{}..#{} are missing (deleted)",
                after + 1,
                next - 1
            ),
        });
    }
    let head_check = expected
        .as_ref()
        .map(|(seq, hash)| (*seq, check_head((*seq, hash), anchor.0, &records)));
    match head_check {
        Some((seq, HeadCheck::WrongHash)) => findings.push(format!(
            "record #{seq} does not have the expected head hash"
        )),
        Some((seq, HeadCheck::Missing)) => findings.push(format!(
            "the expected head #{seq} is missing (records removed from the end)"
        )),
        _ => {}
    }
    let purged = match head_check {
        Some((seq, HeadCheck::Purged)) => Some(seq),
        _ => None,
    };
    let checked = records.len();
    if json {
        let expected_head = expected.as_ref().zip(head_check).map(|((seq, hash), (_, c))| {
            serde_json::json!({"seq": seq, "hash": hash, "result": c.name()})
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "records": checked,
                "anchor": {"seq": anchor.0, "hash": anchor.1},
                "head": head.as_ref().map(|h| format!("{}:{}", h.0, h.1)),
                "expected_head": expected_head,
                "findings": findings,
            }))?
        );
    } else {
        println!("checked {checked} records from anchor #{}", anchor.0);
        if let Some((seq, hash)) = &head {
            println!("head: {seq}:{hash}");
        }
        for f in &findings {
            println!("TAMPERING: {f}");
        }
        if let Some(seq) = purged {
            println!(
                "NOT CHECKED: the expected head #{seq} was purged by retention (the retention \
                 anchor is #{}), so it cannot be checked; check a head newer than the anchor",
                anchor.0
            );
        }
        if findings.is_empty() {
            if purged.is_some() {
                println!("chain intact from the anchor");
            } else {
                println!("archive intact");
            }
        }
    }
    if !findings.is_empty() {
        bail!("{} problem(s) found in the archive", findings.len());
    }
    if let Some(seq) = purged {
        return Err(crate::cli::ExitWith {
            code: EXIT_HEAD_PURGED,
            message: format!(
                "the expected head #{seq} could not be checked: retention has purged it \
                 (anchor #{})",
                anchor.0
            ),
        }
        .into());
    }
    Ok(())
}

async fn status(data: &Path, json: bool) -> anyhow::Result<()> {
    let archive = open_archive(data).await?;
    let head = archive.archive_head().await?;
    let anchor = archive.archive_anchor().await?;
    let spool = switchboard_core::archive::spooled_records(&data.join("archive-spool.jsonl"));
    let mail = std::fs::read_to_string(data.join("archive-mail-status.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"head": head.map(|h| format!("{}:{}", h.0, h.1)), "anchor": format!("{}:{}", anchor.0, anchor.1), "spooled": spool, "mail": mail})
            )?
        );
    } else {
        match head {
            Some((seq, hash)) => println!("archive head: {seq}:{hash}"),
            None => println!("archive is empty"),
        }
        println!("retention anchor: #{}", anchor.0);
        println!("records waiting in the spool (archive was unavailable): {spool}");
        match mail {
            Some(m) => println!("mail-store delivery: {m}"),
            None => println!("mail-store delivery: not configured or not run yet"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_store::archive::NewArchiveRecord;

    fn rec(seq: i64, hash: &str) -> ArchiveRecord {
        ArchiveRecord {
            seq,
            record: NewArchiveRecord {
                conversation: "c".into(),
                kind: "message".into(),
                at_ms: 0,
                sender: "a@example.test".into(),
                participants: vec![],
                content_type: "text/plain".into(),
                body: vec![],
                text: String::new(),
                outcome: "delivered".into(),
                external: false,
            },
            prev_hash: String::new(),
            hash: hash.into(),
        }
    }

    #[test]
    fn an_expected_head_before_the_anchor_is_purged_not_missing() {
        // Records 1..=4 purged (anchor #4), 5..=7 left.
        let records = [rec(5, "h5"), rec(6, "h6"), rec(7, "h7")];
        assert_eq!(check_head((6, "h6"), 4, &records), HeadCheck::Present);
        assert_eq!(check_head((7, "h7"), 4, &records), HeadCheck::Present);
        assert_eq!(check_head((6, "xx"), 4, &records), HeadCheck::WrongHash);
        assert_eq!(check_head((3, "h3"), 4, &records), HeadCheck::Purged);
        assert_eq!(check_head((4, "h4"), 4, &records), HeadCheck::Purged);
        // Newer than the anchor and gone: cut from the end.
        assert_eq!(check_head((9, "h9"), 4, &records), HeadCheck::Missing);
        // Nothing purged: a missing head is always tampering.
        assert_eq!(check_head((9, "h9"), 0, &records), HeadCheck::Missing);
        assert_eq!(check_head((2, "h2"), 0, &[]), HeadCheck::Missing);
        // A record forged at or below the anchor does not make it checkable.
        let forged = [rec(3, "h3"), rec(5, "h5")];
        assert_eq!(check_head((3, "h3"), 4, &forged), HeadCheck::Purged);
    }

    #[test]
    fn expect_head_is_parsed_strictly() {
        assert_eq!(parse_head("13:abc").expect("valid"), (13, "abc".to_owned()));
        for bad in ["13", "x:abc", "0:abc", "-1:abc"] {
            assert!(parse_head(bad).is_err(), "{bad}");
        }
    }
}
