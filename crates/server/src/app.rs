//! `switchboard serve`: assembles the Standard Edition server (embedded
//! database, every role in one process) and runs it until interrupted.

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::sip::registrar::RegistrarSettings;
use crate::sip::{SipServer, SipSettings, location::Location};
use crate::transport::{self, TransportLimits, Transports};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::archive::{ArchivingConfig, ArchivingPolicy};
use switchboard_core::policy::PrivacyPolicy;
use switchboard_core::presence::{ContactBook, PresenceEngine, Rules};
use switchboard_core::{Directory, ImPolicy, Policies, PolicyKind};
use switchboard_sip::Limits;
use switchboard_sip::digest::Algorithm;
use switchboard_store::Store;
use switchboard_store::sqlite::SqliteStore;
use tokio_rustls::TlsAcceptor;

/// Policy kinds the server caches.
const POLICY_KINDS: [&str; 4] = [
    ImPolicy::KIND,
    PrivacyPolicy::KIND,
    ArchivingConfig::KIND,
    ArchivingPolicy::KIND,
];

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if config.log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The machine's host name, the default served domain.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| switchboard_core::address::normalise_domain(h.trim()).ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Runs the server.
pub async fn serve(data: &Path, mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(v) = args.sip_udp {
        config.sip.udp = v;
    }
    if let Some(v) = args.sip_tcp {
        config.sip.tcp = v;
    }
    if let Some(v) = args.sip_tls {
        config.sip.tls = v;
    }
    if let Some(v) = args.http {
        config.web.listen = v;
    }
    config.domains.extend(args.domains);
    config
        .validate()
        .map_err(|(key, problem)| anyhow::anyhow!("option or key `{key}`: {problem}"))?;
    init_logging(&config);

    crate::private_fs::create_private_dir(data).context("cannot create the data directory")?;
    let sqlite = SqliteStore::open(&data.join("switchboard.db"))
        .await
        .with_context(|| format!("cannot open the database in {}", data.display()))?;
    let store: Arc<dyn Store> = Arc::new(sqlite);

    // Served domains: those in the database, plus configured ones; the host
    // name when there are none at all.
    let mut wanted: Vec<String> = config
        .domains
        .iter()
        .filter_map(|d| switchboard_core::address::normalise_domain(d).ok())
        .collect();
    let existing: Vec<String> = store
        .list_domains()
        .await?
        .into_iter()
        .map(|d| d.name)
        .collect();
    if wanted.is_empty() && existing.is_empty() {
        wanted.push(host_name());
    }
    for d in &wanted {
        if !existing.contains(d) {
            store
                .add_domain(d, switchboard_core::now_ms())
                .await
                .with_context(|| format!("cannot add domain {d}"))?;
        }
    }
    let directory = Arc::new(Directory::new());
    directory.load(store.as_ref()).await?;
    let policies = Arc::new(Policies::new());
    policies.load(store.as_ref(), &POLICY_KINDS).await?;
    let contacts = Arc::new(ContactBook::new());
    contacts.load(store.as_ref()).await?;
    let engine = Arc::new(PresenceEngine::new(Rules {
        away_after_ms: (config.presence.away_after_seconds * 1000) as i64,
    }));
    let domains = directory.domains();
    let first_domain = wanted
        .first()
        .cloned()
        .or_else(|| domains.first().cloned())
        .unwrap_or_else(host_name);

    let parse_limits = Limits {
        max_message_bytes: config.limits.max_message_bytes,
        max_headers: config.limits.max_headers,
    };
    let transports = Transports::new(TransportLimits {
        parse: parse_limits,
        max_connections: config.limits.max_connections,
        max_connections_per_ip: config.limits.max_connections_per_ip,
        idle_timeout: Duration::from_secs(config.limits.idle_timeout),
        tls_handshake_timeout: Duration::from_secs(config.limits.tls_handshake_timeout),
    });
    let location = Location::new(store.clone());
    let (kept, dropped) = location
        .load(store.as_ref(), switchboard_core::now_ms())
        .await?;
    let settings = SipSettings {
        limits: parse_limits,
        registrar: RegistrarSettings {
            min_expires: config.registrar.min_expires,
            max_expires: config.registrar.max_expires,
            default_expires: config.registrar.default_expires,
            max_devices: config.registrar.max_devices_per_user,
        },
        max_im_body: config.im.max_body_bytes,
        server_name: first_domain.clone(),
    };
    let algorithms: Vec<Algorithm> = config
        .auth
        .algorithms
        .iter()
        .filter_map(|a| Algorithm::parse(Some(a)))
        .collect();
    let offline = switchboard_core::OfflineIm::new(switchboard_core::OfflineLimits {
        max_per_user: config.im.offline_max_per_user,
        expiry_ms: (config.im.offline_expiry_hours * 3_600_000) as i64,
    });
    let history = switchboard_core::conversation::HistoryLimits {
        max_messages: config.conference.history_messages,
        max_age_ms: (config.conference.history_seconds * 1000) as i64,
    };
    let conferences = Arc::new(switchboard_core::conference::Conferences::new(
        switchboard_core::conference::ConferenceSettings {
            max_participants: config.conference.max_participants,
            idle_timeout_ms: (config.conference.idle_timeout_minutes * 60_000) as i64,
            history,
            open_to_organisation: config.conference.open_to_organisation,
        },
    ));
    let conversations = Arc::new(switchboard_core::conversation::Conversations::new(
        history, 3_600_000,
    ));
    // The archive is its own database: critical mode must notice when it (and
    // not the rest) cannot be written, quickly.
    let archive = switchboard_store::sqlite::SqliteArchive::open_with_busy_timeout(
        &data.join("archive.db"),
        Duration::from_secs(1),
    )
    .await
    .with_context(|| format!("cannot open the archive in {}", data.display()))?;
    let archive: Arc<switchboard_store::sqlite::SqliteArchive> = Arc::new(archive);
    let archiver = Arc::new(switchboard_core::archive::Archiver::start(
        archive.clone(),
        data.join("archive-spool.jsonl"),
    ));
    start_archive_jobs(archive.clone(), policies.clone());
    if config.archive.mail.enabled {
        crate::archive_mail::start(
            archive.clone(),
            directory.clone(),
            data,
            &config.archive.mail,
            format!("archive@{first_domain}"),
        )
        .context("cannot start the archive mail-store delivery ([archive.mail])")?;
    }
    let endpoints: Arc<dyn switchboard_core::endpoints::Endpoints> =
        Arc::new(switchboard_core::endpoints::LocalEndpoints::new());
    let stopping_archiver = archiver.clone();
    let services = crate::sip::Services {
        archiver,
        endpoints: endpoints.clone(),
        conferences: conferences.clone(),
        conversations: conversations.clone(),
        focus: crate::sip::conference::FocusSettings {
            factory_user: config.conference.factory_user.to_ascii_lowercase(),
        },
        directory: directory.clone(),
        policies: policies.clone(),
        store: store.clone(),
        location,
        offline,
        engine: engine.clone(),
        contacts: contacts.clone(),
        presence: crate::sip::presence::PresenceSettings {
            min_expires: config.presence.min_expires,
            max_expires: config.presence.max_expires,
            default_expires: config.presence.default_expires,
            max_subscriptions_per_device: config.presence.max_subscriptions_per_device,
        },
    };
    let sip = SipServer::new(
        transports.clone(),
        services,
        settings,
        config.auth.nonce_lifetime,
        algorithms,
    );
    sip.start();

    let mut listening: Vec<String> = Vec::new();
    if !config.sip.udp.is_empty() {
        let addr: SocketAddr = config.sip.udp.parse()?;
        for a in transport::bind_udp(&transports, addr)
            .with_context(|| format!("cannot listen on UDP {addr}"))?
        {
            listening.push(format!("SIP UDP {a}"));
        }
    }
    if !config.sip.tcp.is_empty() {
        let addr: SocketAddr = config.sip.tcp.parse()?;
        let a = transport::spawn_tcp_listener(transports.clone(), addr)
            .await
            .with_context(|| format!("cannot listen on TCP {addr}"))?;
        listening.push(format!("SIP TCP {a}"));
    }
    let tls = if !config.sip.tls.is_empty() || (config.web.tls && !config.web.listen.is_empty()) {
        let (tls, source) = transport::tls::load_or_generate(
            config.tls.cert.as_deref(),
            config.tls.key.as_deref(),
            data,
            &domains,
        )?;
        tracing::info!(?source, "TLS certificate");
        Some(tls)
    } else {
        None
    };
    if let (false, Some(tls)) = (config.sip.tls.is_empty(), &tls) {
        let addr: SocketAddr = config.sip.tls.parse()?;
        let a =
            transport::spawn_tls_listener(transports.clone(), addr, TlsAcceptor::from(tls.clone()))
                .await
                .with_context(|| format!("cannot listen on TLS {addr}"))?;
        listening.push(format!("SIP TLS {a}"));
    }
    if !config.web.listen.is_empty() {
        let addr: SocketAddr = config.web.listen.parse()?;
        let w = &config.web;
        let settings = crate::web::WebSettings {
            session_ttl: Duration::from_secs(w.session_hours * 3600),
            max_body_bytes: w.max_body_bytes,
            rate: crate::web::auth::RateLimit {
                per_second: w.rate_per_second,
                burst: f64::from(w.rate_burst),
            },
            max_connections: w.max_connections,
            long_poll_seconds: w.long_poll_seconds,
            anonymous_presence: if w.anonymous_presence == "none" {
                crate::web::AnonymousPresence::None
            } else {
                crate::web::AnonymousPresence::External
            },
            badge_cors_origin: w.badge_cors_origin.clone(),
            badge_cache_seconds: w.badge_cache_seconds,
            max_contacts: config.presence.max_contacts,
            max_im_body: config.im.max_body_bytes,
        };
        let web = Arc::new(crate::web::Web {
            sessions: crate::web::auth::Sessions::new(
                store.clone(),
                settings.session_ttl.as_millis() as i64,
                settings.rate,
            ),
            settings,
            store: store.clone(),
            directory: directory.clone(),
            policies: policies.clone(),
            contacts: contacts.clone(),
            engine: engine.clone(),
            conferences: conferences.clone(),
            conversations: conversations.clone(),
            endpoints: endpoints.clone(),
            sip: sip.clone(),
            live: crate::web::live::Live::default(),
        });
        web.start();
        let acceptor = match (&tls, config.web.tls) {
            (Some(tls), true) => Some(crate::web::serve::tls_acceptor(tls)),
            _ => None,
        };
        let max = web.settings.max_connections;
        let a = crate::web::serve::listen(crate::web::router(web), addr, acceptor.clone(), max)
            .await
            .with_context(|| format!("cannot listen on HTTP {addr}"))?;
        // SIP over WebSocket is served on this listener (WSS with HTTPS).
        let ws = if acceptor.is_some() {
            transport::Transport::Wss
        } else {
            transport::Transport::Ws
        };
        transports.add_websocket_listener(ws, a);
        listening.push(format!(
            "{} {a}",
            if acceptor.is_some() { "HTTPS" } else { "HTTP" }
        ));
    }

    // Pick up changes made with the command-line tool while running.
    {
        let store = store.clone();
        let directory = directory.clone();
        let policies = policies.clone();
        let contacts = contacts.clone();
        let sip = sip.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                match directory.refresh_if_changed(store.as_ref()).await {
                    Ok(true) => {
                        reload_rest(store.as_ref(), &policies, &contacts, &sip).await;
                        tracing::info!(users = directory.user_count(), "directory reloaded");
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot check the database for changes"),
                }
            }
        });
    }

    println!(
        "switchboard {} (Standard Edition)",
        env!("CARGO_PKG_VERSION")
    );
    println!("data directory: {}", data.display());
    println!("serving domains: {}", directory.domains().join(", "));
    println!("registrations restored: {kept} (dropped {dropped} stream flows)");
    for l in &listening {
        println!("listening: {l}");
    }
    println!("ready");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    shutdown_signal().await;
    println!("shutting down");
    // Archive records are gathered for a moment before they are written:
    // write what is gathered rather than lose it with the process; from now
    // on records (of requests still finishing) are written at once.
    if tokio::time::timeout(Duration::from_secs(10), stopping_archiver.close())
        .await
        .is_err()
    {
        tracing::error!("archive records still unwritten after 10 s at shutdown");
    }
    // Give the write-behind of registrations a moment to finish, then write
    // what was archived meanwhile.
    tokio::time::sleep(Duration::from_millis(200)).await;
    if tokio::time::timeout(Duration::from_secs(2), stopping_archiver.flush())
        .await
        .is_err()
    {
        tracing::error!("archive records still unwritten at exit");
    }
    Ok(())
}

/// Re-reads everything a change in the database can affect (directory,
/// policies, contact lists) and re-evaluates presence and subscriptions.
/// Used for changes made through the HTTP API, which must apply at once.
pub async fn reload(
    store: &dyn Store,
    directory: &Directory,
    policies: &Policies,
    contacts: &ContactBook,
    sip: &Arc<SipServer>,
) {
    if let Err(e) = directory.load(store).await {
        tracing::warn!(error = %e, "cannot reload the directory");
    }
    reload_rest(store, policies, contacts, sip).await;
}

/// [`reload`] after the directory was read.
async fn reload_rest(
    store: &dyn Store,
    policies: &Policies,
    contacts: &ContactBook,
    sip: &Arc<SipServer>,
) {
    if let Err(e) = policies.load(store, &POLICY_KINDS).await {
        tracing::warn!(error = %e, "cannot reload policies");
    }
    if let Err(e) = contacts.load(store).await {
        tracing::warn!(error = %e, "cannot reload contact lists");
    }
    sip.presence_reevaluate();
    sip.end_subscriptions_to_missing_people();
}

/// Daily retention and index compaction at the configured purge hour, and a periodic log line with
/// the archive's head (seq and hash) so that operators can keep it elsewhere
/// and prove later, with `archive verify --expect-head`, that nothing was cut.
fn start_archive_jobs(
    archive: Arc<switchboard_store::sqlite::SqliteArchive>,
    policies: Arc<Policies>,
) {
    use switchboard_store::archive::Archive;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        let mut last_purge_day: Option<i64> = None;
        let mut minutes: u64 = 0;
        loop {
            tick.tick().await;
            let config: ArchivingConfig = policies.global();
            let now = switchboard_core::now_ms();
            let day = now / 86_400_000;
            let hour = ((now / 3_600_000) % 24) as u8;
            if config.enabled && hour == config.purge_hour && last_purge_day != Some(day) {
                match crate::archive_cli::purge(archive.as_ref(), &config, now).await {
                    Ok(n) => {
                        last_purge_day = Some(day);
                        tracing::info!(
                            removed = n,
                            retention_days = config.retention_days,
                            "archive retention applied"
                        );
                        // Searches slow down as appends add index segments;
                        // merging them once a day, at the quiet hour, keeps
                        // them fast. A failure waits for the next day.
                        match archive.compact_archive_indexes().await {
                            Ok(steps) => tracing::info!(steps, "archive search indexes compacted"),
                            Err(e) => tracing::warn!(error = %e, "archive index compaction failed"),
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "archive retention failed; will retry"),
                }
            }
            if minutes.is_multiple_of(10)
                && let Ok(Some((seq, hash))) = archive.archive_head().await
            {
                tracing::info!(head = %format!("{seq}:{hash}"), "archive head");
            }
            minutes += 1;
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
