//! Full-text search latency over a large archive: loads synthetic archived
//! messages through the real archive backend (hash chain, FTS5 index), then
//! times searches. Run by `bench/archive-search.sh` (see bench/README.md).
//!
//! Usage: archive_bench [--db PATH] [--records N] [--queries Q]
//!        archive_bench --write-cost BATCH [--records N] [--participants P]
//!
//! `--write-cost` measures instead what appending costs: N records (default
//! 20,000) shaped like the SIP benchmark's (1,000 senders writing to one
//! recipient, one conversation per sender; with `--participants P`, one
//! conference of P members) appended BATCH records per call, with the
//! process's CPU time and its write calls and bytes (`/proc/self/io`) per
//! record.

use std::time::Instant;
use switchboard_store::archive::{Archive, ArchiveQuery, NewArchiveRecord};
use switchboard_store::sqlite::SqliteArchive;

/// A small deterministic generator (xorshift), so runs are comparable.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Zipf-like: small indexes far more often, like words in real text.
    fn zipf(&mut self, n: u64) -> u64 {
        let u = (self.below(1_000_000) as f64 + 1.0) / 1_000_001.0;
        ((n as f64).powf(u) - 1.0) as u64 % n
    }
}

const SYLLABLES: [&str; 24] = [
    "ba", "ke", "lo", "mi", "nu", "pa", "re", "si", "to", "va", "ze", "dra", "pli", "sto", "gre",
    "fan", "mor", "tel", "qui", "xen", "jor", "wup", "hal", "ion",
];

fn word(i: u64) -> String {
    let mut w = String::new();
    let mut x = i + 1;
    while x > 0 {
        w.push_str(SYLLABLES[(x % 24) as usize]);
        x /= 24;
    }
    w
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].clone())
        .unwrap_or_else(|| default.to_owned())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--write-cost") {
        return write_cost(&args).await;
    }
    let records: u64 = arg(&args, "--records", "1000000").parse()?;
    let queries: usize = arg(&args, "--queries", "200").parse()?;
    let dir = tempfile::tempdir()?;
    let db = std::path::PathBuf::from(arg(
        &args,
        "--db",
        &dir.path().join("archive.db").to_string_lossy(),
    ));
    let archive = SqliteArchive::open(&db).await?;
    let existing = archive.archive_head().await?.map(|h| h.0).unwrap_or(0) as u64;
    let users = 2000u64;
    let vocabulary = 20_000u64;
    let mut rng = Rng(0x5eed_cafe_f00d_d00d ^ existing);
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    let base_ms: i64 = 1_790_000_000_000;
    for i in existing..records {
        let a = rng.below(users);
        let b = (a + 1 + rng.below(users - 1)) % users;
        let len = 3 + rng.below(15);
        let text: Vec<String> = (0..len).map(|_| word(rng.zipf(vocabulary))).collect();
        let text = text.join(" ");
        batch.push(NewArchiveRecord {
            conversation: format!("c{}-{}", a.min(b), a.max(b)),
            kind: "message".into(),
            at_ms: base_ms + i as i64 * 1000,
            sender: format!("user{a:04}@bench.test"),
            participants: vec![format!("user{b:04}@bench.test")],
            content_type: "text/plain".into(),
            body: text.clone().into_bytes(),
            text,
            outcome: "delivered".into(),
            external: false,
        });
        if batch.len() == 1000 {
            archive.append_archive(&batch).await?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        archive.append_archive(&batch).await?;
    }
    let loaded = records.saturating_sub(existing);
    let load_s = started.elapsed().as_secs_f64();
    eprintln!(
        "loaded {loaded} records in {load_s:.1} s ({:.0} records/s); archive holds {records}",
        loaded as f64 / load_s.max(0.001)
    );

    // The same queries twice: on the archive as loaded (one index segment
    // per batch, as the server leaves them during the day), then after the
    // daily compaction.
    let loaded = measure(&archive, &mut rng.clone(), queries, users, vocabulary).await?;
    let t = Instant::now();
    let steps = archive.compact_archive_indexes().await?;
    let compact_s = t.elapsed().as_secs_f64();
    eprintln!("compacted the search indexes in {compact_s:.1} s ({steps} merge steps)");
    let compacted = measure(&archive, &mut rng, queries, users, vocabulary).await?;
    println!("| search over {records} records | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|");
    for (when, m) in [("as loaded", &loaded), ("after compaction", &compacted)] {
        println!(
            "| text (1–2 words, limit 100), {when} | {:.2} | {:.2} | {:.2} |",
            percentile(&m.text_ms, 0.5),
            percentile(&m.text_ms, 0.95),
            percentile(&m.text_ms, 1.0)
        );
        println!(
            "| user + text (limit 100), {when} | {:.2} | {:.2} | {:.2} |",
            percentile(&m.user_ms, 0.5),
            percentile(&m.user_ms, 0.95),
            percentile(&m.user_ms, 1.0)
        );
    }
    let figures = |m: &Timings| {
        serde_json::json!({
            "hits": m.hits,
            "text_ms": {"p50": percentile(&m.text_ms, 0.5), "p95": percentile(&m.text_ms, 0.95), "max": percentile(&m.text_ms, 1.0)},
            "user_text_ms": {"p50": percentile(&m.user_ms, 0.5), "p95": percentile(&m.user_ms, 0.95), "max": percentile(&m.user_ms, 1.0)},
        })
    };
    println!(
        "{}",
        serde_json::json!({"records": records, "queries": queries, "load_seconds": load_s,
            "compact_seconds": compact_s, "compact_steps": steps,
            "as_loaded": figures(&loaded), "after_compaction": figures(&compacted)})
    );
    Ok(())
}

/// Sorted latencies of one round of queries.
struct Timings {
    text_ms: Vec<f64>,
    user_ms: Vec<f64>,
    hits: usize,
}

/// One round of `queries` searches of each kind: one or two words across
/// the frequency range, and a word with a user filter.
async fn measure(
    archive: &SqliteArchive,
    rng: &mut Rng,
    queries: usize,
    users: u64,
    vocabulary: u64,
) -> Result<Timings, Box<dyn std::error::Error>> {
    let mut text_ms = Vec::new();
    let mut user_ms = Vec::new();
    let mut hits = 0usize;
    for q in 0..queries {
        let w1 = word(match q % 3 {
            0 => rng.below(50),
            1 => 50 + rng.below(950),
            _ => 1000 + rng.below(vocabulary - 1000),
        });
        let text = if q % 2 == 0 {
            w1
        } else {
            format!("{w1} {}", word(rng.below(200)))
        };
        let query = ArchiveQuery {
            text: Some(text),
            limit: 100,
            ..Default::default()
        };
        let t = Instant::now();
        hits += archive.search_archive(&query).await?.len();
        text_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let user = format!("user{:04}@bench.test", rng.below(users));
        let query = ArchiveQuery {
            user: Some(user),
            text: Some(word(rng.below(500))),
            limit: 100,
            ..Default::default()
        };
        let t = Instant::now();
        hits += archive.search_archive(&query).await?.len();
        user_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    text_ms.sort_by(f64::total_cmp);
    user_ms.sort_by(f64::total_cmp);
    Ok(Timings {
        text_ms,
        user_ms,
        hits,
    })
}

/// User + system CPU seconds of this process so far (`/proc/self/stat`, in
/// clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

/// `(write calls, bytes written to storage)` of this process so far.
fn io_counters() -> (u64, u64) {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let get = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("syscw:"), get("write_bytes:"))
}

async fn write_cost(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let batch: usize = arg(args, "--write-cost", "1").parse()?;
    let records: usize = arg(args, "--records", "20000").parse()?;
    let participants: usize = arg(args, "--participants", "0").parse()?;
    let unsynced = args.iter().any(|a| a == "--unsynced");
    let dir = tempfile::tempdir()?;
    let db = std::path::PathBuf::from(arg(
        args,
        "--db",
        &dir.path().join("archive.db").to_string_lossy(),
    ));
    let archive = SqliteArchive::open(&db).await?;
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let conversations: Vec<String> = (0..1000)
        .map(|_| format!("{:016x}{:016x}", rng.next(), rng.next()))
        .collect();
    let members: Vec<String> = (0..participants)
        .map(|i| format!("user{i:04}@bench.test"))
        .collect();
    let make = |i: usize, rng: &mut Rng| {
        let (conversation, sender, to) = if participants > 0 {
            let s = rng.below(participants as u64) as usize;
            let to: Vec<String> = members
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != s)
                .map(|(_, m)| m.clone())
                .collect();
            ("conf-bench".to_owned(), members[s].clone(), to)
        } else {
            let s = rng.below(1000) as usize;
            (
                conversations[s].clone(),
                format!("user{s:04}@bench.test"),
                vec!["user0999@bench.test".to_owned()],
            )
        };
        let text = format!("Hello from {sender}: message {i} of the Switchboard benchmark.");
        NewArchiveRecord {
            conversation,
            kind: "message".into(),
            at_ms: 1_790_000_000_000 + i as i64,
            sender,
            participants: to,
            content_type: "text/plain".into(),
            body: text.clone().into_bytes(),
            text,
            outcome: "delivered".into(),
            external: false,
        }
    };
    // Warm-up: the tables and indexes hold something before measuring.
    let warm: Vec<NewArchiveRecord> = (0..records / 4).map(|i| make(i, &mut rng)).collect();
    for chunk in warm.chunks(500) {
        archive.append_archive(chunk).await?;
    }
    let all: Vec<NewArchiveRecord> = (0..records).map(|i| make(records + i, &mut rng)).collect();
    let (cpu0, (calls0, bytes0), t0) = (cpu_seconds(), io_counters(), Instant::now());
    for chunk in all.chunks(batch.max(1)) {
        if unsynced {
            archive.append_archive_unsynced(chunk).await?;
        } else {
            archive.append_archive(chunk).await?;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, (calls1, bytes1)) = (cpu_seconds(), io_counters());
    let n = records.max(1) as f64;
    println!(
        "{records} records, batch {batch}, participants {participants}, {}: \
         {:.1} us CPU/record, {:.1} us wall/record, {:.2} write calls/record, {:.1} KiB written/record",
        if unsynced { "unsynced" } else { "durable" },
        (cpu1 - cpu0) * 1e6 / n,
        elapsed * 1e6 / n,
        calls1.saturating_sub(calls0) as f64 / n,
        bytes1.saturating_sub(bytes0) as f64 / 1024.0 / n,
    );
    archive.close().await;
    Ok(())
}
