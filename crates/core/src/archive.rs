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
use tokio::sync::{Notify, mpsc, oneshot};

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
    if content_type
        .get(.."text/html".len())
        .is_some_and(|t| t.eq_ignore_ascii_case("text/html"))
    {
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

// Records are nearly every job (one per message); boxing them to shrink the
// rare flush would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Job {
    /// A record to write. Critical writes wait for the commit; the rest are
    /// spooled on failure.
    Record(NewArchiveRecord, Waiter),
    /// Someone waiting until every record captured before is written (or
    /// spooled): a stopping server.
    Flush(oneshot::Sender<()>),
}

/// Writes archive records in batches (group commit), spools what fails to a
/// durable file and replays it when the archive is writable again.
///
/// Records are appended in the order they were captured, one transaction per
/// batch:
/// - non-critical records are gathered for up to [`GATHER`] (or until
///   [`BATCH`] are waiting) and committed without waiting for the disk
///   ([`Archive::append_archive_unsynced`]): one commit per batch instead of
///   per record is what makes archiving cheap. A crash of the process loses
///   what was still being gathered (at most [`GATHER`] of traffic), as it
///   always lost what was queued; a committed batch survives it. A power loss
///   can also lose the newest unsynced commits.
/// - a critical record is committed at once, together with everything queued
///   before it (non-critical records included), durably
///   ([`Archive::append_archive`]); records captured meanwhile by other
///   requests form the next batch, so concurrent critical requests share
///   commits, and each waiter is released when the batch holding its record
///   is on disk.
pub struct Archiver {
    tx: mpsc::UnboundedSender<Job>,
    /// Wakes the writer out of its gathering sleep for a critical record.
    urgent: Arc<Notify>,
    /// Set when the server stops: the writer no longer gathers, it writes
    /// each record as soon as it is captured.
    closing: Arc<AtomicBool>,
    healthy: Arc<AtomicBool>,
    pub counters: Arc<ArchiveCounters>,
}

/// Most records written in one transaction.
const BATCH: usize = 2000;

/// How long non-critical records are gathered before they are committed.
const GATHER: Duration = Duration::from_millis(500);

impl Archiver {
    /// Starts the writer over `archive`, spooling to `spool` (a file).
    pub fn start(archive: Arc<dyn Archive>, spool: PathBuf) -> Archiver {
        let (tx, rx) = mpsc::unbounded_channel();
        // Records a previous run spooled are replayed before anything new is
        // written (the writer spools behind them until then).
        let healthy = Arc::new(AtomicBool::new(
            !has_records(&spool) && !has_records(&replaying_path(&spool)),
        ));
        let counters = Arc::new(ArchiveCounters::default());
        // Held while the spool is appended to or replayed, so that nothing is
        // appended between a replay's read and its truncation.
        let spool_lock = Arc::new(tokio::sync::Mutex::new(()));
        let urgent = Arc::new(Notify::new());
        let closing = Arc::new(AtomicBool::new(false));
        tokio::spawn(writer(
            archive.clone(),
            spool.clone(),
            rx,
            healthy.clone(),
            counters.clone(),
            spool_lock.clone(),
            (urgent.clone(), closing.clone()),
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
            urgent,
            closing,
            healthy,
            counters,
        }
    }

    /// Records `record` without waiting; if the archive cannot take it, it is
    /// spooled durably and written later.
    pub fn capture(&self, record: NewArchiveRecord) {
        let _ = self.tx.send(Job::Record(record, None));
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
        if self.tx.send(Job::Record(record, Some(done))).is_err() {
            return Err("the archiver stopped".into());
        }
        self.urgent.notify_one();
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

    /// Returns once every record captured before the call is written to the
    /// archive or, if it cannot be written, to the spool: the writer gathers
    /// records for up to [`GATHER`] before writing them, and a server that
    /// stops must not drop what it has gathered. Returns at once if the
    /// writer has stopped.
    pub async fn flush(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).is_ok() {
            self.urgent.notify_one();
            let _ = rx.await;
        }
    }

    /// For a stopping server: from now on every record is written as soon as
    /// it is captured (requests still in progress finish during the stop),
    /// and what is being gathered is written before this returns.
    pub async fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.flush().await;
    }

    /// False while the archive is failing (until a health probe succeeds).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// The next batch, in capture order, once `first` arrived: with a critical
/// record or a flush in it, whatever is queued now; otherwise what is queued within
/// [`GATHER`] of `first` (nothing is gathered once the archiver is closing),
/// cut short by a critical record (which joins it) or a flush (released once
/// the batch is written). At most [`BATCH`]
/// records (the rest are the next batch's), appended to `records` with their
/// waiters (`None` for non-critical records) in `waiters`, flushes in
/// `flushes`: the writer reuses the vectors, whose memory would otherwise be
/// fresh (page faults) for every batch.
///
/// The writer does not wait on the queue while it gathers: it sleeps, and
/// only a critical capture wakes it (`urgent`), so that non-critical captures
/// (one per message) do not each wake a task and a worker thread.
async fn gather(
    first: Job,
    rx: &mut mpsc::UnboundedReceiver<Job>,
    (urgent, closing): (&Notify, &AtomicBool),
    records: &mut Vec<NewArchiveRecord>,
    waiters: &mut Vec<Waiter>,
    flushes: &mut Vec<oneshot::Sender<()>>,
) {
    let deadline = tokio::time::Instant::now() + GATHER;
    // A wake-up stored for a job that was taken off the queue without
    // sleeping would cut this batch short: drop it. (A job is queued before
    // its wake-up is sent, so the jobs such a wake-up was for are read below.)
    tokio::select! {
        biased;
        () = urgent.notified() => {}
        () = std::future::ready(()) => {}
    }
    // Whether to write now: a critical record or a flush is waiting.
    let mut now = take(first, records, waiters, flushes);
    let mut slept = false;
    loop {
        while records.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => now |= take(job, records, waiters, flushes),
                Err(_) => break,
            }
        }
        if now || slept || records.len() >= BATCH || closing.load(Ordering::Relaxed) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = urgent.notified() => {}
        }
        slept = true;
    }
}

/// Adds `job` to the batch being gathered; true if it must be written now
/// (a critical record, a flush).
fn take(
    job: Job,
    records: &mut Vec<NewArchiveRecord>,
    waiters: &mut Vec<Waiter>,
    flushes: &mut Vec<oneshot::Sender<()>>,
) -> bool {
    match job {
        Job::Record(record, done) => {
            let critical = done.is_some();
            records.push(record);
            waiters.push(done);
            critical
        }
        Job::Flush(done) => {
            flushes.push(done);
            true
        }
    }
}

/// Who waits for a record's commit (critical mode), if anyone.
type Waiter = Option<oneshot::Sender<Result<(), String>>>;

async fn writer(
    archive: Arc<dyn Archive>,
    spool: PathBuf,
    mut rx: mpsc::UnboundedReceiver<Job>,
    healthy: Arc<AtomicBool>,
    counters: Arc<ArchiveCounters>,
    spool_lock: Arc<tokio::sync::Mutex<()>>,
    (urgent, closing): (Arc<Notify>, Arc<AtomicBool>),
) {
    let mut records: Vec<NewArchiveRecord> = Vec::with_capacity(BATCH);
    let mut waiters: Vec<Waiter> = Vec::with_capacity(BATCH);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        records.clear();
        waiters.clear();
        gather(
            first,
            &mut rx,
            (&urgent, &closing),
            &mut records,
            &mut waiters,
            &mut flushes,
        )
        .await;
        write_batch(
            archive.as_ref(),
            &spool,
            &records,
            &mut waiters,
            &healthy,
            &counters,
            &spool_lock,
        )
        .await;
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes one gathered batch (nothing if it holds only flushes), or spools
/// its non-critical records when the archive cannot take it; releases the
/// critical waiters with the outcome.
async fn write_batch(
    archive: &dyn Archive,
    spool: &std::path::Path,
    records: &[NewArchiveRecord],
    waiters: &mut Vec<Waiter>,
    healthy: &AtomicBool,
    counters: &ArchiveCounters,
    spool_lock: &tokio::sync::Mutex<()>,
) {
    if records.is_empty() {
        return;
    }
    let critical = waiters.iter().any(Option::is_some);
    // While the archive is failing, non-critical records go straight to
    // the spool (keeping their order behind what is already there).
    let result: Result<(), String> = if !healthy.load(Ordering::Relaxed) {
        Err("the archive is unavailable".into())
    } else {
        let appended = if critical {
            archive.append_archive(records).await
        } else {
            archive.append_archive_unsynced(records).await
        };
        appended.map(|_| ()).map_err(|e| e.to_string())
    };
    match result {
        Ok(()) => {
            counters
                .written
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            for done in waiters.drain(..).flatten() {
                let _ = done.send(Ok(()));
            }
        }
        Err(e) => {
            if healthy.swap(false, Ordering::Relaxed) {
                tracing::error!(error = %e, "archive unavailable: records are spooled until it recovers");
            }
            counters.failures.fetch_add(1, Ordering::Relaxed);
            let spooled: Vec<&NewArchiveRecord> = records
                .iter()
                .zip(waiters.iter())
                .filter(|(_, done)| done.is_none())
                .map(|(r, _)| r)
                .collect();
            if !spooled.is_empty() {
                let _guard = spool_lock.lock().await;
                match append_spool(spool, &spooled) {
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
            for done in waiters.drain(..).flatten() {
                let _ = done.send(Err(e.clone()));
            }
        }
    }
}

fn append_spool(path: &std::path::Path, records: &[&NewArchiveRecord]) -> std::io::Result<()> {
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

/// Probes the archive while it is failing (or while the spool has records),
/// replays the spool once it is writable, then declares it healthy. The spool is moved aside (to [`replaying_path`]) under the spool
/// lock and replayed without it, so that the writer can keep spooling, and a
/// stopping server keep flushing, while a long spool is replayed; what was
/// spooled meanwhile is replayed next, after it, keeping capture order.
async fn replayer(
    archive: Arc<dyn Archive>,
    spool: PathBuf,
    healthy: Arc<AtomicBool>,
    counters: Arc<ArchiveCounters>,
    spool_lock: Arc<tokio::sync::Mutex<()>>,
) {
    let replaying = replaying_path(&spool);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if healthy.load(Ordering::Relaxed) && !has_records(&spool) && !has_records(&replaying) {
            continue;
        }
        if archive.archive_health().await.is_err() {
            continue;
        }
        // What a crash left in `replaying` goes first; otherwise the spool
        // becomes the file to replay.
        if !has_records(&replaying) {
            let _guard = spool_lock.lock().await;
            if has_records(&spool)
                && let Err(e) = std::fs::rename(&spool, &replaying)
            {
                tracing::error!(error = %e, "cannot move the archive spool aside to replay it");
                continue;
            }
        }
        if has_records(&replaying) {
            match read_spool(&replaying) {
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
                    // Everything replayed: remove it. (A crash between the
                    // append and the removal replays it again: the archive
                    // may then hold a record twice, never lose one.)
                    if let Err(e) = std::fs::remove_file(&replaying) {
                        tracing::error!(error = %e, "cannot remove the replayed archive spool");
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
        // Healthy only with nothing left to replay, decided under the lock
        // the writer spools under: a record spooled meanwhile waits for the
        // next round, and nothing is written ahead of it.
        let _guard = spool_lock.lock().await;
        if has_records(&spool) || has_records(&replaying) {
            continue;
        }
        if !healthy.swap(true, Ordering::Relaxed) {
            tracing::info!("archive writable again");
        }
    }
}

/// Where the spool is moved while it is replayed.
pub fn replaying_path(spool: &std::path::Path) -> PathBuf {
    let mut name = spool.as_os_str().to_owned();
    name.push(".replaying");
    PathBuf::from(name)
}

/// Records waiting to be archived in the spool at `spool` (the file being
/// replayed included): what `archive status` reports.
pub fn spooled_records(spool: &std::path::Path) -> usize {
    [spool.to_path_buf(), replaying_path(spool)]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.lines().filter(|l| !l.trim().is_empty()).count())
        .sum()
}

fn has_records(path: &std::path::Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
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
        append_spool(&path, &[&r, &r]).expect("spool");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"conversation\":"))
            .expect("torn");
        assert_eq!(read_spool(&path).expect("read"), vec![r.clone(), r]);
    }
}

#[cfg(test)]
mod writer_tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;
    use switchboard_store::StoreResult;
    use switchboard_store::archive::{ArchiveQuery, ArchiveRecord, ConversationSummary};
    use switchboard_store::sqlite::SqliteArchive;

    /// An in-memory archive that records each append (batch size, durable)
    /// and can be made to fail, or to take `slow_ms` per append.
    struct Recording {
        inner: SqliteArchive,
        appends: Mutex<Vec<(usize, bool)>>,
        failing: AtomicBool,
        slow_ms: std::sync::atomic::AtomicU64,
    }

    impl Recording {
        async fn new() -> Arc<Recording> {
            Arc::new(Recording {
                inner: SqliteArchive::open_in_memory().await.expect("archive"),
                appends: Mutex::new(Vec::new()),
                failing: AtomicBool::new(false),
                slow_ms: std::sync::atomic::AtomicU64::new(0),
            })
        }

        fn appends(&self) -> Vec<(usize, bool)> {
            self.appends.lock().expect("lock").clone()
        }

        async fn append(
            &self,
            records: &[NewArchiveRecord],
            durable: bool,
        ) -> StoreResult<Vec<i64>> {
            if self.failing.load(Ordering::Relaxed) {
                return Err(switchboard_store::StoreError::Unavailable("failing".into()));
            }
            let slow = self.slow_ms.load(Ordering::Relaxed);
            if slow > 0 {
                tokio::time::sleep(Duration::from_millis(slow)).await;
            }
            self.appends
                .lock()
                .expect("lock")
                .push((records.len(), durable));
            self.inner.append_archive(records).await
        }

        async fn texts(&self) -> Vec<String> {
            self.inner
                .archive_range(0, 0)
                .await
                .expect("range")
                .into_iter()
                .map(|r| r.record.text)
                .collect()
        }
    }

    #[async_trait::async_trait]
    impl Archive for Recording {
        async fn append_archive(&self, records: &[NewArchiveRecord]) -> StoreResult<Vec<i64>> {
            self.append(records, true).await
        }
        async fn append_archive_unsynced(
            &self,
            records: &[NewArchiveRecord],
        ) -> StoreResult<Vec<i64>> {
            self.append(records, false).await
        }
        async fn search_archive(&self, q: &ArchiveQuery) -> StoreResult<Vec<ArchiveRecord>> {
            self.inner.search_archive(q).await
        }
        async fn archive_range(&self, after: i64, limit: u32) -> StoreResult<Vec<ArchiveRecord>> {
            self.inner.archive_range(after, limit).await
        }
        async fn archive_anchor(&self) -> StoreResult<(i64, String)> {
            self.inner.archive_anchor().await
        }
        async fn archive_head(&self) -> StoreResult<Option<(i64, String)>> {
            self.inner.archive_head().await
        }
        async fn purge_archive(&self, before_ms: i64, only_mailed: bool) -> StoreResult<u64> {
            self.inner.purge_archive(before_ms, only_mailed).await
        }
        async fn conversations_to_mail(
            &self,
            idle_before_ms: i64,
            limit: u32,
        ) -> StoreResult<Vec<ConversationSummary>> {
            self.inner
                .conversations_to_mail(idle_before_ms, limit)
                .await
        }
        async fn conversation_summary(
            &self,
            conversation: &str,
        ) -> StoreResult<Option<ConversationSummary>> {
            self.inner.conversation_summary(conversation).await
        }
        async fn mark_mailed(
            &self,
            conversation: &str,
            mailbox: &str,
            at_ms: i64,
        ) -> StoreResult<()> {
            self.inner.mark_mailed(conversation, mailbox, at_ms).await
        }
        async fn mailed(&self, conversation: &str) -> StoreResult<Vec<String>> {
            self.inner.mailed(conversation).await
        }
        async fn archive_health(&self) -> StoreResult<()> {
            if self.failing.load(Ordering::Relaxed) {
                return Err(switchboard_store::StoreError::Unavailable("failing".into()));
            }
            self.inner.archive_health().await
        }
    }

    /// An archiver writing to a fresh recording archive, spooling in a
    /// temporary directory (kept alive by the caller).
    async fn started() -> (Arc<Recording>, tempfile::TempDir, Archiver) {
        let archive = Recording::new().await;
        let dir = tempfile::tempdir().expect("tmp");
        let archiver = Archiver::start(archive.clone(), dir.path().join("spool"));
        (archive, dir, archiver)
    }

    fn record(text: &str) -> NewArchiveRecord {
        NewArchiveRecord {
            conversation: "c".into(),
            kind: "message".into(),
            at_ms: 1,
            sender: "a@x".into(),
            participants: vec!["b@x".into()],
            content_type: "text/plain".into(),
            body: text.as_bytes().to_vec(),
            text: text.into(),
            outcome: "delivered".into(),
            external: false,
        }
    }

    /// Waits (up to 5 s) until `n` records were written.
    async fn written(archiver: &Archiver, n: u64) {
        let start = Instant::now();
        while archiver.counters.written.load(Ordering::Relaxed) < n {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "records not written"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn non_critical_records_are_gathered_into_one_unsynced_commit_in_order() {
        let (archive, _dir, archiver) = started().await;
        let texts: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        for t in &texts {
            archiver.capture(record(t));
        }
        written(&archiver, 50).await;
        assert_eq!(archive.appends(), vec![(50, false)]);
        assert_eq!(archive.texts().await, texts);
        assert_eq!(
            archive
                .inner
                .archive_head()
                .await
                .expect("head")
                .map(|h| h.0),
            Some(50)
        );
    }

    #[tokio::test]
    async fn flush_writes_what_is_being_gathered_without_waiting_for_the_window() {
        let (archive, _dir, archiver) = started().await;
        // Nothing captured: returns at once.
        archiver.flush().await;
        assert!(archive.appends().is_empty());
        for t in ["one", "two", "three"] {
            archiver.capture(record(t));
        }
        let started = Instant::now();
        archiver.flush().await;
        assert!(
            started.elapsed() < GATHER,
            "flush did not wait for the gathering window"
        );
        // Written when flush returns, not later.
        assert_eq!(archive.texts().await, vec!["one", "two", "three"]);
        assert_eq!(archive.appends(), vec![(3, false)]);
        // Records captured after a flush form the next batch, written as usual.
        archiver.capture(record("four"));
        written(&archiver, 4).await;
        assert_eq!(archive.appends(), vec![(3, false), (1, false)]);
    }

    #[tokio::test]
    async fn once_closing_records_are_written_without_gathering() {
        let (archive, _dir, archiver) = started().await;
        archiver.capture(record("before"));
        archiver.close().await;
        assert_eq!(archive.texts().await, vec!["before"]);
        // Requests finishing during the stop: each written at once, not
        // after a gathering window the process would not live to see.
        for (i, text) in ["during the stop", "and after it"].iter().enumerate() {
            let started = Instant::now();
            archiver.capture(record(text));
            written(&archiver, 2 + i as u64).await;
            assert!(
                started.elapsed() < GATHER,
                "{text:?} written after {:?}",
                started.elapsed()
            );
        }
        assert_eq!(
            archive.texts().await,
            vec!["before", "during the stop", "and after it"]
        );
    }

    #[tokio::test]
    async fn a_critical_record_is_committed_at_once_and_durably_with_what_was_queued_before_it() {
        let (archive, _dir, archiver) = started().await;
        archiver.capture(record("before 1"));
        archiver.capture(record("before 2"));
        let started = Instant::now();
        archiver
            .capture_critical(record("critical"))
            .await
            .expect("committed");
        assert!(
            started.elapsed() < GATHER,
            "the critical record did not wait for the gathering window to pass"
        );
        assert_eq!(archive.appends(), vec![(3, true)]);
        assert_eq!(
            archive.texts().await,
            vec!["before 1", "before 2", "critical"]
        );

        // Concurrent critical requests share commits; every one is released
        // with its record on disk.
        let archiver = Arc::new(archiver);
        let waiters: Vec<_> = (0..20)
            .map(|i| {
                let archiver = archiver.clone();
                tokio::spawn(
                    async move { archiver.capture_critical(record(&format!("c{i}"))).await },
                )
            })
            .collect();
        for w in waiters {
            w.await.expect("task").expect("committed");
        }
        let appends = archive.appends();
        assert!(appends.iter().all(|(_, durable)| *durable), "{appends:?}");
        assert_eq!(appends.iter().map(|(n, _)| n).sum::<usize>(), 23);
        assert!(
            appends.len() < 1 + 20,
            "some of the 20 requests shared a commit: {appends:?}"
        );
        assert_eq!(archive.texts().await.len(), 23);
    }

    #[tokio::test]
    async fn when_the_archive_fails_non_critical_records_are_spooled_and_replayed_critical_refused()
    {
        let archive = Recording::new().await;
        let dir = tempfile::tempdir().expect("tmp");
        let spool = dir.path().join("spool");
        let archiver = Archiver::start(archive.clone(), spool.clone());
        archive.failing.store(true, Ordering::Relaxed);
        archiver.capture(record("kept 1"));
        archiver.capture(record("kept 2"));
        assert!(archiver.capture_critical(record("refused")).await.is_err());
        assert!(!archiver.is_healthy());
        assert_eq!(
            read_spool(&spool)
                .expect("spool")
                .iter()
                .map(|r| r.text.as_str())
                .collect::<Vec<_>>(),
            vec!["kept 1", "kept 2"]
        );
        archive.failing.store(false, Ordering::Relaxed);
        written(&archiver, 2).await;
        assert_eq!(archive.texts().await, vec!["kept 1", "kept 2"]);
        assert!(archiver.is_healthy());
    }

    /// A long replay does not hold up the writer: records captured while the
    /// spool is replayed are spooled behind it (a flush returns at once), and
    /// everything ends up archived in capture order.
    #[tokio::test]
    async fn records_captured_during_a_long_replay_are_spooled_behind_it_without_waiting() {
        let (archive, dir, archiver) = started().await;
        let spool = dir.path().join("spool");
        archive.failing.store(true, Ordering::Relaxed);
        for t in ["outage 1", "outage 2"] {
            archiver.capture(record(t));
        }
        archiver.flush().await;
        assert_eq!(spooled_records(&spool), 2);
        // The archive is back, but each append now takes 2 s.
        archive.slow_ms.store(2_000, Ordering::Relaxed);
        archive.failing.store(false, Ordering::Relaxed);
        let start = Instant::now();
        while !replaying_path(&spool).exists() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "replay not started"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        archiver.capture(record("during the replay"));
        let flushed = Instant::now();
        archiver.flush().await;
        assert!(
            flushed.elapsed() < Duration::from_secs(1),
            "flush waited {:?} for the replay",
            flushed.elapsed()
        );
        assert_eq!(spooled_records(&spool), 3, "spooled behind the replay");
        assert!(
            !archiver.is_healthy(),
            "not healthy before the spool is empty"
        );
        archive.slow_ms.store(0, Ordering::Relaxed);
        written(&archiver, 3).await;
        assert_eq!(
            archive.texts().await,
            vec!["outage 1", "outage 2", "during the replay"]
        );
        assert_eq!(spooled_records(&spool), 0);
        let start = Instant::now();
        while !archiver.is_healthy() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "never healthy again"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Healthy again: records go straight to the archive.
        archiver.capture(record("after"));
        written(&archiver, 4).await;
        assert_eq!(
            archive.texts().await.last().map(String::as_str),
            Some("after")
        );
    }

    /// Records a previous run spooled are archived before anything captured
    /// after a restart.
    #[tokio::test]
    async fn a_spool_left_by_a_previous_run_is_archived_first() {
        let archive = Recording::new().await;
        let dir = tempfile::tempdir().expect("tmp");
        let spool = dir.path().join("spool");
        append_spool(&replaying_path(&spool), &[&record("left mid-replay")]).expect("write");
        append_spool(&spool, &[&record("left in the spool")]).expect("write");
        let archiver = Archiver::start(archive.clone(), spool.clone());
        assert!(
            !archiver.is_healthy(),
            "unhealthy until the old spool is replayed"
        );
        archiver.capture(record("new"));
        written(&archiver, 3).await;
        assert_eq!(
            archive.texts().await,
            vec!["left mid-replay", "left in the spool", "new"]
        );
    }
}
