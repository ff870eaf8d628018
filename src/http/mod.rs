//! HTTP for every HTTP connector: one client (`HttpClient`), one retry policy, one
//! rate-limit gate, one secret scrubber, and the small pieces of HTTP they all read the same
//! way (the `Retry-After` header, the `Link` header, quoting an error body, a reqwest error's
//! causes).
//!
//! They live here, not in one connector, because the SCIM target, the REST sources and the
//! targets to come must agree on them: a `Retry-After` read one way by the target and another
//! by a source would make roster honour a rate limit on one side only, and a retry policy
//! copied into each connector drifts apart. A connector gives the client its base URL (in
//! each request), its `Authorization`, the secrets to scrub and its `HttpOptions`; it gets
//! back a `Reply` or a classified `Failure`, and words its own errors.
//!
//! - `client.rs`: `HttpClient`, `Request`, `Reply`, `Failure`, `Authorization`.
//! - `retry.rs`: when and how long to wait before sending again (`Resend`, `retry_wait`).
//! - `limit.rs`: how many requests at once, halved on overload answers, won back one by one
//!   (`Admission`).
//! - `pacer.rs`: the `rate-limit` gate.
//! - `scrub.rs`: every encoded form of every secret, out of server text.
//! - `token.rs`: OAuth 2.0 token answers and when to renew them (`TokenAnswer`).

mod client;
mod limit;
mod pacer;
mod retry;
mod scrub;
mod token;

pub use client::Failure;
pub use client::{
    Authorization, Body, FormValue, HttpClient, InvalidBody, Reply, Request, Role, Settings,
    SetupError,
};
pub use limit::{Admission, Change, Limits, Ticket};
pub use pacer::Pacer;
pub use retry::{
    Jitter, MAX_OVERLOAD_RETRIES, MAX_RETRIES, MAX_RETRY_AFTER_SECS, Resend, retries_allowed,
    retry_wait,
};
pub use scrub::{REDACTED, Scrubber};
pub use token::TokenAnswer;

/// Longest piece of an error body quoted in an error message.
pub const MAX_QUOTED_BODY: usize = 300;

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date in the past is 0.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs);
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let millis = (date.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    // Rounded up: waiting a little long is harmless, resending early is not.
    Some(u64::try_from(millis).map_or(0, |ms| ms.div_ceil(1000)))
}

/// The target of the `rel="next"` link in a `Link` header (RFC 8288), as written (it may be
/// relative). Link targets are read up to their closing `>`, so commas inside them (ServiceNow
/// puts `sysparm_fields=a,b` there) do not split links.
pub fn link_next(header: &str) -> Option<&str> {
    let mut rest = header;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        // The parameters run to the next link, which starts with `<` outside quotes.
        let params_start = close + 1;
        let mut in_quotes = false;
        let mut params_end = rest.len();
        for (i, c) in rest[params_start..].char_indices() {
            match c {
                '"' => in_quotes = !in_quotes,
                '<' if !in_quotes => {
                    params_end = params_start + i;
                    break;
                }
                _ => {}
            }
        }
        if link_params_have_next(&rest[params_start..params_end]) {
            return Some(target);
        }
        rest = &rest[params_end..];
    }
}

/// Whether `; rel="next"` (or `rel=next`, or `rel="next last"`) is among a link's parameters.
fn link_params_have_next(params: &str) -> bool {
    params.split(';').any(|param| {
        let Some((name, value)) = param.split_once('=') else {
            return false;
        };
        let value = value.trim().trim_end_matches(',').trim().trim_matches('"');
        name.trim().eq_ignore_ascii_case("rel")
            && value
                .split_ascii_whitespace()
                .any(|rel| rel.eq_ignore_ascii_case("next"))
    })
}

/// An error body as text for a message: trimmed, and cut after `MAX_QUOTED_BODY` characters.
pub fn quote_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_QUOTED_BODY) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// An error and its causes, most general first; reqwest's own top line ("error sending
/// request") says little, the causes say what happened.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("7"), Some(7));
        assert_eq!(parse_retry_after(" 0 "), Some(0));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(0));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let secs = parse_retry_after(&soon).expect("a date");
        assert!((29..=31).contains(&secs), "{secs}");
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-3"), None);
    }

    #[test]
    fn link_next_finds_the_next_link_among_others() {
        // As ServiceNow sends it: no spaces, commas inside the targets.
        let servicenow = "<https://x.service-now.com/api/now/table/sys_user?sysparm_limit=1&sysparm_fields=sys_id,name&sysparm_offset=0>;rel=\"first\",\
            <https://x.service-now.com/api/now/table/sys_user?sysparm_limit=1&sysparm_fields=sys_id,name&sysparm_offset=-1>;rel=\"prev\",\
            <https://x.service-now.com/api/now/table/sys_user?sysparm_limit=1&sysparm_fields=sys_id,name&sysparm_offset=1>;rel=\"next\",\
            <https://x.service-now.com/api/now/table/sys_user?sysparm_limit=1&sysparm_fields=sys_id,name&sysparm_offset=549>;rel=\"last\"";
        assert_eq!(
            link_next(servicenow),
            Some(
                "https://x.service-now.com/api/now/table/sys_user?sysparm_limit=1&sysparm_fields=sys_id,name&sysparm_offset=1"
            )
        );
        // As Freshservice sends it.
        assert_eq!(
            link_next(
                "<https://acme.freshservice.com/api/v2/requesters?per_page=100&page=2>; rel=\"next\""
            ),
            Some("https://acme.freshservice.com/api/v2/requesters?per_page=100&page=2")
        );
        assert_eq!(link_next("</p?page=3>; rel=next"), Some("/p?page=3"));
        assert_eq!(
            link_next("</a>; title=\"a <b>, rel=next\"; rel=\"last\", </b>; rel=\"prev next\""),
            Some("/b")
        );
        assert_eq!(link_next("</a>; rel=\"last\", </b>; rel=\"prev\""), None);
        assert_eq!(link_next("</a>; rel=\"nextish\""), None);
        assert_eq!(link_next(""), None);
        assert_eq!(link_next("garbage"), None);
        assert_eq!(link_next("<unclosed; rel=next"), None);
    }

    #[test]
    fn quoted_bodies_are_cut() {
        assert_eq!(quote_body(b"  short \n"), "short");
        let long = "x".repeat(400);
        assert_eq!(quote_body(long.as_bytes()).len(), 303);
    }
}
