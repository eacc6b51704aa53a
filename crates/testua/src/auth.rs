//! Client side of digest authentication: choosing a challenge and computing
//! the credentials that answer it (RFC 3261 §22, RFC 7616, RFC 8760).

use crate::config::AuthOptions;
use switchboard_sip::digest::{self, Algorithm, ResponseInput};
use switchboard_sip::{AuthHeader, HeaderName, Response};

/// The challenge the agent answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chosen {
    /// `Authorization` (for 401) or `Proxy-Authorization` (for 407).
    pub(crate) cred_header: HeaderName,
    /// The challenge itself.
    pub(crate) challenge: AuthHeader,
    /// The algorithm to answer with.
    pub(crate) algorithm: Algorithm,
}

/// The Digest challenges of a 401 or 407, each with the header its answer
/// goes into. Challenges that do not parse are skipped.
fn digest_challenges(resp: &Response) -> Vec<(HeaderName, AuthHeader)> {
    let (challenge, cred) = match resp.status {
        401 => (HeaderName::WwwAuthenticate, HeaderName::Authorization),
        407 => (
            HeaderName::ProxyAuthenticate,
            HeaderName::ProxyAuthorization,
        ),
        _ => return Vec::new(),
    };
    resp.headers
        .get_all(&challenge)
        .filter_map(|v| AuthHeader::parse(v, challenge.as_str()).ok())
        .filter(|c| c.is_digest())
        .map(|c| (cred.clone(), c))
        .collect()
}

/// True if we can answer the challenge's qop: absent (RFC 2069 style) or
/// offering `auth`.
fn qop_usable(c: &AuthHeader) -> bool {
    match c.param("qop") {
        None => true,
        Some(q) => q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")),
    }
}

fn algorithm_of(c: &AuthHeader) -> Option<Algorithm> {
    if qop_usable(c) {
        Algorithm::parse(c.param("algorithm"))
    } else {
        None
    }
}

/// Picks the challenge to answer according to `opts`; `None` if no Digest
/// challenge can be answered.
pub(crate) fn choose(resp: &Response, opts: &AuthOptions) -> Option<Chosen> {
    let list = digest_challenges(resp);
    let pick = |(cred, ch): &(HeaderName, AuthHeader), algorithm: Algorithm| Chosen {
        cred_header: cred.clone(),
        challenge: ch.clone(),
        algorithm,
    };
    if let Some(forced) = opts.force_algorithm {
        if let Some(c) = list.iter().find(|c| algorithm_of(&c.1) == Some(forced)) {
            return Some(pick(c, forced));
        }
        return list.first().map(|c| pick(c, forced));
    }
    for wanted in &opts.preference {
        if let Some(c) = list.iter().find(|c| algorithm_of(&c.1) == Some(*wanted)) {
            return Some(pick(c, *wanted));
        }
    }
    list.iter()
        .find_map(|c| algorithm_of(&c.1).map(|a| pick(c, a)))
}

/// The per-request inputs of [`credentials`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct CredInput<'a> {
    pub(crate) method: &'a str,
    /// The Request-URI, as written.
    pub(crate) uri: &'a str,
    pub(crate) username: &'a str,
    pub(crate) password: &'a str,
    pub(crate) nonce: &'a str,
    pub(crate) nc: u32,
    pub(crate) cnonce: &'a str,
}

/// The credentials answering `chosen`: `qop=auth` when the challenge offers
/// qop, the RFC 2069 form when it has none.
pub(crate) fn credentials(chosen: &Chosen, input: &CredInput<'_>) -> AuthHeader {
    let ch = &chosen.challenge;
    let alg = chosen.algorithm;
    let realm = ch.param("realm").unwrap_or("");
    let use_qop = ch.param("qop").is_some();
    let nc = format!("{:08x}", input.nc);
    let response = if use_qop {
        digest::client_response(
            &ResponseInput {
                algorithm: alg,
                nonce: input.nonce,
                nc: &nc,
                cnonce: input.cnonce,
                method: input.method,
                uri: input.uri,
            },
            input.username,
            realm,
            input.password,
        )
    } else {
        let ha1 = digest::ha1(alg, input.username, realm, input.password);
        let ha2 = alg.hash_hex(format!("{}:{}", input.method, input.uri).as_bytes());
        alg.hash_hex(format!("{ha1}:{}:{ha2}", input.nonce).as_bytes())
    };
    let mut params = vec![
        ("username".to_owned(), input.username.to_owned()),
        ("realm".to_owned(), realm.to_owned()),
        ("nonce".to_owned(), input.nonce.to_owned()),
        ("uri".to_owned(), input.uri.to_owned()),
        ("response".to_owned(), response),
        ("algorithm".to_owned(), alg.as_str().to_owned()),
    ];
    if use_qop {
        params.push(("cnonce".to_owned(), input.cnonce.to_owned()));
    }
    if let Some(opaque) = ch.param("opaque") {
        params.push(("opaque".to_owned(), opaque.to_owned()));
    }
    if use_qop {
        params.push(("qop".to_owned(), "auth".to_owned()));
        params.push(("nc".to_owned(), nc));
    }
    AuthHeader {
        scheme: "Digest".to_owned(),
        params,
    }
}

/// The realm of a credentials or challenge header value, if it parses.
pub(crate) fn realm_of(value: &str, header: &HeaderName) -> Option<String> {
    AuthHeader::parse(value, header.as_str())
        .ok()
        .and_then(|a| a.param("realm").map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge_response(status: u16, values: &[&str]) -> Response {
        let name = if status == 401 {
            HeaderName::WwwAuthenticate
        } else {
            HeaderName::ProxyAuthenticate
        };
        let mut r = Response::new(status);
        for v in values {
            r.headers.push(name.clone(), *v);
        }
        r
    }

    fn input<'a>(nonce: &'a str, cnonce: &'a str, password: &'a str) -> CredInput<'a> {
        CredInput {
            method: "GET",
            uri: "/dir/index.html",
            username: "Mufasa",
            password,
            nonce,
            nc: 1,
            cnonce,
        }
    }

    /// RFC 7616 §3.9.1 gives the same exchange answered with MD5 and SHA-256;
    /// computing both proves the credentials independently of our own server code.
    #[test]
    fn rfc7616_vectors_md5_and_sha256() {
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (alg, expected) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let resp = challenge_response(
                401,
                &[&format!(
                    r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, nonce="{nonce}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
                )],
            );
            let chosen = choose(&resp, &AuthOptions::default()).expect("answerable");
            assert_eq!(chosen.cred_header, HeaderName::Authorization);
            let cred = credentials(&chosen, &input(nonce, cnonce, "Circle of Life"));
            assert_eq!(cred.param("response"), Some(expected), "{alg}");
            assert_eq!(cred.param("qop"), Some("auth"));
            assert_eq!(cred.param("nc"), Some("00000001"));
            assert_eq!(
                cred.param("opaque"),
                Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
            );
            assert_eq!(cred.param("algorithm"), Some(alg));
        }
    }

    /// RFC 2617 §3.5 (MD5, qop=auth) and its RFC 2069 form without qop.
    #[test]
    fn rfc2617_vector_and_legacy_form() {
        let resp = challenge_response(
            407,
            &[
                r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
            ],
        );
        let chosen = choose(&resp, &AuthOptions::default()).expect("answerable");
        assert_eq!(chosen.cred_header, HeaderName::ProxyAuthorization);
        assert_eq!(chosen.algorithm, Algorithm::Md5);
        let mut inp = input(
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "0a4f113b",
            "Circle Of Life",
        );
        inp.username = "Mufasa";
        let cred = credentials(&chosen, &inp);
        assert_eq!(
            cred.param("response"),
            Some("6629fae49393a05397450978507c4ef1")
        );
        // Without qop: response = MD5(HA1:nonce:HA2), no cnonce/nc/qop.
        let legacy = challenge_response(401, &[r#"Digest realm="r", nonce="n""#]);
        let chosen = choose(&legacy, &AuthOptions::default()).expect("answerable");
        let cred = credentials(&chosen, &input("n", "c", "p"));
        let ha1 = Algorithm::Md5.hash_hex(b"Mufasa:r:p");
        let ha2 = Algorithm::Md5.hash_hex(b"GET:/dir/index.html");
        let expected = Algorithm::Md5.hash_hex(format!("{ha1}:n:{ha2}").as_bytes());
        assert_eq!(cred.param("response"), Some(expected.as_str()));
        assert_eq!(cred.param("qop"), None);
        assert_eq!(cred.param("cnonce"), None);
    }

    #[test]
    fn challenge_choice_follows_preference_and_force() {
        let resp = challenge_response(
            401,
            &[
                r#"Digest realm="a", nonce="1", algorithm=SHA-512-256-sess, qop="auth""#,
                r#"Digest realm="a", nonce="2", algorithm=MD5, qop="auth""#,
                r#"Digest realm="a", nonce="3", algorithm=SHA-256, qop="auth""#,
                r#"Digest realm="a", nonce="4", algorithm=SHA-256, qop="auth-int""#,
            ],
        );
        let nonce = |c: &Chosen| c.challenge.param("nonce").map(str::to_owned);
        let first = choose(&resp, &AuthOptions::default()).expect("some");
        assert_eq!(
            (nonce(&first).as_deref(), first.algorithm),
            (Some("2"), Algorithm::Md5)
        );
        let pref = AuthOptions {
            preference: vec![Algorithm::Sha512_256, Algorithm::Sha256],
            ..AuthOptions::default()
        };
        let c = choose(&resp, &pref).expect("some");
        assert_eq!(
            (nonce(&c).as_deref(), c.algorithm),
            (Some("3"), Algorithm::Sha256)
        );
        let forced = AuthOptions {
            force_algorithm: Some(Algorithm::Sha512_256),
            ..AuthOptions::default()
        };
        let c = choose(&resp, &forced).expect("some");
        assert_eq!(
            (nonce(&c).as_deref(), c.algorithm),
            (Some("1"), Algorithm::Sha512_256),
            "an unoffered forced algorithm answers the first challenge"
        );
        assert!(choose(&Response::new(403), &AuthOptions::default()).is_none());
        let only_int = challenge_response(401, &[r#"Digest realm="a", nonce="1", qop="auth-int""#]);
        assert!(choose(&only_int, &AuthOptions::default()).is_none());
        let basic = challenge_response(401, &[r#"Basic realm="a""#]);
        assert!(choose(&basic, &AuthOptions::default()).is_none());
    }
}
