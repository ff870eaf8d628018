//! A file as a target (`target "file"`): the accounts roster would sync, written as CSV,
//! XLSX or LDIF for a system that only imports files, or to look at on their own.
//!
//! A file cannot be listed the way an API can: the importing system may have picked it up
//! and moved it, and with `content "changes"` it holds only the last apply's changes. So
//! the accounts roster wrote are kept in the state store (`Store::kept_state`), and they are
//! this target's snapshot: a plan diffs against them, as against any target's listing.
//!
//! Apply stages every action in memory and writes the file once, at `finish_apply`:
//! atomically (a temporary file in the same directory, fsync, rename), so an importer never
//! reads half a file. The applier journals the actions applied only after that write, and
//! fails all of them when it fails; the store keeps the new state only then.
//!
//! The semantic seam: remove = the row stays, `active` false (the importing system sees the
//! account taken out of service); delete = the row leaves the file. The key is a column, so
//! every row is roster's (an externalId). Columns: `key`, `username`, `name`, `email`,
//! `phone` (several joined with "; "), one per field the mapping writes, `active`; with
//! `content "changes"`, an `action` column (add, update, remove, delete) comes first.

mod csv;
mod ldif;
pub(crate) mod xlsx;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{Finished, RemovalWords, Target, TargetError, UserUpdate};
use crate::config::{FileContent, FileFormat, FileTarget};
use crate::model::{Capabilities, DesiredUser, FieldValue, TargetUser, phone_digits};

/// roster's own columns, in order (the mapping's fields come between `phone` and `active`).
pub const FIXED_COLUMNS: &[&str] = &["key", "username", "name", "email", "phone", "active"];

/// The first column of a `content "changes"` file.
pub const ACTION_COLUMN: &str = "action";

/// Several phones in one cell.
const PHONE_SEPARATOR: &str = "; ";

/// The version of the kept state's JSON.
const KEPT_VERSION: u32 = 1;

/// An LDAP attribute description's name (RFC 4512 `descr`): a letter, then letters, digits
/// and hyphens. What an LDIF file's attribute names must be.
pub fn is_ldif_attribute(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The file target: the rows last written (from the store), the changes staged by this
/// apply, and how to write them.
#[derive(Debug)]
pub struct File {
    path: PathBuf,
    format: FileFormat,
    content: FileContent,
    base_dn: Option<String>,
    /// The mapping's target fields, in mapping order: the columns after `phone`.
    fields: Vec<String>,
    state: Mutex<State>,
}

/// A batch target's staging: the accounts it holds (kept in the store) and the changes an
/// apply staged, with the create / update / remove / delete rules of the file target. The
/// Luma target stages its contacts in one and uploads them instead of writing a file.
pub(crate) type Staging = File;

#[derive(Debug, Default)]
struct State {
    /// The accounts in the file, by id (the key they were created with).
    rows: BTreeMap<String, TargetUser>,
    /// What this apply did, in the order it did it.
    changes: Vec<Change>,
    /// The accounts as the store kept them, before this apply: what a row the target
    /// refused goes back to.
    before: BTreeMap<String, TargetUser>,
}

/// One action as a `content "changes"` file shows it: the row after it (before it, for a
/// delete).
#[derive(Debug, Clone)]
struct Change {
    kind: ChangeKind,
    row: TargetUser,
    /// The username before a rename (LDIF writes a modrdn for it).
    renamed_from: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeKind {
    Add,
    Update,
    Remove,
    Delete,
}

impl ChangeKind {
    fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Add => "add",
            ChangeKind::Update => "update",
            ChangeKind::Remove => "remove",
            ChangeKind::Delete => "delete",
        }
    }
}

/// What the store keeps: every account in the file.
#[derive(Debug, Serialize, Deserialize)]
struct Kept {
    format_version: u32,
    rows: Vec<TargetUser>,
}

/// The file's content as a table, for CSV and XLSX.
pub(crate) struct Table {
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

impl File {
    /// The target of `config`, holding `kept` (what the store kept after the last apply).
    pub fn new(
        config: &FileTarget,
        fields: Vec<String>,
        kept: Option<&str>,
    ) -> Result<Self, TargetError> {
        let mut file = File::staging(&config.path, fields, kept)?;
        file.format = config.format;
        file.content = config.content;
        file.base_dn = config.base_dn.as_ref().map(|d| d.value.clone());
        Ok(file)
    }

    /// A staging of the accounts `kept` (what the store kept), for a batch target that
    /// makes its changes elsewhere; `label` names it in messages.
    pub(crate) fn staging(
        label: &Path,
        fields: Vec<String>,
        kept: Option<&str>,
    ) -> Result<Self, TargetError> {
        let mut rows = BTreeMap::new();
        if let Some(text) = kept {
            let kept: Kept = serde_json::from_str(text).map_err(|e| {
                TargetError::Setup(format!(
                    "the state store's copy of what {} holds cannot be read ({e}): \
                     a damaged state store; remove it to start afresh",
                    label.display()
                ))
            })?;
            if kept.format_version != KEPT_VERSION {
                return Err(TargetError::Setup(format!(
                    "the state store's copy of what {} holds is of format {}, which this roster does not know",
                    label.display(),
                    kept.format_version
                )));
            }
            rows = kept.rows.into_iter().map(|r| (r.id.clone(), r)).collect();
        }
        let mut seen = Vec::new();
        let fields = fields
            .into_iter()
            .filter(|f| {
                let new = !seen.contains(f);
                seen.push(f.clone());
                new
            })
            .collect();
        Ok(File {
            path: label.to_path_buf(),
            format: FileFormat::Xlsx,
            content: FileContent::All,
            base_dn: None,
            fields,
            state: Mutex::new(State {
                before: rows.clone(),
                rows,
                changes: Vec::new(),
            }),
        })
    }

    /// Whether this apply staged any change.
    pub(crate) fn has_changes(&self) -> bool {
        !self.state().changes.is_empty()
    }

    /// Every account held now (with this apply's changes), in id order.
    pub(crate) fn rows(&self) -> Vec<TargetUser> {
        self.state().rows.values().cloned().collect()
    }

    /// Ends a staged apply whose changes were made, except those of the accounts
    /// `refused` (target ids), which go back to what they were: returns what the store
    /// is to keep.
    pub(crate) fn settle(
        &self,
        refused: &std::collections::BTreeSet<String>,
    ) -> Result<String, TargetError> {
        let mut state = self.state();
        for id in refused {
            match state.before.get(id).cloned() {
                Some(row) => state.rows.insert(id.clone(), row),
                None => state.rows.remove(id),
            };
        }
        state.changes.clear();
        state.before = state.rows.clone();
        let kept = Kept {
            format_version: KEPT_VERSION,
            rows: state.rows.values().cloned().collect(),
        };
        serde_json::to_string(&kept)
            .map_err(|e| self.error(format!("cannot record what the target holds: {e}")))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A worker that panicked cannot have left a row half changed: every change is
        // one assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }

    fn error(&self, message: impl Into<String>) -> TargetError {
        TargetError::File {
            path: self.path.display().to_string(),
            message: message.into(),
        }
    }

    fn directory(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// The header and the cells of one row, as CSV and XLSX write them.
    fn table(&self, state: &State) -> Table {
        let mut header: Vec<String> = Vec::new();
        if self.content == FileContent::Changes {
            header.push(ACTION_COLUMN.into());
        }
        header.extend(FIXED_COLUMNS[..5].iter().map(|c| c.to_string()));
        header.extend(self.fields.iter().cloned());
        header.push(FIXED_COLUMNS[5].into());
        let cells = |row: &TargetUser| {
            let mut cells = vec![
                row.external_id.clone().unwrap_or_default(),
                row.username.clone(),
                row.name.clone().unwrap_or_default(),
                row.email.clone().unwrap_or_default(),
                row.phones.join(PHONE_SEPARATOR),
            ];
            cells.extend(
                self.fields
                    .iter()
                    .map(|f| row.fields.get(f).cloned().unwrap_or_default()),
            );
            cells.push(row.active.to_string());
            cells
        };
        let rows = match self.content {
            FileContent::All => state.rows.values().map(cells).collect(),
            FileContent::Changes => state
                .changes
                .iter()
                .map(|c| {
                    let mut row = vec![c.kind.as_str().to_string()];
                    row.extend(cells(&c.row));
                    row
                })
                .collect(),
        };
        Table { header, rows }
    }

    /// The bytes of the file for what `state` holds.
    fn render(&self, state: &State) -> Result<Vec<u8>, TargetError> {
        match self.format {
            FileFormat::Csv => csv::write(&self.table(state)).map_err(|e| self.error(e)),
            FileFormat::Xlsx => {
                xlsx::write(&self.table(state), xlsx::SHEET).map_err(|e| self.error(e))
            }
            FileFormat::Ldif => {
                let base = self.base_dn.as_deref().unwrap_or_default();
                let ldif = ldif::Ldif {
                    base_dn: base,
                    fields: &self.fields,
                };
                Ok(match self.content {
                    FileContent::All => ldif.entries(state.rows.values()),
                    FileContent::Changes => ldif.changes(&state.changes),
                })
            }
        }
    }

    /// Writes `bytes` as the file, atomically: a temporary file beside it, synced, renamed
    /// over it, and the directory synced, so that the file is the old one or the new one.
    fn write_atomically(&self, bytes: &[u8]) -> Result<(), TargetError> {
        let dir = self.directory();
        let temp = dir.join(format!(
            ".{}.roster-{}.tmp",
            self.file_name(),
            std::process::id()
        ));
        let written = (|| -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&temp, &self.path)?;
            // The rename is durable once the directory is.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            self.error(format!("cannot write the file: {e}"))
        })
    }

    /// The directory the file goes in must exist, checked when the target is read (at
    /// plan time), so that a plan is not made for a file that cannot be written.
    fn check_directory(&self) -> Result<(), TargetError> {
        let dir = self.directory();
        if dir.is_dir() {
            return Ok(());
        }
        Err(self.error(format!(
            "the directory {} does not exist: create it, or change `path` in target \"file\"",
            dir.display()
        )))
    }
}

impl Target for File {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::FILE
    }

    fn removal_words(&self) -> RemovalWords {
        let name = self.file_name();
        match self.content {
            FileContent::All => RemovalWords {
                remove: Some(format!("stays in {name}, marked inactive")),
                delete: Some(format!("leaves {name}")),
            },
            FileContent::Changes => RemovalWords {
                remove: Some(format!("a remove row in {name}")),
                delete: Some(format!("a delete row in {name}")),
            },
        }
    }

    fn list_users(&self, sink: &mut dyn FnMut(TargetUser)) -> Result<u64, TargetError> {
        self.check_directory()?;
        let rows: Vec<TargetUser> = self.state().rows.values().cloned().collect();
        let count = rows.len() as u64;
        rows.into_iter().for_each(sink);
        Ok(count)
    }

    fn get_user(&self, id: &str) -> Result<Option<TargetUser>, TargetError> {
        Ok(self.state().rows.get(id).cloned())
    }

    fn find_user(&self, username: &str) -> Result<Option<TargetUser>, TargetError> {
        let lower = username.to_lowercase();
        Ok(self
            .state()
            .rows
            .values()
            .find(|r| r.username.to_lowercase() == lower)
            .cloned())
    }

    fn create_user(&self, user: &DesiredUser) -> Result<TargetUser, TargetError> {
        let mut state = self.state();
        let lower = user.username.to_lowercase();
        let taken = state.rows.contains_key(&user.key)
            || state
                .rows
                .values()
                .any(|r| r.username.to_lowercase() == lower);
        if taken {
            return Err(TargetError::Conflict {
                method: "add".into(),
                url: self.describe(),
                status: 409,
                detail: Some(format!("a row for {} is in the file", user.username)),
            });
        }
        let row = TargetUser {
            id: user.key.clone(),
            owner: None,
            external_id: Some(user.key.clone()),
            username: user.username.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            phones: user.phones.clone(),
            fields: user
                .fields
                .iter()
                .filter_map(|(k, v)| match v {
                    FieldValue::Set(v) => Some((k.clone(), v.clone())),
                    FieldValue::Clear => None,
                })
                .collect(),
            active: user.active,
            version: None,
        };
        state.rows.insert(row.id.clone(), row.clone());
        state.changes.push(Change {
            kind: ChangeKind::Add,
            row: row.clone(),
            renamed_from: None,
        });
        Ok(row)
    }

    fn update_user(
        &self,
        id: &str,
        _version: Option<&str>,
        update: &UserUpdate,
    ) -> Result<Option<String>, TargetError> {
        let mut state = self.state();
        if let Some(username) = &update.username {
            let lower = username.to_lowercase();
            if let Some(other) = state
                .rows
                .values()
                .find(|r| r.id != id && r.username.to_lowercase() == lower)
            {
                return Err(TargetError::Conflict {
                    method: "update".into(),
                    url: self.describe(),
                    status: 409,
                    detail: Some(format!("the row of {} has that username", other.id)),
                });
            }
        }
        let Some(row) = state.rows.get_mut(id) else {
            return Err(self.not_in_file(id));
        };
        let renamed_from = update
            .username
            .as_ref()
            .filter(|u| **u != row.username)
            .map(|_| row.username.clone());
        apply_update(row, update);
        let row = row.clone();
        state.changes.push(Change {
            kind: ChangeKind::Update,
            row,
            renamed_from,
        });
        Ok(None)
    }

    fn remove_user(&self, id: &str, _version: Option<&str>) -> Result<(), TargetError> {
        let mut state = self.state();
        let Some(row) = state.rows.get_mut(id) else {
            return Err(self.not_in_file(id));
        };
        row.active = false;
        let row = row.clone();
        state.changes.push(Change {
            kind: ChangeKind::Remove,
            row,
            renamed_from: None,
        });
        Ok(())
    }

    fn delete_user(&self, id: &str, _version: Option<&str>) -> Result<(), TargetError> {
        let mut state = self.state();
        // Already gone is not an error.
        if let Some(row) = state.rows.remove(id) {
            state.changes.push(Change {
                kind: ChangeKind::Delete,
                row,
                renamed_from: None,
            });
        }
        Ok(())
    }

    fn writes_at_finish(&self) -> bool {
        true
    }

    fn finish_apply(&self) -> Result<Finished, TargetError> {
        let bytes = {
            let state = self.state();
            if state.changes.is_empty() {
                return Ok(Finished::default());
            }
            self.render(&state)?
        };
        self.write_atomically(&bytes)?;
        Ok(Finished {
            kept: Some(self.settle(&Default::default())?),
            ..Finished::default()
        })
    }
}

impl File {
    fn not_in_file(&self, id: &str) -> TargetError {
        self.error(format!(
            "no row with key {id} is in the file roster last wrote (make a new plan)"
        ))
    }
}

/// Changes one row as `update` says; phones are only added.
fn apply_update(row: &mut TargetUser, update: &UserUpdate) {
    if let Some(key) = &update.external_id {
        row.external_id = Some(key.clone());
    }
    if let Some(username) = &update.username {
        row.username = username.clone();
    }
    if let Some(name) = &update.name {
        row.name = Some(name.clone());
    }
    if let Some(email) = &update.email {
        row.email = Some(email.clone());
    }
    for phone in &update.add_phones {
        let digits = phone_digits(phone);
        if !row.phones.iter().any(|p| phone_digits(p) == digits) {
            row.phones.push(phone.clone());
        }
    }
    for (field, value) in &update.fields {
        match value {
            FieldValue::Set(v) => {
                row.fields.insert(field.clone(), v.clone());
            }
            FieldValue::Clear => {
                row.fields.remove(field);
            }
        }
    }
    if let Some(active) = update.active {
        row.active = active;
    }
}

#[cfg(test)]
mod tests;
