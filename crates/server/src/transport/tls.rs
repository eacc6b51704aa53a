//! TLS configuration: a configured PEM certificate and key, or a self-signed
//! certificate for the served domains generated into the data directory on
//! first start. TLS 1.2 and 1.3 only.

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the certificate came from (reported at start-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    Configured(PathBuf),
    Generated(PathBuf),
    Existing(PathBuf),
}

/// Loads the configured certificate, or loads/creates the generated one.
pub fn load_or_generate(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: &Path,
    domains: &[String],
) -> anyhow::Result<(Arc<rustls::ServerConfig>, CertSource)> {
    let (chain, key, source) = match (cert, key) {
        (Some(c), Some(k)) => {
            let (chain, key) = read_pem(c, k)?;
            (chain, key, CertSource::Configured(c.to_owned()))
        }
        _ => {
            let dir = data_dir.join("tls");
            let c = dir.join("cert.pem");
            let k = dir.join("key.pem");
            if c.exists() && k.exists() {
                let (chain, key) = read_pem(&c, &k)?;
                (chain, key, CertSource::Existing(c))
            } else {
                generate(&dir, &c, &k, domains)?;
                let (chain, key) = read_pem(&c, &k)?;
                (chain, key, CertSource::Generated(c))
            }
        }
    };
    Ok((Arc::new(server_config(chain, key)?), source))
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("certificate and key do not match or are unsupported")
}

fn read_pem(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let cert_bytes = std::fs::read(cert)
        .with_context(|| format!("cannot read certificate {}", cert.display()))?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_bytes.as_slice())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} contains no certificate", cert.display());
    }
    let key_bytes =
        std::fs::read(key).with_context(|| format!("cannot read private key {}", key.display()))?;
    // The key's content must never appear in an error: only its path.
    let key = rustls_pemfile::private_key(&mut key_bytes.as_slice())
        .ok()
        .flatten()
        .with_context(|| {
            format!(
                "{} contains no PKCS#8, PKCS#1 or SEC1 private key",
                key.display()
            )
        })?;
    Ok((chain, key))
}

fn generate(dir: &Path, cert: &Path, key: &Path, domains: &[String]) -> anyhow::Result<()> {
    let mut names: Vec<String> = domains.to_vec();
    names.push("localhost".into());
    let certified = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed certificate")?;
    crate::private_fs::create_private_dir(dir)?;
    std::fs::write(cert, certified.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    write_private(key, certified.signing_key.serialize_pem().as_bytes())?;
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, src) =
            load_or_generate(None, None, dir.path(), &["example.com".into()]).expect("generate");
        assert!(matches!(src, CertSource::Generated(_)));
        let key = dir.path().join("tls/key.pem");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
                0o600
            );
        }
        let (_, again) =
            load_or_generate(None, None, dir.path(), &["example.com".into()]).expect("reuse");
        assert!(matches!(again, CertSource::Existing(_)));
    }

    #[test]
    fn configured_files_are_used_and_errors_name_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        load_or_generate(None, None, dir.path(), &["example.com".into()]).expect("generate");
        let c = dir.path().join("tls/cert.pem");
        let k = dir.path().join("tls/key.pem");
        let (_, src) = load_or_generate(Some(&c), Some(&k), Path::new("/nonexistent"), &[])
            .expect("configured");
        assert_eq!(src, CertSource::Configured(c.clone()));
        let bogus = dir.path().join("bogus.pem");
        std::fs::write(
            &bogus,
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
        )
        .expect("write");
        let err = format!(
            "{:#}",
            load_or_generate(Some(&c), Some(&bogus), dir.path(), &[]).expect_err("bad key")
        );
        assert!(
            !err.contains("c2VjcmV0"),
            "key material must not leak: {err}"
        );
        let missing = format!(
            "{:#}",
            load_or_generate(
                Some(&dir.path().join("nope.pem")),
                Some(&k),
                dir.path(),
                &[]
            )
            .expect_err("missing")
        );
        assert!(missing.contains("nope.pem"), "{missing}");
    }
}
