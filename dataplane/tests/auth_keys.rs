//! Production-style tokens: ES256 with a configured public key, and the algorithm pinned by
//! the key. The key pair under tests/fixtures exists only for these tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use palaver_dataplane::auth::{Claims, Verifier};
use palaver_dataplane::config::AuthConfig;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn claims(ttl: Duration) -> Claims {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    Claims {
        sub: "alice".into(),
        workspace: "acme".into(),
        exp: now + ttl.as_secs(),
        iss: "https://idp.example".into(),
        aud: "palaver".into(),
        name: Some("Alice A.".into()),
        picture: None,
    }
}

fn es256_config() -> AuthConfig {
    AuthConfig {
        dev_jwt_secret: None,
        jwt_public_key_file: Some(fixture("es256-test-only.pub")),
        jwt_alg: "ES256".into(),
        jwt_issuer: "https://idp.example".into(),
        jwt_audience: "palaver".into(),
        jwt_leeway_secs: 30,
    }
}

#[test]
fn es256_tokens_verify_with_the_public_key() {
    let v = Verifier::from_config(&es256_config()).unwrap();
    let key = EncodingKey::from_ec_pem(&std::fs::read(fixture("es256-test-only.key")).unwrap()).unwrap();
    let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims(Duration::from_secs(60)), &key).unwrap();
    let p = v.verify(&token).unwrap();
    assert_eq!((p.workspace.as_str(), p.user.as_str(), p.profile.name.as_deref()), ("acme", "alice", Some("Alice A.")));

    let mut wrong_iss = claims(Duration::from_secs(60));
    wrong_iss.iss = "https://evil.example".into();
    let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &wrong_iss, &key).unwrap();
    assert!(v.verify(&token).is_err(), "issuer is checked");
}

#[test]
fn the_key_pins_the_algorithm() {
    // Classic confusion attack: HS256 "signed" with the public key as the HMAC secret.
    let v = Verifier::from_config(&es256_config()).unwrap();
    let public = std::fs::read(fixture("es256-test-only.pub")).unwrap();
    let forged =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(Duration::from_secs(60)), &EncodingKey::from_secret(&public)).unwrap();
    assert!(v.verify(&forged).is_err(), "HS256 must not be accepted when only an ES256 key is configured");
}

#[test]
fn no_key_configured_is_a_startup_error() {
    let mut c = es256_config();
    c.jwt_public_key_file = None;
    let err = Verifier::from_config(&c).err().expect("must refuse to start").to_string();
    assert!(err.contains("PALAVER_JWT_PUBLIC_KEY_FILE"), "{err}");
    c.jwt_public_key_file = Some(fixture("es256-test-only.pub"));
    c.jwt_alg = "none".into();
    assert!(Verifier::from_config(&c).is_err(), "only RS256/ES256 are accepted for keys");
}
