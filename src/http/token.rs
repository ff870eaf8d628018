//! OAuth 2.0 token answers (RFC 6749 §5.1), read one way by every connector that logs in
//! (ServiceNow, the REST source, Cherwell, xMatters): the access token, the refresh token
//! when the answer carries one, its lifetime, and when to renew it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::secret::Secret;

/// What a token endpoint answered.
#[derive(Debug)]
pub struct TokenAnswer {
    pub access: Secret,
    /// `refresh_token`, when the answer carries one (a refresh answer may leave it out: the
    /// old one still holds).
    pub refresh: Option<Secret>,
    /// `expires_in` (a number, or a number in a string), or the service's default.
    pub lifetime: Duration,
}

impl TokenAnswer {
    /// Reads a token answer; `default_lifetime` is the service's own when `expires_in` is
    /// absent or unreadable. An answer without an access token is an error, worded here.
    pub fn parse(body: &Value, default_lifetime: Duration) -> Result<TokenAnswer, &'static str> {
        let secret = |name: &str| {
            body.get(name)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(|t| Secret::new(t.to_string()))
        };
        let access = secret("access_token").ok_or("a token answer without access_token")?;
        let lifetime = match body.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .map_or(default_lifetime, Duration::from_secs);
        Ok(TokenAnswer {
            access,
            refresh: secret("refresh_token"),
            lifetime,
        })
    }

    /// When to renew the token: a tenth of its lifetime early (at most a minute), so that no
    /// request carries a token that runs out on the way.
    pub fn renew_at(&self) -> Instant {
        let margin = self.lifetime.div_f64(10.0).min(Duration::from_secs(60));
        Instant::now() + self.lifetime - margin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn an_answer_gives_its_tokens_and_lifetime_and_falls_back_to_the_default() {
        let answer = TokenAnswer::parse(
            &json!({"access_token": "a", "refresh_token": "r", "expires_in": "120"}),
            HOUR,
        )
        .expect("an answer");
        assert_eq!(answer.access.expose(), "a");
        assert_eq!(answer.refresh.as_ref().map(Secret::expose), Some("r"));
        assert_eq!(answer.lifetime, Duration::from_secs(120));
        let answer = TokenAnswer::parse(
            &json!({"access_token": "a", "refresh_token": "", "expires_in": "soon"}),
            HOUR,
        )
        .expect("an answer");
        assert!(answer.refresh.is_none(), "an empty refresh token is none");
        assert_eq!(answer.lifetime, HOUR);
        for bad in [
            json!({}),
            json!({"access_token": ""}),
            json!({"access_token": 7}),
        ] {
            assert_eq!(
                TokenAnswer::parse(&bad, HOUR).map(|_| ()),
                Err("a token answer without access_token")
            );
        }
    }

    #[test]
    fn a_token_is_renewed_a_tenth_early_and_at_most_a_minute_early() {
        let answer = |secs| TokenAnswer {
            access: Secret::new("a".into()),
            refresh: None,
            lifetime: Duration::from_secs(secs),
        };
        let early = |secs| {
            let before = Instant::now();
            let renew = answer(secs).renew_at();
            before + Duration::from_secs(secs) - renew
        };
        let close = |d: Duration, want: u64| (d.as_secs_f64() - want as f64).abs() < 1.0;
        assert!(close(early(100), 10));
        assert!(close(early(3600), 60));
    }
}
