//! The agent against a real Kamailio (Debian package `kamailio`) started on
//! free loopback ports: registrar with digest auth (one fixed password,
//! `pv_www_authenticate`/`pv_proxy_authenticate`, nonce counting on), usrloc
//! in memory, and a record-routing proxy for MESSAGE and INVITE.
//!
//! TLS is exercised when Kamailio's TLS module (Debian package
//! `kamailio-tls-modules`) and the `openssl` tool are installed; otherwise
//! the test prints a note and covers UDP and TCP only.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchboard_testua::sip::{HeaderName, Method};
use switchboard_testua::{Algorithm, AuthOptions, Transport, Ua, UaConfig};

const DOMAIN: &str = "example.test";
const PASSWORD: &str = "secret";
const WAIT: Duration = Duration::from_secs(5);
const TEST_LIMIT: Duration = Duration::from_secs(90);

const CONFIG: &str = r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
tcp_children=2
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no
dns_try_ipv6=no
listen=udp:127.0.0.1:@PORT@
listen=tcp:127.0.0.1:@PORT@
@TLS_LISTEN@
alias="@DOMAIN@"
mpath="@MPATH@"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "auth.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
@TLS_MODULE@
@PRESENCE_MODULES@
modparam("auth", "nonce_count", 1)
modparam("auth", "algorithm", "@ALGORITHM@")
modparam("usrloc", "db_mode", 0)

request_route {
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	if (has_totag()) {
		if (loose_route()) {
			if (!t_relay()) {
				sl_reply_error();
			}
			exit;
		}
		if (is_method("ACK")) {
			if (t_check_trans()) {
				t_relay();
			}
			exit;
		}
		@PRESENCE_IN_DIALOG@
		sl_send_reply("404", "Not here");
		exit;
	}
	if (is_method("CANCEL|ACK")) {
		if (t_check_trans()) {
			t_relay();
		}
		exit;
	}
	if (is_method("OPTIONS") && $rU == $null) {
		sl_send_reply("200", "OK");
		exit;
	}
	if (is_method("REGISTER")) {
		if (!pv_www_authenticate("$td", "@PASSWORD@", "0")) {
			www_challenge("$td", "1");
			exit;
		}
		if ($au != $tU) {
			sl_send_reply("403", "Forbidden auth ID");
			exit;
		}
		consume_credentials();
		if (!save("location")) {
			sl_reply_error();
		}
		exit;
	}
	if (!is_method("MESSAGE|INVITE@PRESENCE_METHODS@")) {
		sl_send_reply("405", "Method Not Allowed");
		exit;
	}
	if (!pv_proxy_authenticate("$fd", "@PASSWORD@", "0")) {
		proxy_challenge("$fd", "1");
		exit;
	}
	if ($au != $fU) {
		sl_send_reply("403", "Forbidden auth ID");
		exit;
	}
	consume_credentials();
	@PRESENCE_INITIAL@
	if (is_method("INVITE")) {
		record_route();
	}
	if (!lookup("location")) {
		sl_send_reply("404", "Not Found");
		exit;
	}
	if (!t_relay()) {
		sl_reply_error();
	}
	exit;
}
"#;

const PRESENCE_MODULES: &str = r#"loadmodule "db_text.so"
loadmodule "presence.so"
loadmodule "presence_xml.so"
modparam("presence", "db_url", "text://@DBTEXT@")
modparam("presence", "subs_db_mode", 0)
modparam("presence", "publ_cache", 2)
modparam("presence", "server_address", "sip:127.0.0.1:@PORT@")
modparam("presence_xml", "db_url", "text://@DBTEXT@")
modparam("presence_xml", "force_active", 1)
modparam("presence_xml", "integrated_xcap_server", 1)"#;

const PRESENCE_IN_DIALOG: &str = r#"if (is_method("SUBSCRIBE")) {
			if (!t_newtran()) {
				sl_reply_error();
				exit;
			}
			handle_subscribe();
			exit;
		}"#;

const PRESENCE_INITIAL: &str = r#"if (is_method("PUBLISH|SUBSCRIBE")) {
		if (!t_newtran()) {
			sl_reply_error();
			exit;
		}
		if (is_method("PUBLISH")) {
			handle_publish();
		} else {
			handle_subscribe();
		}
		exit;
	}"#;

/// The db_text tables the presence modules check at start.
const PRESENCE_TABLES: [&str; 6] = [
    "version",
    "presentity",
    "active_watchers",
    "watchers",
    "xcap",
    "pua",
];

/// What a Kamailio instance serves besides registrar and proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    None,
    Tls,
    Presence,
}

/// A Kamailio process in its own process group and temporary directory;
/// stopped (SIGTERM, then SIGKILL) and cleaned up on drop.
struct Kamailio {
    child: Child,
    dir: PathBuf,
    port: u16,
    tls_port: Option<u16>,
}

fn find_kamailio() -> PathBuf {
    const MISSING: &str = "kamailio is not installed: this test needs the Debian package \
                           `kamailio` (apt-get install kamailio), or KAMAILIO set to its binary";
    if let Some(p) = std::env::var_os("KAMAILIO") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{MISSING} (KAMAILIO={} is not a file)",
            p.display()
        );
        return p;
    }
    let mut candidates = vec![
        PathBuf::from("/usr/sbin/kamailio"),
        PathBuf::from("/usr/local/sbin/kamailio"),
    ];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("kamailio")));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{MISSING}"))
}

fn find_modules() -> PathBuf {
    let mut candidates = vec![
        PathBuf::from("/usr/lib/kamailio/modules"),
        PathBuf::from("/usr/lib64/kamailio/modules"),
        PathBuf::from("/usr/local/lib64/kamailio/modules"),
    ];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        for e in entries.flatten() {
            candidates.push(e.path().join("kamailio/modules"));
        }
    }
    candidates
        .into_iter()
        .find(|p| p.join("tm.so").is_file())
        .unwrap_or_else(|| {
            panic!("Kamailio modules not found: install the Debian package `kamailio`")
        })
}

/// A port free for both UDP and TCP on 127.0.0.1 (nothing holds it afterwards,
/// so another process could take it in between; good enough for tests).
fn free_port() -> u16 {
    for _ in 0..50 {
        let Ok(u) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = u.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free port on 127.0.0.1");
}

fn make_temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "testua-kamailio-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}

/// Writes a self-signed certificate and key with the `openssl` tool.
fn make_certificate(dir: &Path) -> bool {
    Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=example.test",
            "-keyout",
        ])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Kamailio {
    fn start(algorithm: &str, extra: Extra) -> Kamailio {
        let want_tls = extra == Extra::Tls;
        let bin = find_kamailio();
        let mpath = find_modules();
        let dir = make_temp_dir();
        let port = free_port();
        let mut tls_port = None;
        let mut tls_listen = String::new();
        let mut tls_module = String::new();
        if want_tls {
            if !mpath.join("tls.so").is_file() {
                println!(
                    "NOTE: TLS not tested against Kamailio: its TLS module is missing \
                     (Debian package `kamailio-tls-modules`); TLS is covered by the Switchboard tests"
                );
            } else if !make_certificate(&dir) {
                println!(
                    "NOTE: TLS not tested against Kamailio: `openssl` could not make a certificate"
                );
            } else {
                let p = free_port();
                tls_port = Some(p);
                let tls_cfg = format!(
                    "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\nprivate_key = {}\ncertificate = {}\n",
                    dir.join("key.pem").display(),
                    dir.join("cert.pem").display()
                );
                std::fs::write(dir.join("tls.cfg"), tls_cfg).expect("write tls.cfg");
                tls_listen = format!("enable_tls=yes\nlisten=tls:127.0.0.1:{p}");
                tls_module = format!(
                    "loadmodule \"tls.so\"\nmodparam(\"tls\", \"config\", \"{}\")",
                    dir.join("tls.cfg").display()
                );
            }
        }
        let (mut modules, mut in_dialog, mut initial, mut methods) = (String::new(), "", "", "");
        if extra == Extra::Presence {
            let src = Path::new("/usr/share/kamailio/dbtext/kamailio");
            let dbtext = dir.join("dbtext");
            std::fs::create_dir_all(&dbtext).expect("dbtext dir");
            for table in PRESENCE_TABLES {
                std::fs::copy(src.join(table), dbtext.join(table)).unwrap_or_else(|e| {
                    panic!(
                        "{}: {e}: install the Debian packages `kamailio` and \
                         `kamailio-presence-modules`",
                        src.join(table).display()
                    )
                });
            }
            assert!(
                mpath.join("presence.so").is_file(),
                "Kamailio presence module missing: install the Debian package \
                 `kamailio-presence-modules`"
            );
            modules = PRESENCE_MODULES.replace("@DBTEXT@", &dbtext.display().to_string());
            in_dialog = PRESENCE_IN_DIALOG;
            initial = PRESENCE_INITIAL;
            methods = "|PUBLISH|SUBSCRIBE";
        }
        let cfg = CONFIG
            .replace("@PRESENCE_MODULES@", &modules)
            .replace("@PRESENCE_IN_DIALOG@", in_dialog)
            .replace("@PRESENCE_INITIAL@", initial)
            .replace("@PRESENCE_METHODS@", methods)
            .replace("@PORT@", &port.to_string())
            .replace("@TLS_LISTEN@", &tls_listen)
            .replace("@TLS_MODULE@", &tls_module)
            .replace("@DOMAIN@", DOMAIN)
            .replace("@MPATH@", &mpath.display().to_string())
            .replace("@ALGORITHM@", algorithm)
            .replace("@PASSWORD@", PASSWORD);
        let cfg_path = dir.join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).expect("write config");
        let log = std::fs::File::create(dir.join("kamailio.log")).expect("log file");
        let child = Command::new(&bin)
            .arg("-DD")
            .arg("-E")
            .arg("-f")
            .arg(&cfg_path)
            .args(["-m", "64", "-M", "8"])
            .arg("-Y")
            .arg(&dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut k = Kamailio {
            child,
            dir,
            port,
            tls_port,
        };
        k.wait_ready();
        k
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_port.map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }

    /// Waits until Kamailio answers an OPTIONS over UDP and accepts TCP (and TLS).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let probe = UdpSocket::bind("127.0.0.1:0").expect("probe socket");
        probe
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let me = probe.local_addr().expect("probe addr");
        let options = format!(
            "OPTIONS sip:127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{DOMAIN}>;tag=p\r\nTo: <sip:127.0.0.1:{}>\r\nCall-ID: probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            self.port, self.port
        );
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("kamailio exited at start ({status}); log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "kamailio not ready after 15 s; log:\n{}",
                self.log()
            );
            let _ = probe.send_to(options.as_bytes(), self.addr());
            let mut buf = [0u8; 2048];
            let udp_ok = probe
                .recv_from(&mut buf)
                .is_ok_and(|(n, _)| buf[..n].starts_with(b"SIP/2.0 200"));
            let tcp_ok = std::net::TcpStream::connect(self.addr()).is_ok();
            let tls_ok = self
                .tls_addr()
                .is_none_or(|a| std::net::TcpStream::connect(a).is_ok());
            if udp_ok && tcp_ok && tls_ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &pgid])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (workers included).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &pgid])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- kamailio log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn ua(kam: &Kamailio, transport: Transport, user: &str) -> Ua {
    let server = match transport {
        Transport::Tls => kam.tls_addr().expect("TLS listener"),
        _ => kam.addr(),
    };
    Ua::connect(UaConfig::new(transport, server, DOMAIN, user, PASSWORD))
        .await
        .unwrap_or_else(|e| panic!("{user} cannot connect over {transport:?}: {e}"))
}

fn aor(user: &str) -> String {
    format!("sip:{user}@{DOMAIN}")
}

/// Registers and checks that a 401 was answered and our contact is bound.
async fn register_checked(ua: &Ua) {
    let req = ua
        .register_request(&switchboard_testua::RegisterOptions::new(300))
        .expect("request");
    let ex = ua.send_request(req).await.expect("REGISTER");
    assert_eq!(
        ex.response.status,
        200,
        "{}: {} {}",
        ua.aor(),
        ex.response.status,
        ex.response.reason
    );
    assert_eq!(
        ex.challenge.as_ref().map(|c| c.status),
        Some(401),
        "Kamailio challenges REGISTER"
    );
    let contacts = ex
        .response
        .headers
        .get_all(&HeaderName::Contact)
        .collect::<Vec<_>>()
        .join(", ");
    let mine = ua.contact_uri().to_string();
    assert!(
        contacts.contains(&mine),
        "200 lists our binding {mine}: {contacts}"
    );
}

/// Sends a MESSAGE from `from` to `to` through Kamailio: challenged with 407,
/// delivered, answered 200 by the recipient.
async fn message_checked(from: &Ua, to: &Ua, text: &str) {
    let mut req = from
        .new_request(Method::Message, aor(&to.config().user))
        .expect("request");
    req.headers.push(HeaderName::ContentType, "text/plain");
    req.body = text.as_bytes().to_vec();
    let send = from.send_request(req);
    let recv = async {
        let inc = to.expect_request(Method::Message, WAIT).await?;
        assert_eq!(inc.body_text(), text);
        let sender = inc.request.headers.from().expect("From");
        assert_eq!(
            sender.uri.as_sip().and_then(|u| u.user.clone()),
            Some(from.config().user.clone())
        );
        inc.respond(200).await
    };
    let (ex, got) = tokio::join!(send, recv);
    got.expect("recipient got the MESSAGE");
    let ex = ex.expect("MESSAGE sent");
    assert_eq!(
        ex.challenge.as_ref().map(|c| c.status),
        Some(407),
        "Kamailio challenges MESSAGE"
    );
    assert_eq!(ex.response.status, 200);
}

#[tokio::test]
async fn kamailio_register_message_and_session_over_udp_tcp_tls() {
    let kam = Kamailio::start("MD5", Extra::Tls);
    tokio::time::timeout(TEST_LIMIT, async {
        let alice = ua(&kam, Transport::Udp, "alice").await;
        let bob = ua(&kam, Transport::Tcp, "bob").await;
        register_checked(&alice).await;
        register_checked(&bob).await;

        // Pager mode both ways (UDP → TCP and TCP → UDP).
        message_checked(&alice, &bob, "hello bob").await;
        message_checked(&bob, &alice, "hello alice").await;

        // INVITE session through the record-routing proxy.
        let offer = alice.im_sdp();
        let call = {
            let alice = alice.clone();
            tokio::spawn(async move { alice.invite(aor("bob"), &offer).await })
        };
        let inc = bob
            .expect_request(Method::Invite, WAIT)
            .await
            .expect("INVITE reaches bob");
        let rr = inc.request.headers.record_routes().expect("Record-Route");
        assert!(
            !rr.is_empty(),
            "Kamailio record-routes the INVITE: {:?}",
            inc.request.headers
        );
        let answer = bob.im_sdp();
        let mut bob_dialog = inc.accept(&answer).await.expect("ACK reaches bob");
        let mut alice_dialog = call.await.expect("join").expect("session established");
        assert_eq!(alice_dialog.call_id, bob_dialog.call_id);
        assert_eq!(alice_dialog.local_tag(), bob_dialog.remote_tag());
        assert_eq!(alice_dialog.remote_tag(), bob_dialog.local_tag());
        assert_eq!(alice_dialog.route_set.len(), rr.len());
        assert!(
            alice_dialog
                .route_set
                .iter()
                .all(|r| r.uri.as_sip().is_some_and(|u| u.params.contains("lr"))),
            "loose routes: {alice_dialog:?}"
        );

        // In-dialog MESSAGE alice → bob.
        let send = alice_dialog.request(Method::Message, "text/plain", "in session");
        let recv = async {
            let inc = bob.expect_request(Method::Message, WAIT).await?;
            assert!(bob_dialog.matches(&inc.request), "in bob's dialog");
            assert_eq!(inc.body_text(), "in session");
            assert!(
                inc.request
                    .headers
                    .get(&HeaderName::ProxyAuthorization)
                    .is_none(),
                "in-dialog requests are not challenged by this proxy"
            );
            inc.respond(200).await
        };
        let (sent, got) = tokio::join!(send, recv);
        got.expect("bob got the in-dialog MESSAGE");
        assert_eq!(sent.expect("sent").status, 200);

        // In-dialog INFO bob → alice (the other direction of the route set).
        let send = bob_dialog.request(Method::Info, "text/plain", "info");
        let recv = async {
            let inc = alice.expect_request(Method::Info, WAIT).await?;
            assert!(alice_dialog.matches(&inc.request), "in alice's dialog");
            inc.respond(200).await
        };
        let (sent, got) = tokio::join!(send, recv);
        got.expect("alice got the INFO");
        assert_eq!(sent.expect("sent").status, 200);

        // BYE.
        let send = alice_dialog.bye();
        let recv = async {
            let inc = bob.expect_request(Method::Bye, WAIT).await?;
            assert!(bob_dialog.matches(&inc.request));
            inc.respond(200).await
        };
        let (sent, got) = tokio::join!(send, recv);
        got.expect("bob got the BYE");
        assert_eq!(sent.expect("sent").status, 200);

        // TLS: register and message to the TCP user.
        if kam.tls_addr().is_some() {
            let carol = ua(&kam, Transport::Tls, "carol").await;
            register_checked(&carol).await;
            message_checked(&carol, &bob, "over tls").await;
            message_checked(&bob, &carol, "back over tls").await;
        }

        // Unregister: bob's binding is gone, so MESSAGE to him gets 404.
        let r = bob.unregister().await.expect("unregister");
        assert_eq!(r.status, 200);
        let r = alice
            .send_message(aor("bob"), "text/plain", "anyone?")
            .await
            .expect("MESSAGE");
        assert_eq!(r.status, 404, "no binding left for bob");
        assert_eq!(
            alice.unregister_all().await.expect("unregister *").status,
            200
        );
        assert!(
            alice.dropped_input().is_empty() && bob.dropped_input().is_empty(),
            "everything Kamailio sent parsed"
        );
    })
    .await
    .expect("test finished within its time limit");
}

#[tokio::test]
async fn kamailio_sha256_and_deliberately_bad_credentials() {
    let kam = Kamailio::start("SHA-256", Extra::None);
    tokio::time::timeout(TEST_LIMIT, async {
        let dave = ua(&kam, Transport::Udp, "dave").await;
        let req = dave
            .register_request(&switchboard_testua::RegisterOptions::new(300))
            .expect("request");
        let ex = dave.send_request(req).await.expect("REGISTER");
        assert_eq!(ex.response.status, 200, "SHA-256 digest accepted");
        let challenge = ex.challenge.expect("challenged");
        let offered = challenge
            .headers
            .get(&HeaderName::WwwAuthenticate)
            .expect("challenge header");
        assert!(offered.contains("SHA-256"), "{offered}");
        let sent = ex
            .request
            .headers
            .get(&HeaderName::Authorization)
            .expect("credentials");
        assert!(sent.contains("algorithm=SHA-256"), "{sent}");

        // A wrong password: the retry is refused, the final answer is 401.
        let eve = ua(&kam, Transport::Tcp, "eve").await;
        eve.set_auth_options(AuthOptions {
            password: Some("not-the-password".into()),
            ..AuthOptions::default()
        });
        assert_eq!(eve.register(300).await.expect("REGISTER").status, 401);

        // Forcing MD5 against a SHA-256 server fails the same way.
        eve.set_auth_options(AuthOptions {
            force_algorithm: Some(Algorithm::Md5),
            ..AuthOptions::default()
        });
        let req = eve
            .register_request(&switchboard_testua::RegisterOptions::new(300))
            .expect("request");
        let ex = eve.send_request(req).await.expect("REGISTER");
        assert_eq!(ex.response.status, 401);
        assert!(
            ex.request
                .headers
                .get(&HeaderName::Authorization)
                .is_some_and(|a| a.contains("algorithm=MD5"))
        );

        // Auto-auth off: the challenge itself comes back.
        eve.set_auth_options(AuthOptions {
            auto: false,
            ..AuthOptions::default()
        });
        assert_eq!(eve.register(300).await.expect("REGISTER").status, 401);

        // Replaying dave's previous credentials (same nonce, same nc): refused.
        dave.set_auth_options(AuthOptions {
            replay_previous: true,
            ..AuthOptions::default()
        });
        let req = dave
            .register_request(&switchboard_testua::RegisterOptions::new(300))
            .expect("request");
        let ex = dave.send_request(req).await.expect("REGISTER");
        assert_eq!(ex.response.status, 401, "replayed credentials refused");
        assert_eq!(
            ex.request.headers.get(&HeaderName::Authorization),
            Some(sent)
        );

        // Cached credentials with the next nonce-count are accepted without a
        // new challenge; a reused nonce-count is challenged, then answered.
        dave.set_auth_options(AuthOptions {
            preemptive: true,
            ..AuthOptions::default()
        });
        let req = dave
            .register_request(&switchboard_testua::RegisterOptions::new(300))
            .expect("request");
        let ex = dave.send_request(req).await.expect("REGISTER");
        assert_eq!(ex.response.status, 200);
        assert!(ex.challenge.is_none(), "nc=2 on the cached nonce accepted");
        assert!(
            ex.request
                .headers
                .get(&HeaderName::Authorization)
                .is_some_and(|a| a.contains("nc=00000002"))
        );
        dave.set_auth_options(AuthOptions {
            preemptive: true,
            nc: Some(1),
            ..AuthOptions::default()
        });
        let req = dave
            .register_request(&switchboard_testua::RegisterOptions::new(300))
            .expect("request");
        let ex = dave.send_request(req).await.expect("REGISTER");
        assert!(
            ex.challenge.is_some(),
            "nc=1 reused on the cached nonce is challenged"
        );
        assert_eq!(ex.response.status, 200, "and the fresh nonce is accepted");

        // Credentials computed on a nonce Kamailio never issued are refused.
        dave.set_auth_options(AuthOptions {
            nonce: Some("bm90LWEtbm9uY2UtZnJvbS1rYW1haWxpbw".into()),
            ..AuthOptions::default()
        });
        let r = dave.register(300).await.expect("REGISTER");
        assert_eq!(r.status, 401, "forged nonce refused");
    })
    .await
    .expect("test finished within its time limit");
}

const PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:bob@example.test">
  <tuple id="t1"><status><basic>open</basic></status><note>@NOTE@</note></tuple>
</presence>
"#;

#[tokio::test]
async fn kamailio_presence_subscribe_publish_notify() {
    let kam = Kamailio::start("MD5", Extra::Presence);
    tokio::time::timeout(TEST_LIMIT, async {
        let alice = ua(&kam, Transport::Udp, "alice").await;
        let bob = ua(&kam, Transport::Tcp, "bob").await;
        register_checked(&alice).await;
        register_checked(&bob).await;

        // SUBSCRIBE (challenged, answered); the first NOTIFY may overtake the 2xx.
        let (resp, mut sub) = alice
            .subscribe(aor("bob"), "presence", "application/pidf+xml", 600)
            .await
            .expect("subscription accepted");
        assert!((200..300).contains(&resp.status), "{}", resp.status);
        assert_eq!(sub.event.as_deref(), Some("presence"));
        let first = alice
            .expect_request(Method::Notify, WAIT)
            .await
            .expect("initial NOTIFY");
        assert!(
            sub.matches(&first.request),
            "NOTIFY in the subscription dialog"
        );
        let state = first
            .request
            .headers
            .subscription_state()
            .expect("parses")
            .expect("present");
        assert_eq!(state.state, "active");
        first.respond(200).await.expect("answer NOTIFY");

        // PUBLISH open + note; the watcher is notified with it.
        let body = PIDF.replace("@NOTE@", "at lunch");
        let r = bob
            .publish(
                aor("bob"),
                "presence",
                None,
                Some(("application/pidf+xml", body.as_bytes())),
                600,
            )
            .await
            .expect("PUBLISH");
        assert_eq!(r.status, 200, "{} {}", r.status, r.reason);
        let etag = r
            .headers
            .get(&HeaderName::SipETag)
            .expect("SIP-ETag")
            .to_owned();
        let n = alice
            .expect_request(Method::Notify, WAIT)
            .await
            .expect("NOTIFY after PUBLISH");
        assert!(n.body_text().contains("at lunch"), "{}", n.body_text());
        n.respond(200).await.expect("answer NOTIFY");

        // Refresh the publication by its entity tag (no body).
        let r = bob
            .publish(aor("bob"), "presence", Some(&etag), None, 600)
            .await
            .expect("refresh PUBLISH");
        assert_eq!(r.status, 200, "{} {}", r.status, r.reason);
        let r = bob
            .publish(aor("bob"), "presence", Some("no-such-etag"), None, 600)
            .await
            .expect("PUBLISH");
        // RFC 3903 wants 412; Kamailio 5.6 with publ_cache=2 answers 500.
        assert!(
            matches!(r.status, 412 | 500),
            "an unknown entity tag is refused: {} {}",
            r.status,
            r.reason
        );

        // Unsubscribe in the dialog: 200 and a final NOTIFY.
        alice.auto_answer(Method::Notify, 200);
        let r = sub.refresh_subscription(0).await.expect("unsubscribe");
        assert_eq!(r.status, 200, "{} {}", r.status, r.reason);
        let deadline = Instant::now() + WAIT;
        loop {
            let terminated = alice.received(&Method::Notify).iter().any(|n| {
                n.headers
                    .subscription_state()
                    .ok()
                    .flatten()
                    .is_some_and(|s| s.state == "terminated")
            });
            if terminated {
                break;
            }
            assert!(Instant::now() < deadline, "no terminating NOTIFY");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("test finished within its time limit");
}
