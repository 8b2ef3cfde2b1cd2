//! Bearer tokens: the API's (from the variable `[api] token_env` names) and each heartbeat's
//! push token (from its `token_env`). Tokens are read from the environment once, at start, and
//! compared in constant time; only the variable's name is ever shown or logged.

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use crate::tasks::BoundTask;

/// A secret and the name of the variable it came from.
#[derive(Clone)]
pub struct Token {
    /// The environment variable's name: who presented it, for the audit log.
    pub name: String,
    secret: Vec<u8>,
}

// The secret must never reach a log through `{:?}`.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("name", &self.name).finish()
    }
}

/// Why the tokens could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} names the environment variable {name}, which is {problem}; set it to a secret of at least {MIN_LEN} characters before starting hmrt"
)]
pub struct TokenError {
    /// What names the variable (`[api] token_env`, or a task's `config.token_env`).
    pub what: String,
    /// The variable.
    pub name: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// The shortest token accepted: shorter ones are guessable.
pub const MIN_LEN: usize = 16;

impl Token {
    /// Reads the variable `name` from the environment.
    pub fn from_env(what: &str, name: &str) -> Result<Token, TokenError> {
        let error = |problem| TokenError {
            what: what.to_string(),
            name: name.to_string(),
            problem,
        };
        let secret = match std::env::var(name) {
            Ok(secret) => secret,
            Err(std::env::VarError::NotPresent) => return Err(error("not set")),
            Err(std::env::VarError::NotUnicode(_)) => return Err(error("not valid UTF-8")),
        };
        let secret = secret.trim();
        if secret.len() < MIN_LEN {
            return Err(error("too short"));
        }
        Ok(Token {
            name: name.to_string(),
            secret: secret.as_bytes().to_vec(),
        })
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`. The comparison takes the
    /// same time wherever the first difference is.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = bearer(headers) else {
            return false;
        };
        bool::from(presented.as_bytes().ct_eq(&self.secret))
    }
}

/// The token of an `Authorization: Bearer ...` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The tokens the API checks.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// The mutating routes' token; `None`: every mutating route answers 401.
    pub api: Option<Token>,
    /// Each heartbeat task's push token.
    pub push: HashMap<String, Token>,
}

impl Tokens {
    /// Reads every token the config names; the first variable missing or too short is an error
    /// (hmrt does not start on it).
    pub fn from_env(api_env: Option<&str>, tasks: &[BoundTask]) -> Result<Tokens, TokenError> {
        let api = api_env
            .map(|name| Token::from_env("[api] token_env", name))
            .transpose()?;
        let mut push = HashMap::new();
        for task in tasks {
            if let Some(heartbeat) = task.heartbeat() {
                let what = format!("task {:?}'s config.token_env", task.name());
                push.insert(
                    task.name().to_string(),
                    Token::from_env(&what, &heartbeat.token_env)?,
                );
            }
        }
        Ok(Tokens { api, push })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(secret: &str) -> Token {
        Token {
            name: "T".into(),
            secret: secret.as_bytes().to_vec(),
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let t = token("0123456789abcdef");
        assert!(t.admits(&headers("Bearer 0123456789abcdef")));
        assert!(t.admits(&headers("bearer 0123456789abcdef")));
        assert!(!t.admits(&headers("Bearer 0123456789abcdeF")));
        assert!(!t.admits(&headers("Bearer 0123456789abcde")));
        assert!(!t.admits(&headers("Basic 0123456789abcdef")));
        assert!(!t.admits(&headers("0123456789abcdef")));
        assert!(!t.admits(&HeaderMap::new()));
    }

    #[test]
    fn the_secret_never_shows() {
        let shown = format!("{:?}", token("supersecretvalue!"));
        assert!(!shown.contains("supersecret"), "{shown}");
    }
}
