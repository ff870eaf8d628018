//! The plan file: written whole or not at all, read back only in this format version, and
//! applied only when it is exactly a plan roster made.
//!
//! A plan file to apply is trusted in one of two ways (ARCHITECTURE.md, "A reviewed plan
//! cannot be edited into another one"): the state store has its plan id with the same
//! digest (`plan::seal`), or it carries a valid signature made with the `plan-signing-key`.
//! A signature is checked whenever the key is at hand, before anything else.
//!
//! The file is the contract's plan object with each action written compact
//! (`contract::file_view`: no nulls, no default status, object or reason), one action a
//! line; a file that would be larger than `ZSTD_ABOVE` is written zstd-compressed instead.
//! Every reader tells the two apart by the zstd frame's magic bytes, reads the verbose form
//! of older files as well, and streams the file rather than holding its text. What is
//! sealed is not the file's bytes but the plan's canonical form (`plan::seal`), so the
//! encoding changes nothing about trust.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use super::Error;
use crate::config::Config;
use crate::plan::{FORMAT_VERSION, Plan, contract, seal};
use crate::secret::Secret;
use crate::store::Store;

/// A plan file's text larger than this is written zstd-compressed (16 MiB, some 50,000 adds):
/// below it the file stays plain JSON, to be read by anything.
const ZSTD_ABOVE: usize = 16 << 20;

/// Hidden: the size above which a plan file is compressed, in bytes, instead of
/// `ZSTD_ABOVE` (tests compress a small plan with it).
const ZSTD_ABOVE_VAR: &str = "ROSTER_PLAN_FILE_ZSTD_ABOVE";

/// zstd's level: its default, several hundred MB/s on one core.
const ZSTD_LEVEL: i32 = 3;

/// The magic number a zstd frame starts with (RFC 8878, 3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// How the bytes of a plan file are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Zstd,
}

/// Opens a plan file for reading, through a decompressor when it is zstd. The reader is
/// a concrete `BufReader`: serde_json reads byte by byte, and std reads a byte straight
/// from a `BufReader`'s buffer only when it knows the type (behind a `dyn`, reading a plan
/// of 100,000 verbose actions took 3 s longer).
fn open(path: &Path) -> std::io::Result<(BufReader<Source>, Encoding)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    let mut magic = Vec::with_capacity(ZSTD_MAGIC.len());
    (&mut file)
        .take(ZSTD_MAGIC.len() as u64)
        .read_to_end(&mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    let (source, encoding) = if magic == ZSTD_MAGIC {
        (
            Source::Zstd(zstd::stream::read::Decoder::new(file)?),
            Encoding::Zstd,
        )
    } else {
        (Source::Plain(file), Encoding::Json)
    };
    Ok((BufReader::with_capacity(1 << 16, source), encoding))
}

/// A plan file's bytes as JSON: the file, or what its zstd frame decompresses to.
enum Source {
    Plain(File),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<File>>),
}

impl std::io::Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::Plain(file) => file.read(buf),
            Source::Zstd(zstd) => zstd.read(buf),
        }
    }
}

/// Reads a plan file of this format version.
pub(super) fn load(path: &Path) -> Result<Plan, Error> {
    load_signed(path).map(|(plan, _)| plan)
}

/// Reads a plan file and the signature it carries.
fn load_signed(path: &Path) -> Result<(Plan, Option<String>), Error> {
    let err = |message: String| plan_file_error(path, message);
    let (reader, encoding) = open(path).map_err(|e| err(e.to_string()))?;
    let unsupported = || {
        err(format!(
            "unsupported format_version (this roster reads version {FORMAT_VERSION})"
        ))
    };
    let failed = match contract::read_signed_from(reader) {
        Ok((plan, _)) if plan.format_version != FORMAT_VERSION => return Err(unsupported()),
        Ok(read) => return Ok(read),
        Err(failed) => failed,
    };
    // Not a plan this roster reads: the version decides how that is said, so a second pass
    // reads that one key (the rest is skipped, not built) and a plan of another version is
    // refused as such rather than by whatever its fields look like.
    let (reader, _) = open(path).map_err(|e| err(e.to_string()))?;
    let version: Option<serde_json::Value> = serde_json::from_reader::<_, VersionOnly>(reader)
        .map_err(|e| match encoding {
            Encoding::Zstd if e.is_io() => err(format!(
                "the compressed plan file is damaged or cut short (zstd: {e})"
            )),
            _ => err(format!("not a roster plan: {e}")),
        })?
        .format_version;
    if version.as_ref().and_then(serde_json::Value::as_u64) != Some(u64::from(FORMAT_VERSION)) {
        return Err(unsupported());
    }
    Err(err(failed.to_string()))
}

/// The one key of a plan file read alone, when the plan does not read, to say why.
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
/// renames it into place, so a reader never sees half a plan. The text is streamed: plain
/// while it stays within the size limit (`ZSTD_ABOVE`), held until then; zstd from the
/// first byte once it would exceed it.
pub(super) fn write(path: &Path, plan: &Plan, signature: Option<&str>) -> std::io::Result<()> {
    write_above(path, plan, signature, zstd_above()?).map(|_| ())
}

/// `write`, compressing above `above` bytes.
fn write_above(
    path: &Path,
    plan: &Plan,
    signature: Option<&str>,
    above: usize,
) -> std::io::Result<Encoding> {
    let plain = path.with_extension("tmp");
    let packed = path.with_extension("tmp.zst");
    let spill = Spill {
        above,
        written: 0,
        plain: Some(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&plain)?,
        ),
        plain_path: plain.clone(),
        packed_path: packed.clone(),
        zstd: None,
    };
    let mut out = BufWriter::with_capacity(1 << 16, spill);
    let mut json = serde_json::Serializer::with_formatter(&mut out, Layout::default());
    serde::Serialize::serialize(&contract::file_view(plan, signature), &mut json)
        .map_err(std::io::Error::other)?;
    out.write_all(b"\n")?;
    let (file, encoding) = out.into_inner().map_err(|e| e.into_error())?.finish()?;
    file.sync_all()?;
    let tmp = match encoding {
        Encoding::Json => plain,
        Encoding::Zstd => packed,
    };
    std::fs::rename(&tmp, path)?;
    Ok(encoding)
}

fn zstd_above() -> std::io::Result<usize> {
    match std::env::var(ZSTD_ABOVE_VAR) {
        Ok(value) => value.trim().parse().map_err(|_| {
            std::io::Error::other(format!(
                "{ZSTD_ABOVE_VAR} is {value:?}, not a number of bytes"
            ))
        }),
        Err(_) => Ok(ZSTD_ABOVE),
    }
}

/// Plain until the text would exceed `above` bytes, zstd from then on: what was written
/// plain is read back through the encoder into a file of its own, which goes on from
/// there. One pass over the plan decides, nothing but the encoder's window is held, and the
/// file is one or the other whole.
struct Spill {
    above: usize,
    /// Bytes written to `plain` so far.
    written: usize,
    plain: Option<File>,
    plain_path: std::path::PathBuf,
    packed_path: std::path::PathBuf,
    zstd: Option<zstd::stream::write::Encoder<'static, BufWriter<File>>>,
}

impl Spill {
    /// The written file, all of it, and which it is.
    fn finish(mut self) -> std::io::Result<(File, Encoding)> {
        match (self.zstd.take(), self.plain.take()) {
            (Some(zstd), _) => {
                let file = zstd.finish()?.into_inner().map_err(|e| e.into_error())?;
                Ok((file, Encoding::Zstd))
            }
            (None, Some(file)) => Ok((file, Encoding::Json)),
            (None, None) => Err(closed()),
        }
    }

    /// From now on the file is zstd: what was written plain goes first.
    fn compress(&mut self) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let mut plain = self.plain.take().ok_or_else(closed)?;
        let packed = File::create(&self.packed_path)?;
        let mut zstd = zstd::stream::write::Encoder::new(
            BufWriter::with_capacity(1 << 16, packed),
            ZSTD_LEVEL,
        )?;
        // A damaged file is then refused by zstd itself, not only by what its text reads as.
        zstd.include_checksum(true)?;
        plain.seek(SeekFrom::Start(0))?;
        std::io::copy(&mut BufReader::with_capacity(1 << 16, plain), &mut zstd)?;
        std::fs::remove_file(&self.plain_path)?;
        self.zstd = Some(zstd);
        Ok(())
    }
}

fn closed() -> std::io::Error {
    std::io::Error::other("the plan file was closed while written")
}

impl Write for Spill {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.zstd.is_none() && self.written + data.len() > self.above {
            self.compress()?;
        }
        match (&mut self.zstd, &mut self.plain) {
            (Some(zstd), _) => zstd.write(data),
            (None, Some(plain)) => {
                let n = plain.write(data)?;
                self.written += n;
                Ok(n)
            }
            (None, None) => Err(closed()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match (&mut self.zstd, &mut self.plain) {
            (Some(zstd), _) => zstd.flush(),
            (None, Some(plain)) => plain.flush(),
            (None, None) => Ok(()),
        }
    }
}

/// The plan file's layout: the plan's keys one a line and each action on a line of its
/// own (pretty for the two outer levels), each action's insides compact. A file people can
/// still read and `grep`, at two bytes an action more than compact.
#[derive(Default)]
struct Layout {
    depth: usize,
    has_value: bool,
}

/// The levels laid out on lines: the plan object, and the arrays and objects in it.
const LINED_DEPTH: usize = 2;

impl Layout {
    fn lined(&self) -> bool {
        self.depth <= LINED_DEPTH
    }

    fn line<W: ?Sized + Write>(&self, out: &mut W, depth: usize) -> std::io::Result<()> {
        out.write_all(b"\n")?;
        for _ in 0..depth {
            out.write_all(b"  ")?;
        }
        Ok(())
    }

    fn open<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        out.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, out: &mut W, bracket: &[u8]) -> std::io::Result<()> {
        let lined = self.lined();
        self.depth -= 1;
        if lined && self.has_value {
            self.line(out, self.depth)?;
        }
        out.write_all(bracket)
    }

    fn item<W: ?Sized + Write>(&mut self, out: &mut W, first: bool) -> std::io::Result<()> {
        if !first {
            out.write_all(b",")?;
        }
        if self.lined() {
            self.line(out, self.depth)?;
        }
        Ok(())
    }
}

impl serde_json::ser::Formatter for Layout {
    fn begin_array<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.open(out, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.close(out, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(out, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.open(out, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.close(out, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(out, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        out.write_all(if self.lined() { b": " } else { b":" })
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plan files written by roster before the compact form (verbose, pretty).
    const FIXTURES: [&str; 2] = [
        include_str!("../../tests/fixtures/plan_v1.json"),
        include_str!("../../tests/fixtures/plan_v1_groups.json"),
    ];

    fn fixture(text: &str) -> Plan {
        contract::read(serde_json::from_str(text).expect("json")).expect("a plan")
    }

    fn loaded(path: &Path) -> (Plan, Option<String>) {
        load_signed(path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn message(result: Result<(Plan, Option<String>), Error>) -> String {
        match result {
            Ok(_) => panic!("read as a plan"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn plain_and_zstd_files_read_back_as_the_plan_written_and_seal_the_same() {
        let dir = tempfile::tempdir().expect("dir");
        for text in FIXTURES {
            let plan = fixture(text);
            let digest = seal::seal(&plan, None).digest;
            // The verbose file of before.
            let old = dir.path().join("old.json");
            std::fs::write(&old, text).expect("write");
            assert_eq!(loaded(&old), (plan.clone(), None));
            for (above, encoding) in [(usize::MAX, Encoding::Json), (0, Encoding::Zstd)] {
                let path = dir.path().join("plan.json");
                let written = write_above(&path, &plan, Some("hmac-sha256:00"), above);
                assert_eq!(written.expect("written"), encoding);
                let bytes = std::fs::read(&path).expect("read");
                assert_eq!(bytes.starts_with(&ZSTD_MAGIC), encoding == Encoding::Zstd);
                let (back, signature) = loaded(&path);
                assert_eq!(back, plan);
                assert_eq!(signature.as_deref(), Some("hmac-sha256:00"));
                assert_eq!(seal::seal(&back, None).digest, digest);
                assert!(!dir.path().join("plan.tmp").exists());
                assert!(!dir.path().join("plan.tmp.zst").exists());
            }
        }
    }

    #[test]
    fn a_plain_file_has_a_line_per_action_and_no_nulls() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("plan.json");
        let plan = fixture(FIXTURES[1]);
        write_above(&path, &plan, None, usize::MAX).expect("written");
        let text = std::fs::read_to_string(&path).expect("text");
        assert!(!text.contains("null"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "{");
        assert_eq!(lines[1], "  \"format_version\": 1,");
        let actions: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("    {\"seq\":"))
            .collect();
        assert_eq!(actions.len(), plan.actions.len(), "{text}");
        assert_eq!(lines.last(), Some(&"}"));
        // Still JSON for anything that reads JSON.
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["summary"]["add"], plan.summary.add);
    }

    #[test]
    fn the_size_decides_plain_or_zstd() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("plan.json");
        let plan = fixture(FIXTURES[1]);
        write_above(&path, &plan, None, usize::MAX).expect("written");
        let size = std::fs::metadata(&path).expect("size").len() as usize;
        assert_eq!(
            write_above(&path, &plan, None, size).expect("written"),
            Encoding::Json
        );
        assert_eq!(std::fs::metadata(&path).expect("size").len() as usize, size);
        assert_eq!(
            write_above(&path, &plan, None, size - 1).expect("written"),
            Encoding::Zstd
        );
        assert!(std::fs::metadata(&path).expect("size").len() < size as u64 / 2);
        assert_eq!(loaded(&path).0, plan);
    }

    #[test]
    fn a_cut_or_damaged_zstd_file_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("plan.json");
        write_above(&path, &fixture(FIXTURES[1]), None, 0).expect("written");
        let whole = std::fs::read(&path).expect("read");
        let cut = dir.path().join("cut.json");
        std::fs::write(&cut, &whole[..whole.len() / 2]).expect("write");
        let err = message(load_signed(&cut));
        assert!(
            err.starts_with(&format!("plan file {}: ", cut.display())),
            "{err}"
        );
        assert!(
            err.contains("the compressed plan file is damaged or cut short"),
            "{err}"
        );
        let mut damaged = whole.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x55;
        let bad = dir.path().join("damaged.json");
        std::fs::write(&bad, &damaged).expect("write");
        let err = message(load_signed(&bad));
        assert!(
            err.starts_with(&format!("plan file {}: ", bad.display())),
            "{err}"
        );
        assert!(err.contains("damaged or cut short"), "{err}");
        // Its last 4 bytes (the checksum) alone.
        let mut last = whole;
        let end = last.len() - 1;
        last[end] ^= 0x01;
        std::fs::write(&bad, &last).expect("write");
        assert!(message(load_signed(&bad)).contains("damaged or cut short"));
    }

    #[test]
    fn another_version_is_refused_as_such_in_either_encoding() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("plan.json");
        let mut value: serde_json::Value = serde_json::from_str(FIXTURES[0]).expect("json");
        value["format_version"] = 2.into();
        std::fs::write(&path, value.to_string()).expect("write");
        assert!(message(load_signed(&path)).contains("unsupported format_version"));
        value["actions"] = "something else".into();
        std::fs::write(&path, value.to_string()).expect("write");
        assert!(message(load_signed(&path)).contains("unsupported format_version"));
        let zstd = zstd::encode_all(value.to_string().as_bytes(), 3).expect("zstd");
        std::fs::write(&path, zstd).expect("write");
        assert!(message(load_signed(&path)).contains("unsupported format_version"));
        std::fs::write(&path, "{\"format_version\": 1, \"plan_id\": 3}").expect("write");
        let err = message(load_signed(&path));
        assert!(err.contains("not a roster plan: invalid type"), "{err}");
    }
}
