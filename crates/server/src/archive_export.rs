//! Export of archived conversations for auditors and eDiscovery: EML (one
//! RFC 5322 message per conversation with a readable transcript), mbox, and
//! JSON lines (one record per line, every field, hashes included).

use crate::archive_cli::{FilterArgs, fmt_time, open_archive, query};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use switchboard_store::archive::{Archive, ArchiveRecord};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One .eml file per conversation, in the output directory.
    Eml,
    /// One mbox file holding a message per conversation.
    Mbox,
    /// One JSON object per archived record.
    Jsonl,
}

/// `archive export …`
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    pub format: Format,
    /// Output file (mbox, jsonl) or directory (eml).
    #[arg(long)]
    pub output: PathBuf,
    /// The filters of `archive search`; everything that matches is exported.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Groups records by conversation, conversations in order of first record.
pub fn by_conversation(records: &[ArchiveRecord]) -> Vec<(String, Vec<&ArchiveRecord>)> {
    let mut order: Vec<String> = Vec::new();
    let mut map: BTreeMap<String, Vec<&ArchiveRecord>> = BTreeMap::new();
    for r in records {
        if !map.contains_key(&r.record.conversation) {
            order.push(r.record.conversation.clone());
        }
        map.entry(r.record.conversation.clone())
            .or_default()
            .push(r);
    }
    order
        .into_iter()
        .map(|c| {
            let v = map.remove(&c).unwrap_or_default();
            (c, v)
        })
        .collect()
}

/// Everyone in a conversation's records, sorted.
pub fn participants<'a>(records: impl IntoIterator<Item = &'a ArchiveRecord>) -> Vec<String> {
    let mut p: Vec<String> = records
        .into_iter()
        .flat_map(|r| {
            std::iter::once(r.record.sender.clone()).chain(r.record.participants.iter().cloned())
        })
        .filter(|s| !s.is_empty())
        .collect();
    p.sort();
    p.dedup();
    p
}

/// The readable transcript of a conversation.
pub fn transcript<'a>(
    conversation: &str,
    records: impl IntoIterator<Item = &'a ArchiveRecord>,
) -> String {
    let records: Vec<&ArchiveRecord> = records.into_iter().collect();
    let mut out = format!(
        "Conversation {conversation}\nParticipants: {}\n",
        participants(records.iter().copied()).join(", ")
    );
    if let (Some(first), Some(last)) = (records.first(), records.last()) {
        out.push_str(&format!(
            "From {} to {}\n",
            fmt_time(first.record.at_ms),
            fmt_time(last.record.at_ms)
        ));
    }
    out.push('\n');
    for r in records {
        let when = fmt_time(r.record.at_ms);
        match r.record.kind.as_str() {
            "message" => {
                let text = if r.record.text.is_empty() {
                    format!(
                        "[{} content, {} bytes]",
                        r.record.content_type,
                        r.record.body.len()
                    )
                } else {
                    r.record.text.clone()
                };
                let outcome = if r.record.outcome.is_empty() || r.record.outcome == "delivered" {
                    String::new()
                } else {
                    format!("  ({})", r.record.outcome)
                };
                out.push_str(&format!(
                    "[{when}] {}: {}{outcome}\n",
                    r.record.sender,
                    text.replace('\n', "\n    ")
                ));
            }
            "join" => out.push_str(&format!("[{when}] {} joined\n", r.record.sender)),
            "leave" => out.push_str(&format!("[{when}] {} left\n", r.record.sender)),
            "delivery" => out.push_str(&format!(
                "[{when}]   message from {} {}\n",
                r.record.sender, r.record.outcome
            )),
            other => out.push_str(&format!("[{when}] {} {other}\n", r.record.sender)),
        }
    }
    out
}

/// One RFC 5322 message holding a conversation's transcript, with the
/// participants and time span in headers.
pub fn eml<'a>(
    conversation: &str,
    records: impl IntoIterator<Item = &'a ArchiveRecord>,
    archive_address: &str,
) -> anyhow::Result<Vec<u8>> {
    let records: Vec<&ArchiveRecord> = records.into_iter().collect();
    let people = participants(records.iter().copied());
    let first = records.first().map(|r| r.record.at_ms).unwrap_or(0);
    let last = records.last().map(|r| r.record.at_ms).unwrap_or(first);
    let subject = format!(
        "IM conversation with {} ({} - {})",
        people.join(", "),
        fmt_time(first),
        fmt_time(last)
    );
    let to: Vec<mail_builder::headers::address::Address> = people
        .iter()
        .map(|p| mail_builder::headers::address::Address::from(p.clone()))
        .collect();
    let message = mail_builder::MessageBuilder::new()
        .from(("Switchboard archive", archive_address))
        .to(mail_builder::headers::address::Address::new_list(to))
        .subject(subject)
        .date(first / 1000)
        .message_id(format!("{}@archive.switchboard", sanitize(conversation)))
        .header(
            "X-Switchboard-Conversation",
            mail_builder::headers::text::Text::new(conversation.to_owned()),
        )
        .header(
            "X-Switchboard-Participants",
            mail_builder::headers::text::Text::new(people.join(", ")),
        )
        .header(
            "X-Switchboard-Start",
            mail_builder::headers::text::Text::new(fmt_time(first)),
        )
        .header(
            "X-Switchboard-End",
            mail_builder::headers::text::Text::new(fmt_time(last)),
        )
        .header(
            "X-Switchboard-Records",
            mail_builder::headers::text::Text::new(
                records
                    .iter()
                    .map(|r| r.seq.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        )
        .text_body(transcript(conversation, records.iter().copied()));
    message.write_to_vec().context("cannot build the message")
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Appends one message to an mbox (mboxrd: `From ` lines in the body are quoted).
pub fn mbox_entry(
    out: &mut impl Write,
    eml: &[u8],
    sender: &str,
    at_ms: i64,
) -> std::io::Result<()> {
    let date = time::OffsetDateTime::from_unix_timestamp(at_ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
    );
    writeln!(
        out,
        "From {} {}",
        if sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            sender
        },
        date.format(&fmt).unwrap_or_default()
    )?;
    let text = String::from_utf8_lossy(eml);
    for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
        let unquoted = line.trim_start_matches('>');
        if unquoted.starts_with("From ") {
            write!(out, ">")?;
        }
        writeln!(out, "{line}")?;
    }
    writeln!(out)
}

/// Runs an export.
pub async fn run(data: &Path, args: ExportArgs) -> anyhow::Result<()> {
    let archive = open_archive(data).await?;
    let q = query(
        data,
        &archive,
        &args.filter,
        switchboard_store::archive::MAX_ARCHIVE_LIMIT,
    )
    .await?;
    // Page through everything that matches (the limit is per page).
    let mut records: Vec<ArchiveRecord> = Vec::new();
    let mut page = q.clone();
    loop {
        let batch = archive.search_archive(&page).await?;
        let n = batch.len();
        page.after_seq = batch.last().map(|r| r.seq);
        records.extend(batch);
        if n < switchboard_store::archive::MAX_ARCHIVE_LIMIT as usize {
            break;
        }
    }
    if records.is_empty() {
        bail!("nothing to export: no archived record matches");
    }
    let bar = indicatif::ProgressBar::new(records.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {wide_bar} {pos}/{len} records ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("exporting");
    let domain = records
        .first()
        .and_then(|r| r.record.sender.split_once('@').map(|(_, d)| d.to_owned()))
        .unwrap_or_else(|| "localhost".into());
    let archive_address = format!("archive@{domain}");
    let groups = by_conversation(&records);
    let (mut files, mut count) = (0usize, 0usize);
    match args.format {
        Format::Jsonl => {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&args.output)
                    .with_context(|| format!("cannot create {}", args.output.display()))?,
            );
            for r in &records {
                serde_json::to_writer(&mut f, r)?;
                f.write_all(b"\n")?;
                count += 1;
                bar.inc(1);
            }
            f.flush()?;
            files = 1;
        }
        Format::Mbox => {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&args.output)
                    .with_context(|| format!("cannot create {}", args.output.display()))?,
            );
            for (conv, recs) in &groups {
                let msg = eml(conv, recs.iter().copied(), &archive_address)?;
                mbox_entry(
                    &mut f,
                    &msg,
                    &archive_address,
                    recs.first().map(|r| r.record.at_ms).unwrap_or(0),
                )?;
                count += 1;
                bar.inc(recs.len() as u64);
            }
            f.flush()?;
            files = 1;
        }
        Format::Eml => {
            std::fs::create_dir_all(&args.output)
                .with_context(|| format!("cannot create directory {}", args.output.display()))?;
            for (conv, recs) in &groups {
                let msg = eml(conv, recs.iter().copied(), &archive_address)?;
                let path = args.output.join(format!("{}.eml", sanitize(conv)));
                std::fs::write(&path, msg)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                files += 1;
                count += 1;
                bar.inc(recs.len() as u64);
            }
        }
    }
    bar.finish_and_clear();
    println!(
        "{}",
        summary(args.format, count, records.len(), &args.output, files)
    );
    Ok(())
}

/// What an export says when done: conversations and their records for EML
/// and mbox (one message per conversation), records for JSON lines.
fn summary(format: Format, count: usize, records: usize, output: &Path, files: usize) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let what = match format {
        Format::Jsonl => plural(records, "record", "records"),
        Format::Eml | Format::Mbox => format!(
            "{} ({})",
            plural(count, "conversation", "conversations"),
            plural(records, "record", "records")
        ),
    };
    format!(
        "exported {what} to {} ({})",
        output.display(),
        plural(files, "file", "files")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_store::archive::NewArchiveRecord;

    fn rec(seq: i64, conv: &str, from: &str, text: &str) -> ArchiveRecord {
        ArchiveRecord {
            seq,
            record: NewArchiveRecord {
                conversation: conv.into(),
                kind: "message".into(),
                at_ms: 1_795_000_000_000 + seq * 1000,
                sender: from.into(),
                participants: vec!["bob@example.test".into()],
                content_type: "text/plain".into(),
                body: text.as_bytes().to_vec(),
                text: text.into(),
                outcome: "delivered".into(),
                external: false,
            },
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn eml_carries_participants_span_and_transcript() {
        let records = [
            rec(1, "c1", "alice@example.test", "hello"),
            rec(2, "c1", "bob@example.test", "From here on, hi"),
        ];
        let msg =
            String::from_utf8(eml("c1", records.iter(), "archive@example.test").expect("eml"))
                .expect("utf8");
        assert!(msg.contains("X-Switchboard-Conversation: c1"), "{msg}");
        assert!(msg.contains("alice@example.test") && msg.contains("bob@example.test"));
        assert!(msg.contains("hello"));
        // Long subjects are RFC 2047 encoded and folded; decode the ASCII
        // Q-encoding (only `_` stands for a space here) to check the text.
        let subject: String = msg
            .split("\r\n")
            .skip_while(|l| !l.starts_with("Subject:"))
            .take_while(|l| l.starts_with("Subject:") || l.starts_with(' '))
            .map(|l| l.trim_start_matches("Subject:").trim())
            .map(|w| {
                w.strip_prefix("=?us-ascii?Q?")
                    .and_then(|w| w.strip_suffix("?="))
                    .map(|w| w.replace('_', " "))
                    .unwrap_or_else(|| w.to_owned())
            })
            .collect();
        assert!(
            subject.starts_with("IM conversation with alice@example.test, bob@example.test ("),
            "{subject}"
        );
    }

    #[test]
    fn mbox_quotes_from_lines() {
        let mut out = Vec::new();
        mbox_entry(
            &mut out,
            b"Subject: x\r\n\r\nFrom here\r\n>From there\r\nplain\r\n",
            "a@b",
            0,
        )
        .expect("write");
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("From a@b "));
        assert!(
            lines.contains(&">From here") && lines.contains(&">>From there"),
            "{text}"
        );
        assert_eq!(
            text.matches("\nFrom ").count(),
            0,
            "only the separator starts with From: {text}"
        );
    }

    #[test]
    fn the_summary_counts_what_the_format_holds() {
        let out = Path::new("/srv/audit/x");
        assert_eq!(
            summary(Format::Jsonl, 13, 13, out, 1),
            "exported 13 records to /srv/audit/x (1 file)"
        );
        assert_eq!(
            summary(Format::Jsonl, 1, 1, out, 1),
            "exported 1 record to /srv/audit/x (1 file)"
        );
        assert_eq!(
            summary(Format::Eml, 3, 13, out, 3),
            "exported 3 conversations (13 records) to /srv/audit/x (3 files)"
        );
        assert_eq!(
            summary(Format::Mbox, 1, 2, out, 1),
            "exported 1 conversation (2 records) to /srv/audit/x (1 file)"
        );
    }

    #[test]
    fn grouping_keeps_first_appearance_order() {
        let records = [
            rec(1, "b", "x@e", "1"),
            rec(2, "a", "x@e", "2"),
            rec(3, "b", "x@e", "3"),
        ];
        let g = by_conversation(&records);
        assert_eq!(
            g.iter()
                .map(|(c, r)| (c.as_str(), r.len()))
                .collect::<Vec<_>>(),
            vec![("b", 2), ("a", 1)]
        );
    }
}
