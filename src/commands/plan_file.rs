//! The plan file: written whole or not at all, and read back only in this format version.

use std::path::Path;

use super::Error;
use crate::config::Config;
use crate::plan::{FORMAT_VERSION, Plan};
use crate::render;

/// Reads a plan file of this format version.
pub(super) fn load(path: &Path) -> Result<Plan, Error> {
    let err = |message: String| Error::PlanFile {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not a roster plan: {e}")))?;
    if value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        != Some(u64::from(FORMAT_VERSION))
    {
        return Err(err(format!(
            "unsupported format_version (this roster reads version {FORMAT_VERSION})"
        )));
    }
    crate::plan::contract::read(value).map_err(|e| err(e.to_string()))
}

/// Reads a plan file to apply: it must have been made with the current config and policy.
pub(super) fn load_for(path: &Path, config: &Config) -> Result<Plan, Error> {
    let plan = load(path)?;
    if plan.config_digest != config.digest {
        return Err(Error::PlanFile {
            path: path.display().to_string(),
            message: "the plan was made with another config or policy than the current one; \
                      make a new plan with `roster plan`"
                .into(),
        });
    }
    Ok(plan)
}

/// Writes the plan file next to its final name and renames it into place, so a reader never
/// sees half a plan.
pub(super) fn write(path: &Path, plan: &Plan) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    render::write_json(plan, &mut file)?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}
