//! The plan file: written whole or not at all, read back only in this format version, and
//! applied only when it is exactly a plan roster made.
//!
//! A plan file to apply is trusted in one of two ways (ARCHITECTURE.md, "A reviewed plan
//! cannot be edited into another one"): the state store has its plan id with the same
//! digest (`plan::seal`), or it carries a valid signature made with the `plan-signing-key`.
//! A signature is checked whenever the key is at hand, before anything else.

use std::path::Path;

use super::Error;
use crate::config::Config;
use crate::plan::{FORMAT_VERSION, Plan, seal};
use crate::render;
use crate::secret::Secret;
use crate::store::Store;

/// Reads a plan file of this format version.
pub(super) fn load(path: &Path) -> Result<Plan, Error> {
    load_signed(path).map(|(plan, _)| plan)
}

/// Reads a plan file and the signature it carries.
fn load_signed(path: &Path) -> Result<(Plan, Option<String>), Error> {
    let err = |message: String| plan_file_error(path, message);
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    // The version first, from that one key (the rest is skipped, not built), so that a plan
    // of another version is refused as such rather than by whatever its fields look like.
    let version: Option<serde_json::Value> = serde_json::from_str::<VersionOnly>(&text)
        .map_err(|e| err(format!("not a roster plan: {e}")))?
        .format_version;
    if version.as_ref().and_then(serde_json::Value::as_u64) != Some(u64::from(FORMAT_VERSION)) {
        return Err(err(format!(
            "unsupported format_version (this roster reads version {FORMAT_VERSION})"
        )));
    }
    crate::plan::contract::read_signed_text(&text).map_err(|e| err(e.to_string()))
}

/// The one key of a plan file read before the others.
#[derive(serde::Deserialize)]
struct VersionOnly {
    format_version: Option<serde_json::Value>,
}

fn plan_file_error(path: &Path, message: String) -> Error {
    Error::PlanFile {
        path: path.display().to_string(),
        message,
    }
}

/// Reads a plan file to apply: it must be exactly a plan roster made (the store knows it by
/// its digest, or a holder of `key` signed it), made with the current config and policy.
/// Returns the plan and its digest.
pub(super) fn load_for(
    path: &Path,
    config: &Config,
    store: &Store,
    key: Option<&Secret>,
) -> Result<(Plan, String), Error> {
    let (plan, signature) = load_signed(path)?;
    // One pass over the plan gives its digest and, where both are at hand, checks its
    // signature.
    let (digest, signed) = match (signature.as_deref(), key) {
        (Some(signature), Some(key)) => {
            let checked = seal::check(&plan, signature, key.expose().as_bytes());
            (checked.digest, Some(checked.verified))
        }
        _ => (seal::seal(&plan, None).digest, None),
    };
    trust(
        &plan,
        &digest,
        signed,
        signature.as_deref(),
        store,
        key.is_some(),
    )
    .map_err(|message| plan_file_error(path, message))?;
    if plan.config_digest != config.digest {
        return Err(plan_file_error(
            path,
            "the plan was made with another config or policy than the current one; \
             make a new plan with `roster plan`"
                .into(),
        ));
    }
    Ok((plan, digest))
}

/// Whether the file's plan is one roster made; the refusal says why not and what to do.
/// `verified` is the signature check, when the file has a signature and the key is at hand.
fn trust(
    plan: &Plan,
    digest: &str,
    verified: Option<bool>,
    signature: Option<&str>,
    store: &Store,
    key: bool,
) -> Result<(), String> {
    let id = &plan.plan_id;
    let remake = "apply the file `roster plan` wrote, or make a new plan with `roster plan`";
    let signed = match verified {
        Some(verified) => {
            if !verified {
                return Err(format!(
                    "refusing plan {id}: its signature does not match its content, so the file \
                     was changed after roster made it (or signed with another plan-signing-key); \
                     nothing was applied; {remake}"
                ));
            }
            true
        }
        None => false,
    };
    let record = store.plan_record(id).map_err(|e| e.to_string())?;
    match record {
        Some(record) => match record.digest {
            Some(known) if known == digest => Ok(()),
            Some(_) => Err(format!(
                "refusing plan {id}: the file is not the plan roster made under this id (its \
                 content differs from what the state store recorded: an edited file?); nothing \
                 was applied; {remake}"
            )),
            None if signed => Ok(()),
            None => Err(format!(
                "refusing plan {id}: it was stored by an older roster that recorded no digest \
                 of it, so the file cannot be checked; make a new plan with `roster plan`"
            )),
        },
        None if signed => Ok(()),
        None => Err(match (signature, key) {
            (_, false) => format!(
                "refusing plan {id}: the state store ({}) has never seen it, and no \
                 plan-signing-key is configured to check a signature; apply it with the state \
                 store it was made with, or sign plans with `plan-signing-key` in both jobs \
                 (README: \"Plan in a pull request, apply after merge\")",
                store.path().display()
            ),
            (None, true) => format!(
                "refusing plan {id}: the state store ({}) has never seen it, and the file \
                 carries no signature; make the plan with the same plan-signing-key, or apply \
                 it with the state store it was made with",
                store.path().display()
            ),
            // A signature with the key at hand was verified above.
            (Some(_), true) => format!("refusing plan {id}: it cannot be verified"),
        }),
    }
}

/// Writes the plan file (with its signature, if it has one) next to its final name and
/// renames it into place, so a reader never sees half a plan.
pub(super) fn write(path: &Path, plan: &Plan, signature: Option<&str>) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    render::write_signed_json(plan, signature, &mut file)?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}
