//! Authentication: JWT verification (and minting of dev tokens).
//!
//! Owns which algorithms and claims are accepted. It must not decide permissions inside a
//! workspace (the store's membership checks do that) nor whether a workspace exists.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use palaver_crds::WorkspaceName;
use serde::{Deserialize, Serialize};

use crate::config::AuthConfig;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub workspace: String,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
    /// OIDC's display name and avatar URL, when the identity provider sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
}

/// Who is calling: a user of one workspace. Everything a request touches is scoped by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub workspace: WorkspaceName,
    pub user: String,
    pub profile: Profile,
}

/// What the token says of the user's name and picture (kept only when well-formed: a bad one
/// is left out, the token still counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Profile {
    pub name: Option<String>,
    pub picture: Option<String>,
}

/// Longest display name, in characters; longest avatar URL, in bytes.
pub const MAX_NAME_CHARS: usize = 80;
pub const MAX_PICTURE_BYTES: usize = 2048;

impl Profile {
    fn from_claims(name: Option<String>, picture: Option<String>) -> Self {
        let name = name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty() && n.chars().count() <= MAX_NAME_CHARS && !n.chars().any(char::is_control));
        let picture = picture.filter(|p| {
            (p.starts_with("https://") || p.starts_with("http://"))
                && p.len() <= MAX_PICTURE_BYTES
                && !p.chars().any(|c| c.is_whitespace() || c.is_control())
        });
        Self { name, picture }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send `Authorization: Bearer <jwt>` or `?token=<jwt>`")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("no verification key configured")]
    NoKey,
}

pub struct Verifier {
    keys: Vec<(DecodingKey, Validation)>,
}

/// User ids: 1 to 64 of letters, digits, `-`, `_`, `.`, `@`.
pub fn valid_user_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

impl Verifier {
    pub fn from_config(cfg: &AuthConfig) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.set_issuer(&[&cfg.jwt_issuer]);
            v.set_audience(&[&cfg.jwt_audience]);
            v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            // `nbf` is optional, but when present a token is refused before it (RFC 7519 4.1.5).
            v.validate_nbf = true;
            v.leeway = cfg.jwt_leeway_secs;
            v
        };
        if let Some(path) = &cfg.jwt_public_key_file {
            let pem = std::fs::read(path)?;
            let (key, alg) = match cfg.jwt_alg.as_str() {
                "RS256" => (DecodingKey::from_rsa_pem(&pem)?, Algorithm::RS256),
                "ES256" => (DecodingKey::from_ec_pem(&pem)?, Algorithm::ES256),
                other => anyhow::bail!("PALAVER_JWT_ALG must be RS256 or ES256, not {other}"),
            };
            keys.push((key, validation(alg)));
        }
        if let Some(secret) = cfg.dev_secret() {
            keys.push((DecodingKey::from_secret(secret.as_bytes()), validation(Algorithm::HS256)));
        }
        if keys.is_empty() {
            anyhow::bail!("no JWT key configured: set PALAVER_JWT_PUBLIC_KEY_FILE (production) or PALAVER_DEV_JWT_SECRET (development)");
        }
        Ok(Self { keys })
    }

    /// Verifies signature (with the algorithm pinned per key), expiry, not-before, issuer and
    /// audience.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let (key, validation) = self
            .keys
            .iter()
            .find(|(_, v)| v.algorithms.contains(&header.alg))
            .ok_or_else(|| AuthError::Invalid(format!("algorithm {:?} not accepted", header.alg)))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let workspace = WorkspaceName::new(data.claims.workspace).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if !valid_user_id(&data.claims.sub) {
            return Err(AuthError::Invalid("`sub` is not a valid user id".into()));
        }
        let profile = Profile::from_claims(data.claims.name, data.claims.picture);
        Ok(Principal { workspace, user: data.claims.sub, profile })
    }
}

/// Mints an HS256 token with the dev secret (`palaverd token`, the dev sign-in, tests, bench).
pub fn mint_dev_token(cfg: &AuthConfig, workspace: &WorkspaceName, user: &str, ttl: Duration) -> Result<String, AuthError> {
    mint_dev_token_named(cfg, workspace, user, None, ttl)
}

/// [`mint_dev_token`] with a display name (the `name` claim an identity provider would send).
pub fn mint_dev_token_named(
    cfg: &AuthConfig,
    workspace: &WorkspaceName,
    user: &str,
    name: Option<&str>,
    ttl: Duration,
) -> Result<String, AuthError> {
    let secret = cfg.dev_secret().ok_or(AuthError::NoKey)?;
    if !valid_user_id(user) {
        return Err(AuthError::Invalid(format!("invalid user id {user:?}")));
    }
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_secs() + ttl.as_secs();
    let claims = Claims {
        sub: user.into(),
        workspace: workspace.to_string(),
        exp,
        iss: cfg.jwt_issuer.clone(),
        aud: cfg.jwt_audience.clone(),
        name: name.map(str::to_string),
        picture: None,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .map_err(|e| AuthError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuthConfig {
        AuthConfig {
            dev_jwt_secret: Some("s3cret".into()),
            jwt_public_key_file: None,
            jwt_alg: "RS256".into(),
            jwt_issuer: "palaver".into(),
            jwt_audience: "palaver".into(),
            jwt_leeway_secs: 30,
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn signed(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"s3cret")).unwrap()
    }

    #[test]
    fn profile_claims_are_kept_only_when_well_formed() {
        let p = Profile::from_claims(Some("  Ada Lovelace ".into()), Some("https://img.example/ada.png".into()));
        assert_eq!((p.name.as_deref(), p.picture.as_deref()), (Some("Ada Lovelace"), Some("https://img.example/ada.png")));
        for (name, picture) in [("", "ftp://x"), ("a\u{0}b", "https://a b"), (&"x".repeat(81), "javascript:alert(1)")] {
            assert_eq!(Profile::from_claims(Some(name.into()), Some(picture.into())), Profile::default(), "{name:?} {picture:?}");
        }
    }

    #[test]
    fn not_before_is_checked_with_the_leeway() {
        let v = Verifier::from_config(&cfg()).unwrap();
        let with_nbf = |nbf: i64| {
            signed(
                serde_json::json!({"sub": "alice", "workspace": "acme", "exp": now() + 7200, "iss": "palaver", "aud": "palaver", "nbf": nbf}),
            )
        };
        let early = v.verify(&with_nbf(now() + 3600));
        assert!(matches!(&early, Err(AuthError::Invalid(m)) if m.contains("ImmatureSignature")), "{early:?}");
        // Within the 30 s clock-skew leeway, and in the past: accepted.
        assert!(v.verify(&with_nbf(now() + 10)).is_ok());
        assert!(v.verify(&with_nbf(now() - 10)).is_ok());
        // The leeway is a setting: with none, 10 s ahead is too early.
        let strict = Verifier::from_config(&AuthConfig { jwt_leeway_secs: 0, ..cfg() }).unwrap();
        assert!(strict.verify(&with_nbf(now() + 10)).is_err());
        // The same leeway applies to `exp`.
        let just_expired =
            signed(serde_json::json!({"sub": "alice", "workspace": "acme", "exp": now() - 10, "iss": "palaver", "aud": "palaver"}));
        assert!(v.verify(&just_expired).is_ok());
        assert!(strict.verify(&just_expired).is_err());
    }

    #[test]
    fn round_trip_and_rejections() {
        let c = cfg();
        let ws = WorkspaceName::new("acme").unwrap();
        let v = Verifier::from_config(&c).unwrap();
        let t = mint_dev_token(&c, &ws, "alice", Duration::from_secs(60)).unwrap();
        assert_eq!(v.verify(&t).unwrap(), Principal { workspace: ws.clone(), user: "alice".into(), profile: Profile::default() });

        let mut other = cfg();
        other.dev_jwt_secret = Some("other".into());
        let forged = mint_dev_token(&other, &ws, "alice", Duration::from_secs(60)).unwrap();
        assert!(v.verify(&forged).is_err(), "wrong secret must fail");

        other = cfg();
        other.jwt_audience = "someone-else".into();
        let wrong_aud = mint_dev_token(&other, &ws, "alice", Duration::from_secs(60)).unwrap();
        assert!(v.verify(&wrong_aud).is_err(), "wrong audience must fail");

        let expired = {
            let claims = Claims {
                sub: "alice".into(),
                workspace: "acme".into(),
                exp: 1,
                iss: "palaver".into(),
                aud: "palaver".into(),
                name: None,
                picture: None,
            };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"s3cret")).unwrap()
        };
        assert!(matches!(v.verify(&expired), Err(AuthError::Invalid(m)) if m.contains("xpired")));
        assert!(v.verify("garbage").is_err());
        assert!(mint_dev_token(&c, &ws, "bad user", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn an_empty_dev_secret_is_no_secret() {
        let empty = AuthConfig { dev_jwt_secret: Some(String::new()), ..cfg() };
        assert!(Verifier::from_config(&empty).is_err(), "no key at all: palaverd must not start");
        let ws = WorkspaceName::new("acme").unwrap();
        assert!(matches!(mint_dev_token(&empty, &ws, "alice", Duration::from_secs(60)), Err(AuthError::NoKey)));
    }

    #[test]
    fn a_dev_token_carries_the_display_name_it_was_minted_with() {
        let c = cfg();
        let ws = WorkspaceName::new("acme").unwrap();
        let t = mint_dev_token_named(&c, &ws, "ada", Some("Ada Lovelace"), Duration::from_secs(60)).unwrap();
        let p = Verifier::from_config(&c).unwrap().verify(&t).unwrap();
        assert_eq!(p.profile.name.as_deref(), Some("Ada Lovelace"));
    }
}
