//! SCIM `/Bulk` (RFC 7644 §3.7), for the creates of an initial load (`--initial`).
//!
//! Used only when the provider says it serves Bulk (`bulk.supported` in
//! `/ServiceProviderConfig`, or the `compatibility` switch `bulk`; the `aws` preset says it
//! does not), in requests of at most `bulk.maxOperations` operations and under
//! `bulk.maxPayloadSize` bytes, measured on the body as sent. Each operation is a POST to
//! `/Users` with a `bulkId` of its own and the same body a single create sends;
//! `failOnErrors` is the number of operations, so one refused account never stops the rest.
//!
//! What an answer means, per account (`BulkCreate`):
//! - its result 2xx: created, the id from the result's `response.id` or its `location`;
//! - its result an error: refused, with the error a single create would have had (409
//!   `uniqueness` is `TargetError::Conflict`, which the applier resolves as it does for a
//!   single create: find, then adopt or refuse);
//! - no result for it, or a 2xx without an id: unknown (the applier looks it up first);
//! - the whole request answered 413: the request is halved and each half sent (one account
//!   alone too large is `NotSent`: a single create has no Bulk payload limit), and later
//!   requests stay below the size refused;
//! - the whole request answered 404, 405 or 501 (Bulk not served after all): `NotSent`, and
//!   Bulk is not tried again this run;
//! - the whole request answered 5xx (but 501, 503), timed out or dropped: unknown for each of
//!   its accounts, since the provider may have created any of them. A Bulk POST is never
//!   resent by the HTTP retries after such a failure (`Resend::OnlyUnprocessed`), so the
//!   request is never repeated blindly: the applier looks each account up before creating it
//!   alone, which is how no account is created twice;
//! - any other refusal of the whole request (401, 400, 429 or 503 after the retries):
//!   nothing was processed; `NotSent`.

use percent_encoding::percent_decode_str;
use reqwest::Method;
use serde_json::Value;

use super::{Call, ScimService, create_body, get_ci, get_str};
use crate::http;
use crate::model::DesiredUser;
use crate::target::{BulkCreate, TargetError};

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The most operations roster puts in one request, whatever the provider advertises, so that
/// one answer stays a few megabytes.
pub(super) const MAX_OPERATIONS: usize = 1000;
/// `maxOperations` when the provider serves Bulk without saying how many (it is required by
/// RFC 7643 §5, but not every provider writes it).
const DEFAULT_OPERATIONS: usize = 100;
/// `maxPayloadSize` when the provider does not say.
const DEFAULT_PAYLOAD: u64 = 1_048_576;

/// How one request went, before its results are read.
enum Sent {
    Answer(Value),
    /// 413: the body was too large.
    TooLarge,
    /// Refused before anything was processed.
    NotProcessed(TargetError),
    /// It may have been processed, in part or whole.
    Unknown(TargetError),
}

impl ScimService {
    /// The most creates one Bulk request carries, when the provider serves Bulk; `None`: one
    /// POST per account.
    pub(super) fn bulk_operations(&self) -> Result<Option<usize>, TargetError> {
        if self.learned.bulk_refused() || self.learned.stated.bulk == Some(false) {
            return Ok(None);
        }
        let config = self.provider_config()?;
        if config.bulk != Some(true) {
            return Ok(None);
        }
        let operations = config.bulk_max_operations.map_or(DEFAULT_OPERATIONS, |n| {
            usize::try_from(n).map_or(MAX_OPERATIONS, |n| n.min(MAX_OPERATIONS))
        });
        // A request of one operation is a single create with more to go wrong.
        Ok((operations >= 2).then_some(operations))
    }

    /// The largest body to send: `maxPayloadSize`, and below any body a 413 answered.
    fn bulk_payload_limit(&self) -> u64 {
        let advertised = self
            .learned
            .known_config()
            .and_then(|c| c.bulk_max_payload)
            .unwrap_or(DEFAULT_PAYLOAD);
        self.learned.bulk_payload_limit(advertised)
    }

    /// Creates `users` by `/Bulk`: what became of each, in order (see the module's text).
    pub(super) fn bulk_create(&self, users: &[DesiredUser]) -> Vec<BulkCreate> {
        let mut outcomes: Vec<BulkCreate> = users.iter().map(|_| BulkCreate::NotSent).collect();
        let max_operations = match self.bulk_operations() {
            Ok(Some(n)) => n,
            Ok(None) => return outcomes,
            Err(e) => {
                log::debug!("{}: Bulk not used: {e}", self.base);
                return outcomes;
            }
        };
        let operations: Vec<Vec<u8>> = users
            .iter()
            .enumerate()
            .map(|(i, user)| self.operation(i, user))
            .collect();
        let limit = self.bulk_payload_limit();
        for batch in pack(&operations, max_operations, limit) {
            self.send(&batch, &operations, &mut outcomes);
        }
        outcomes
    }

    /// One operation, serialized: the POST a single create would send, with `bulkId` `u<i>`.
    fn operation(&self, i: usize, user: &DesiredUser) -> Vec<u8> {
        let keyed = DesiredUser {
            key: self.external_id(&user.key),
            ..user.clone()
        };
        let operation = serde_json::json!({
            "method": "POST",
            "path": "/Users",
            "bulkId": bulk_id(i),
            "data": create_body(&keyed, &self.fields),
        });
        operation.to_string().into_bytes()
    }

    /// Sends the operations `batch` (indices into `operations`) as one request, halving it
    /// on 413, and records what became of each in `outcomes`.
    fn send(&self, batch: &[usize], operations: &[Vec<u8>], outcomes: &mut [BulkCreate]) {
        if self.learned.bulk_refused() {
            return;
        }
        let body = request_body(batch.iter().map(|&i| operations[i].as_slice()), batch.len());
        let size = body.len() as u64;
        let too_large = |outcomes: &mut [BulkCreate]| match batch {
            [] => {}
            [one] => {
                log::debug!(
                    "{}: the create of {} is {size} bytes, over what one Bulk request may \
                     carry; it goes alone",
                    self.base,
                    bulk_id(*one)
                );
            }
            _ => {
                let (first, second) = batch.split_at(batch.len() / 2);
                self.send(first, operations, outcomes);
                self.send(second, operations, outcomes);
            }
        };
        if size > self.bulk_payload_limit() {
            return too_large(outcomes);
        }
        let mut call = Call::new(Method::POST, format!("{}/Bulk", self.base));
        call.body = Some(body);
        log::debug!("POST {}: {} creates, {size} bytes", call.url, batch.len());
        match self.post(&call) {
            Sent::Answer(answer) => self.read_results(&call, &answer, batch, outcomes),
            Sent::TooLarge => {
                log::info!(
                    "POST {}: {size} bytes is too large for the provider (HTTP 413); sent in \
                     halves",
                    call.url
                );
                self.learned.bulk_was_too_large(size);
                too_large(outcomes);
            }
            Sent::NotProcessed(e) => {
                log::info!(
                    "{e}; the {} creates of this Bulk request go one request each",
                    batch.len()
                );
            }
            Sent::Unknown(e) => {
                log::warn!(
                    "{e}; the {} accounts of this Bulk request are looked up before they are \
                     created one by one",
                    batch.len()
                );
                let message = e.to_string();
                for &i in batch {
                    outcomes[i] = BulkCreate::Unknown(message.clone());
                }
            }
        }
    }

    fn post(&self, call: &Call) -> Sent {
        match self.execute(call) {
            Ok(reply) => match call.json(&reply) {
                Ok(answer) => Sent::Answer(answer),
                Err(e) => Sent::Unknown(e),
            },
            Err(TargetError::Http { status: 413, .. }) => Sent::TooLarge,
            Err(
                e @ TargetError::Http {
                    status: 404 | 405 | 501,
                    ..
                },
            ) => {
                self.learned.refuse_bulk();
                Sent::NotProcessed(e)
            }
            Err(e) if outcome_unknown(&e) => Sent::Unknown(e),
            Err(e) => Sent::NotProcessed(e),
        }
    }

    /// Reads a BulkResponse: each result, by its `bulkId`, into its account's outcome; an
    /// account without a result is unknown.
    fn read_results(
        &self,
        call: &Call,
        answer: &Value,
        batch: &[usize],
        outcomes: &mut [BulkCreate],
    ) {
        let mut answered = vec![false; batch.len()];
        let results = get_ci(answer, "Operations")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for result in results {
            let Some(position) = get_str(result, "bulkId")
                .and_then(|id| batch.iter().position(|&i| bulk_id(i) == id))
            else {
                continue;
            };
            if std::mem::replace(&mut answered[position], true) {
                continue;
            }
            outcomes[batch[position]] = self.outcome(call, result);
        }
        for (position, _) in answered.iter().enumerate().filter(|(_, a)| !**a) {
            outcomes[batch[position]] = BulkCreate::Unknown(format!(
                "POST {}: the answer has no result for operation {}",
                call.url,
                bulk_id(batch[position])
            ));
        }
    }

    /// One operation's result.
    fn outcome(&self, call: &Call, result: &Value) -> BulkCreate {
        let Some(status) = get_ci(result, "status").and_then(status_code) else {
            return BulkCreate::Unknown(format!(
                "POST {}: the result of an operation has no status",
                call.url
            ));
        };
        let response = get_ci(result, "response");
        if (200..300).contains(&status) {
            let id = response
                .and_then(|r| get_str(r, "id"))
                .map(str::to_string)
                .or_else(|| get_str(result, "location").and_then(id_of_location));
            return match id.filter(|id| !id.is_empty()) {
                Some(id) => BulkCreate::Created(id),
                None => BulkCreate::Unknown(format!(
                    "POST {}: an operation answered {status} without an id or location",
                    call.url
                )),
            };
        }
        let failure = http::Failure::Status {
            status,
            retry_after: None,
            body: response.map(Value::to_string).unwrap_or_default(),
            retries: 0,
        };
        BulkCreate::Refused(self.target_error(call, failure))
    }
}

/// A failure after which the provider may have processed the request.
fn outcome_unknown(e: &TargetError) -> bool {
    match e {
        TargetError::Http { status, .. } => *status >= 500 && !matches!(status, 501 | 503 | 505),
        TargetError::Transport { .. } | TargetError::InvalidResponse { .. } => true,
        _ => false,
    }
}

fn bulk_id(i: usize) -> String {
    format!("u{i}")
}

/// A BulkRequest of `operations` (already serialized), `failOnErrors` their number.
fn request_body<'a>(operations: impl Iterator<Item = &'a [u8]>, count: usize) -> Vec<u8> {
    let mut body = envelope_start(count).into_bytes();
    for (n, operation) in operations.enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(operation);
    }
    body.extend_from_slice(b"]}");
    body
}

fn envelope_start(count: usize) -> String {
    format!(
        "{{\"schemas\":[\"{BULK_REQUEST}\"],\"failOnErrors\":{},\"Operations\":[",
        count.max(1)
    )
}

/// The size of the request `request_body` makes of operations of `bytes` in all.
fn request_size(count: usize, bytes: usize) -> u64 {
    (envelope_start(count).len() + bytes + count.saturating_sub(1) + 2) as u64
}

/// The operations in requests, in order: at most `max_operations` each, and under `limit`
/// bytes each unless one operation alone is larger (it goes alone, and `send` holds it back).
fn pack(operations: &[Vec<u8>], max_operations: usize, limit: u64) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for (i, operation) in operations.iter().enumerate() {
        let full = current.len() >= max_operations
            || request_size(current.len() + 1, bytes + operation.len()) > limit;
        if full && !current.is_empty() {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(i);
        bytes += operation.len();
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// An operation's `status`: `"201"` as RFC 7644 writes it, a number, or SCIM 1.1's
/// `{"code": "201"}`.
fn status_code(status: &Value) -> Option<u16> {
    match status {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::Object(_) => get_ci(status, "code").and_then(status_code),
        _ => None,
    }
}

/// The id at the end of a created resource's `location` (`…/Users/<id>`), decoded.
fn id_of_location(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next()?.trim_end_matches('/');
    let (_, last) = path.rsplit_once('/')?;
    let id = percent_decode_str(last).decode_utf8().ok()?;
    (!id.is_empty()).then(|| id.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_cut_by_count_and_by_the_size_as_sent() {
        let operations: Vec<Vec<u8>> = (0..7).map(|i| vec![b'x'; 100 + i]).collect();
        let by_count = pack(&operations, 3, u64::MAX);
        assert_eq!(by_count, [vec![0, 1, 2], vec![3, 4, 5], vec![6]]);

        // Room for two operations a request, not three.
        let two = request_size(2, 201);
        let by_size = pack(&operations, 100, two + 10);
        assert!(by_size.iter().all(|b| b.len() <= 2), "{by_size:?}");
        assert_eq!(by_size.concat(), (0..7).collect::<Vec<_>>());
        for batch in &by_size {
            let body = request_body(batch.iter().map(|&i| operations[i].as_slice()), batch.len());
            assert!(body.len() as u64 <= two + 10);
            assert_eq!(
                body.len() as u64,
                request_size(
                    batch.len(),
                    batch.iter().map(|&i| operations[i].len()).sum()
                )
            );
        }

        // One operation larger than the limit goes alone.
        let mut operations = operations;
        operations[3] = vec![b'y'; 5000];
        let batches = pack(&operations, 100, two + 10);
        assert!(batches.contains(&vec![3]), "{batches:?}");
    }

    #[test]
    fn a_request_body_is_a_bulk_request() {
        let operations = [
            br#"{"method":"POST","bulkId":"u0"}"#.to_vec(),
            br#"{"method":"POST","bulkId":"u1"}"#.to_vec(),
        ];
        let body = request_body(operations.iter().map(Vec::as_slice), 2);
        let parsed: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(parsed["schemas"][0], BULK_REQUEST);
        assert_eq!(parsed["failOnErrors"], 2);
        assert_eq!(parsed["Operations"][1]["bulkId"], "u1");
    }

    #[test]
    fn statuses_and_locations_are_read_as_providers_write_them() {
        assert_eq!(status_code(&json!("201")), Some(201));
        assert_eq!(status_code(&json!(409)), Some(409));
        assert_eq!(status_code(&json!({"code": "400"})), Some(400));
        assert_eq!(status_code(&json!("created")), None);
        assert_eq!(
            id_of_location("https://x.example/scim/v2/Users/2819c223%2F7f76").as_deref(),
            Some("2819c223/7f76")
        );
        assert_eq!(
            id_of_location("https://x.example/v2/Users/abc/").as_deref(),
            Some("abc")
        );
        assert_eq!(id_of_location("abc"), None);
    }

    #[test]
    fn only_failures_after_which_the_provider_may_have_acted_are_unknown() {
        let http = |status| TargetError::Http {
            method: "POST".into(),
            url: "u".into(),
            status,
            code: None,
            detail: None,
            retry_after: None,
        };
        assert!(outcome_unknown(&http(500)));
        assert!(outcome_unknown(&http(504)));
        assert!(!outcome_unknown(&http(503)));
        assert!(!outcome_unknown(&http(501)));
        assert!(!outcome_unknown(&http(400)));
        assert!(outcome_unknown(&TargetError::Transport {
            method: "POST".into(),
            url: "u".into(),
            message: "timed out".into(),
        }));
    }
}
