//! Compliance archiving in the domain: which conversations are archived
//! (policies at global and user scope, internal and external separately),
//! and the archiver that writes records without slowing IM down, keeps what
//! it could not write in a durable spool, and tells critical mode when the
//! archive cannot be written.

use crate::address::Address;
use crate::directory::Directory;
use crate::policy::{Policies, PolicyKind};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use switchboard_store::archive::{Archive, NewArchiveRecord};
use tokio::sync::{mpsc, oneshot};

/// The archiving configuration (global): Skype for Business's
/// `Set-CsArchivingConfiguration` in Switchboard's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchivingConfig {
    /// Archiving on or off (off by default, as in Skype for Business).
    pub enabled: bool,
    /// Critical mode: refuse IM of archived users when the archive cannot be
    /// written, instead of delivering it unarchived.
    pub critical: bool,
    /// Records older than this are purged (1–2562 days).
    pub retention_days: u32,
    /// Hour of day (0–23, server local time is UTC) when purging runs.
    pub purge_hour: u8,
    /// Purge only records already delivered to the mail store.
    pub purge_mailed_only: bool,
}

impl Default for ArchivingConfig {
    fn default() -> ArchivingConfig {
        ArchivingConfig {
            enabled: false,
            critical: false,
            retention_days: 14,
            purge_hour: 2,
            purge_mailed_only: false,
        }
    }
}

impl PolicyKind for ArchivingConfig {
    const KIND: &'static str = "archiving-config";
}

/// An archiving policy (global, or a user's override).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchivingPolicy {
    /// Archive conversations among users of the served domains.
    pub archive_internal: bool,
    /// Archive conversations with someone outside the served domains.
    pub archive_external: bool,
}

impl PolicyKind for ArchivingPolicy {
    const KIND: &'static str = "archiving";
}

/// Whether and how a communication is archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    NotArchived,
    /// Archive; in critical mode the record must be written before delivery.
    Archive {
        critical: bool,
    },
}

/// Decides for a communication among `parties`: archived if archiving is on
/// and any local party's effective policy covers it (internal when every
/// party is in a served domain, external otherwise).
pub fn decide(policies: &Policies, directory: &Directory, parties: &[&Address]) -> Decision {
    let config: ArchivingConfig = policies.global();
    if !config.enabled {
        return Decision::NotArchived;
    }
    let external = parties.iter().any(|p| !directory.is_served(p.domain()));
    let covered = parties
        .iter()
        .filter(|p| directory.is_served(p.domain()))
        .any(|p| {
            let policy: ArchivingPolicy = policies.effective(p);
            if external {
                policy.archive_external
            } else {
                policy.archive_internal
            }
        });
    if covered {
        Decision::Archive {
            critical: config.critical,
        }
    } else {
        Decision::NotArchived
    }
}

/// The searchable text of a message body.
pub fn searchable_text(content_type: &str, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if content_type.to_ascii_lowercase().starts_with("text/html") {
        let mut out = String::with_capacity(text.len());
        let mut in_tag = false;
        for c in text.chars() {
            match c {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    out.push(' ');
                }
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        return out
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&nbsp;", " ");
    }
    text.into_owned()
}

/// Counters for operators.
#[derive(Debug, Default)]
pub struct ArchiveCounters {
    pub written: AtomicU64,
    pub failures: AtomicU64,
    pub spooled: AtomicU64,
    pub refused_critical: AtomicU64,
}

struct Job {
    records: Vec<NewArchiveRecord>,
    /// Critical writes wait for the commit; the rest are spooled on failure.
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// Writes archive records in batches (group commit), spools what fails to a
/// durable file and replays it when the archive is writable again.
pub struct Archiver {
    tx: mpsc::UnboundedSender<Job>,
    healthy: Arc<AtomicBool>,
    pub counters: Arc<ArchiveCounters>,
}

/// Most records written in one transaction.
const BATCH: usize = 500;

impl Archiver {
    /// Starts the writer over `archive`, spooling to `spool` (a file).
    pub fn start(archive: Arc<dyn Archive>, spool: PathBuf) -> Archiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let healthy = Arc::new(AtomicBool::new(true));
        let counters = Arc::new(ArchiveCounters::default());
        // Held while the spool is appended to or replayed, so that nothing is
        // appended between a replay's read and its truncation.
        let spool_lock = Arc::new(tokio::sync::Mutex::new(()));
        tokio::spawn(writer(
            archive.clone(),
            spool.clone(),
            rx,
            healthy.clone(),
            counters.clone(),
            spool_lock.clone(),
        ));
        tokio::spawn(replayer(
            archive,
            spool,
            healthy.clone(),
            counters.clone(),
            spool_lock,
        ));
        Archiver {
            tx,
            healthy,
            counters,
        }
    }

    /// Records `record` without waiting; if the archive cannot take it, it is
    /// spooled durably and written later.
    pub fn capture(&self, record: NewArchiveRecord) {
        let _ = self.tx.send(Job {
            records: vec![record],
            done: None,
        });
    }

    /// Records `record` and waits until it is committed (critical mode);
    /// `Err` with the reason when the archive cannot be written.
    pub async fn capture_critical(&self, record: NewArchiveRecord) -> Result<(), String> {
        if !self.healthy.load(Ordering::Relaxed) {
            self.counters
                .refused_critical
                .fetch_add(1, Ordering::Relaxed);
            return Err("the archive cannot be written".into());
        }
        let (done, rx) = oneshot::channel();
        if self
            .tx
            .send(Job {
                records: vec![record],
                done: Some(done),
            })
            .is_err()
        {
            return Err("the archiver stopped".into());
        }
        let r = rx
            .await
            .unwrap_or_else(|_| Err("the archiver stopped".into()));
        if r.is_err() {
            self.counters
                .refused_critical
                .fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// False while the archive is failing (until a health probe succeeds).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

async fn writer(
    archive: Arc<dyn Archive>,
    spool: PathBuf,
    mut rx: mpsc::UnboundedReceiver<Job>,
    healthy: Arc<AtomicBool>,
    counters: Arc<ArchiveCounters>,
    spool_lock: Arc<tokio::sync::Mutex<()>>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut count = jobs[0].records.len();
        while count < BATCH {
            match rx.try_recv() {
                Ok(j) => {
                    count += j.records.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let records: Vec<NewArchiveRecord> = jobs
            .iter()
            .flat_map(|j| j.records.iter().cloned())
            .collect();
        // While the archive is failing, non-critical records go straight to
        // the spool (keeping their order behind what is already there).
        let result = if healthy.load(Ordering::Relaxed) {
            archive
                .append_archive(&records)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            Err("the archive is unavailable".into())
        };
        match result {
            Ok(()) => {
                counters
                    .written
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                for j in jobs {
                    if let Some(d) = j.done {
                        let _ = d.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                if healthy.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %e, "archive unavailable: records are spooled until it recovers");
                }
                counters.failures.fetch_add(1, Ordering::Relaxed);
                let spooled: Vec<NewArchiveRecord> = jobs
                    .iter()
                    .filter(|j| j.done.is_none())
                    .flat_map(|j| j.records.iter().cloned())
                    .collect();
                if !spooled.is_empty() {
                    let _guard = spool_lock.lock().await;
                    match append_spool(&spool, &spooled) {
                        Ok(()) => {
                            counters
                                .spooled
                                .fetch_add(spooled.len() as u64, Ordering::Relaxed);
                        }
                        Err(se) => {
                            tracing::error!(error = %se, lost = spooled.len(), "cannot write the archive spool either")
                        }
                    }
                }
                for j in jobs {
                    if let Some(d) = j.done {
                        let _ = d.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

fn append_spool(path: &std::path::Path, records: &[NewArchiveRecord]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for r in records {
        let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
        f.write_all(line.as_bytes())?;
        f.write_all(b"\n")?;
    }
    f.sync_all()
}

fn read_spool(path: &std::path::Path) -> std::io::Result<Vec<NewArchiveRecord>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(r) => out.push(r),
            // A line cut by a crash mid-write: everything before it is intact.
            Err(e) => tracing::warn!(error = %e, "skipping a damaged archive spool line"),
        }
    }
    Ok(out)
}

/// Probes the archive while it is failing (or while the spool has records)
/// and replays the spool into it once it is writable.
async fn replayer(
    archive: Arc<dyn Archive>,
    spool: PathBuf,
    healthy: Arc<AtomicBool>,
    counters: Arc<ArchiveCounters>,
    spool_lock: Arc<tokio::sync::Mutex<()>>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let has_spool = std::fs::metadata(&spool)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        if healthy.load(Ordering::Relaxed) && !has_spool {
            continue;
        }
        if archive.archive_health().await.is_err() {
            continue;
        }
        let _guard = spool_lock.lock().await;
        let has_spool = std::fs::metadata(&spool)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        if has_spool {
            match read_spool(&spool) {
                Ok(records) => {
                    let mut ok = true;
                    for chunk in records.chunks(BATCH) {
                        if let Err(e) = archive.append_archive(chunk).await {
                            tracing::warn!(error = %e, "archive spool replay failed; will retry");
                            ok = false;
                            break;
                        }
                        counters
                            .written
                            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    }
                    if !ok {
                        continue;
                    }
                    // Everything replayed: empty the spool. (A crash between the
                    // append and this truncation replays the spool again: the
                    // archive may then hold a record twice, never lose one.)
                    if let Err(e) = std::fs::write(&spool, b"") {
                        tracing::error!(error = %e, "cannot empty the archive spool");
                        continue;
                    }
                    tracing::info!(records = records.len(), "archive spool replayed");
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the archive spool");
                    continue;
                }
            }
        }
        if !healthy.swap(true, Ordering::Relaxed) {
            tracing::info!("archive writable again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_reduced_to_text() {
        assert_eq!(
            searchable_text("text/html", b"<p>Budget <b>review</b> &amp; plan</p>")
                .split_whitespace()
                .collect::<Vec<_>>(),
            vec!["Budget", "review", "&", "plan"]
        );
        assert_eq!(searchable_text("text/plain", b"a <b>"), "a <b>");
    }

    #[test]
    fn defaults_match_skype_for_business() {
        let c = ArchivingConfig::default();
        assert!(!c.enabled && !c.critical);
        assert_eq!(c.retention_days, 14);
    }

    #[test]
    fn spool_round_trip_tolerates_a_torn_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("spool");
        let r = NewArchiveRecord {
            conversation: "c".into(),
            kind: "message".into(),
            at_ms: 1,
            sender: "a@x".into(),
            participants: vec!["b@x".into()],
            content_type: "text/plain".into(),
            body: vec![0, 159, 146, 150],
            text: "x".into(),
            outcome: "delivered".into(),
            external: false,
        };
        append_spool(&path, &[r.clone(), r.clone()]).expect("spool");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"conversation\":"))
            .expect("torn");
        assert_eq!(read_spool(&path).expect("read"), vec![r.clone(), r]);
    }
}
