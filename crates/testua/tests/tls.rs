//! TLS against an in-process rustls server: a self-signed certificate is
//! accepted, but a server that cannot sign with the certificate's key is
//! refused (the handshake signature is still verified).
//!
//! The key material below is a throw-away self-signed test certificate
//! (CN=example.test), not a secret.

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use std::time::Duration;
use switchboard_testua::sip::framing::{Frame, StreamFramer};
use switchboard_testua::sip::{Limits, Message, Method, Response};
use switchboard_testua::{Transport, Ua, UaConfig, UaError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

const CERT: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBhTCCASugAwIBAgIUCErisfgPQnUO7Wovz8PlQXN0S44wCgYIKoZIzj0EAwIw\n\
FzEVMBMGA1UEAwwMZXhhbXBsZS50ZXN0MCAXDTI2MTEyNDA2MjM0MloYDzIxMjYx\n\
MDMxMDYyMzQyWjAXMRUwEwYDVQQDDAxleGFtcGxlLnRlc3QwWTATBgcqhkjOPQIB\n\
BggqhkjOPQMBBwNCAATbQYC2wXjmUS2YvXVFOdXdNRW1WCh+wY151MbKJUS99q9J\n\
e4GJBSOjAE/UNuyIhmybyuBzoJG/OVOmmyKejqxTo1MwUTAdBgNVHQ4EFgQUqceI\n\
U9shJAx0vt06e6mEgwCo5GEwHwYDVR0jBBgwFoAUqceIU9shJAx0vt06e6mEgwCo\n\
5GEwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBZ7oeoo64chx/5\n\
Np3IC4akTwNf8yXyhH1z6/uGO8ZmWgIhAKWbVfS0lc7qVeMxL3eOvuxbu1KTjPwo\n\
Yd58lGGWqgVJ\n\
-----END CERTIFICATE-----";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyl6dpmBZBhgJvKqc\n\
uwrmGyDdEqrxvlqv4K97/CE6LuqhRANCAATbQYC2wXjmUS2YvXVFOdXdNRW1WCh+\n\
wY151MbKJUS99q9Je4GJBSOjAE/UNuyIhmybyuBzoJG/OVOmmyKejqxT\n\
-----END PRIVATE KEY-----";
/// A key that does not belong to `CERT`.
const OTHER_KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqSWogTJATP5W6ba1\n\
gxkfTYLwcdRNm5aMkODK/dVHhxyhRANCAATd0ZITLUCQQW4eiQkKWpNG8uM2t7qu\n\
tWhYw+48eeCBg5SmVBMCPFc1kfGgHDLRPm6k4cILl3oksyevJDVvuc3e\n\
-----END PRIVATE KEY-----";

const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A TLS server presenting `CERT` and signing with `key_pem`.
fn acceptor(key_pem: &str, tls12_only: bool) -> tokio_rustls::TlsAcceptor {
    let cert = CertificateDer::from_pem_slice(CERT.as_bytes()).expect("cert");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    let signer = any_supported_type(&key).expect("signing key");
    let certified = Arc::new(CertifiedKey::new(vec![cert], signer));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FixedCert(certified)));
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn register_over(acceptor: tokio_rustls::TlsAcceptor) -> Result<u16, UaError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let server = listener.local_addr().expect("addr");
    let serve = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return;
        };
        let mut framer = StreamFramer::new(Limits::default());
        let mut buf = vec![0u8; 65536];
        loop {
            match framer.next_frame() {
                Some(Ok(Frame::Message(Message::Request(req)))) => {
                    assert_eq!(req.method, Method::Register);
                    assert_eq!(
                        req.headers.top_via().expect("via").transport,
                        "TLS",
                        "Via names TLS"
                    );
                    let resp = Response::to_request(&req, 200).with_to_tag("srv");
                    tls.write_all(&resp.to_bytes()).await.expect("write");
                    tls.flush().await.expect("flush");
                    // Keep the connection until the client goes away.
                    let _ = tls.read(&mut buf).await;
                    return;
                }
                Some(other) => panic!("unexpected {other:?}"),
                None => {
                    let n = tls.read(&mut buf).await.expect("read");
                    if n == 0 {
                        return;
                    }
                    framer.push(&buf[..n]);
                }
            }
        }
    });
    let cfg = UaConfig::new(Transport::Tls, server, "example.test", "alice", "pw");
    let result = async {
        let ua = Ua::connect(cfg).await?;
        assert!(ua.contact_uri().to_string().ends_with(";transport=tls"));
        Ok(ua.register(60).await?.status)
    };
    let status = timeout(WAIT, result).await.expect("bounded");
    serve.abort();
    status
}

#[tokio::test]
async fn tls_accepts_a_self_signed_server_certificate() {
    assert_eq!(
        register_over(acceptor(KEY, false)).await.expect("TLS 1.3"),
        200
    );
    assert_eq!(
        register_over(acceptor(KEY, true)).await.expect("TLS 1.2"),
        200
    );
}

#[tokio::test]
async fn tls_refuses_a_server_that_does_not_hold_the_certificate_key() {
    for tls12 in [false, true] {
        match register_over(acceptor(OTHER_KEY, tls12)).await {
            Err(UaError::Tls(e)) => assert!(!e.is_empty()),
            other => panic!("tls12={tls12}: handshake with a wrong key accepted: {other:?}"),
        }
    }
}
