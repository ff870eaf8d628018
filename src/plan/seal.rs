//! Sealing a plan, so that the reviewed plan is the only one apply can be made to carry out.
//!
//! A plan file is an artifact that travels (a CI job makes it, another applies it) and
//! anyone who can touch it could otherwise steer the target: turn a held remove into a
//! planned one, a remove into a delete, or set another address on a user. Two seals cover
//! it, both over the plan's canonical form (the contract's JSON of the plan as made, compact,
//! without its signature):
//!
//! - the **digest** (sha256), recorded in the state store when the plan is made: a file
//!   whose digest is not the one the store has for its plan id is not that plan;
//! - the **signature** (HMAC-SHA256 with `plan-signing-key`), written into the plan file:
//!   a store that never saw the plan (another runner, a fresh cache) can still tell that a
//!   holder of the key made it, and that no byte of it changed since.
//!
//! Canonical means "what the plan says", not "which bytes the file has": a plan file read
//! and written back by the contract gives the same form (`contract` tests hold it to that).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::Plan;
use super::contract;

/// How a signature is written in the plan file: the scheme, then the MAC in hex.
const SCHEME: &str = "hmac-sha256:";

/// A plan's digest and, when a key was given, its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// sha256 of the canonical plan, hex.
    pub digest: String,
    /// `hmac-sha256:<hex>` over the same bytes.
    pub signature: Option<String>,
}

/// Feeds what the contract writes into the digest and the MAC at once: the plan is
/// serialized once, never held in memory whole.
struct Sink {
    sha: Sha256,
    mac: Option<Hmac<Sha256>>,
}

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sha.update(buf);
        if let Some(mac) = &mut self.mac {
            mac.update(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Seals `plan`: its digest, and its signature with `key` if there is one. For a plan whose
/// actions are in memory, where nothing can fail; a plan kept in the store is sealed with
/// `try_seal` (should reading it fail here, the digest says so and matches no plan).
pub fn seal(plan: &Plan, key: Option<&[u8]>) -> Seal {
    try_seal(plan, key).unwrap_or_else(|e| Seal {
        digest: format!("unreadable plan: {e}"),
        signature: None,
    })
}

/// Seals `plan`, reading its actions wherever it keeps them; fails when they cannot be read.
pub fn try_seal(plan: &Plan, key: Option<&[u8]>) -> std::io::Result<Seal> {
    let mut sink = Sink {
        sha: Sha256::new(),
        // HMAC takes a key of any length.
        mac: key.and_then(|k| Hmac::<Sha256>::new_from_slice(k).ok()),
    };
    // Writing into hashes cannot fail, and a plan holds only strings, numbers and enums:
    // what can fail is reading a stored plan's actions.
    digest_into(&mut sink, plan)?;
    Ok(Seal {
        digest: hex(&sink.sha.finalize()),
        signature: sink
            .mac
            .map(|mac| format!("{SCHEME}{}", hex(&mac.finalize().into_bytes()))),
    })
}

/// Whether `signature` (as the plan file has it) is the signature of `plan` under `key`.
/// The comparison takes the same time whatever the bytes (`Mac::verify_slice`).
pub fn verify(plan: &Plan, signature: &str, key: &[u8]) -> bool {
    check(plan, signature, key).verified
}

/// What reading a plan file needs of its seal, from one pass over the plan: its digest, and
/// whether `signature` is its signature under `key`.
pub struct Checked {
    pub digest: String,
    pub verified: bool,
}

/// Seals `plan` with `key` and checks `signature` against it, in one pass.
pub fn check(plan: &Plan, signature: &str, key: &[u8]) -> Checked {
    let given = signature.strip_prefix(SCHEME).and_then(unhex);
    let mut sink = Sink {
        sha: Sha256::new(),
        mac: Hmac::<Sha256>::new_from_slice(key).ok(),
    };
    let _ = digest_into(&mut sink, plan);
    let verified = match (sink.mac, given) {
        (Some(mac), Some(given)) => mac.verify_slice(&given).is_ok(),
        _ => false,
    };
    Checked {
        digest: hex(&sink.sha.finalize()),
        verified,
    }
}

/// Writes the plan's canonical form into `sink`. Through a buffer: the serializer writes a
/// few bytes at a time (a quote, a key), and each write of the hashes has a cost of its own.
fn digest_into(sink: &mut Sink, plan: &Plan) -> std::io::Result<()> {
    let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, sink);
    serde_json::to_writer(&mut buffered, &contract::view(plan)).map_err(std::io::Error::other)?;
    std::io::Write::flush(&mut buffered)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Plan {
        let text = include_str!("../../tests/fixtures/plan_v1_groups.json");
        contract::read(serde_json::from_str(text).expect("json")).expect("plan")
    }

    #[test]
    fn a_signature_holds_for_the_plan_and_the_key_it_was_made_with_only() {
        let plan = fixture();
        let key = b"key held by both CI jobs";
        let seal = seal(&plan, Some(key));
        let signature = seal.signature.expect("signed");
        assert!(verify(&plan, &signature, key));
        assert!(!verify(&plan, &signature, b"another key"));
        let mut edited = plan.clone();
        edited.actions[0].status = crate::plan::ActionStatus::Planned;
        assert_ne!(edited, plan);
        assert!(!verify(&edited, &signature, key));
        assert_ne!(super::seal(&edited, None).digest, seal.digest);
        for broken in [
            "",
            "hmac-sha256:",
            "hmac-sha256:zz",
            "sha1:00",
            &signature[..20],
        ] {
            assert!(!verify(&plan, broken, key), "{broken}");
        }
    }

    #[test]
    fn the_digest_is_of_what_the_plan_says_not_of_the_file_s_layout() {
        let plan = fixture();
        let reread = contract::read(
            serde_json::from_str(&serde_json::to_string(&contract::view(&plan)).expect("json"))
                .expect("json"),
        )
        .expect("plan");
        assert_eq!(seal(&reread, None).digest, seal(&plan, None).digest);
        assert_eq!(seal(&plan, None).signature, None);
    }
}
