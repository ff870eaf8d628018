//! A CSV export as a source of users: one user per row, the header row naming the attributes.
//!
//! Many directories and HR systems can export CSV where no LDAP or API access is granted, so
//! a file is often the only way in. The parsing (quoted fields with delimiters, quotes and
//! line ends inside, a UTF-8 BOM at the start) is the `csv` crate's; this module gives the
//! columns their meaning.
//!
//! How a row becomes a `SourceRecord`:
//! - Column names are attribute names, case-insensitive as in LDAP. A name that appears in
//!   more than one column makes a multi-valued attribute (two `telephoneNumber` columns give
//!   two phones), in column order. Columns without a name are skipped, with a warning.
//! - Every cell is a value, an empty cell too: it is pushed as `""`. CSV cannot tell "no
//!   value" from "empty value", and the mapping needs blank to mean "clear" for aliases; for
//!   every other field it already treats a blank value like a missing one.
//! - The origin is `path:line`, the line where the row starts (a quoted field can span
//!   several lines).
//!
//! The file is streamed, never read whole. Anything that makes a row unreadable (not UTF-8, a
//! row with more or fewer cells than the header, an I/O error) fails the read with the file
//! and the line: a partly read export must not be planned from. So does a file that looks
//! cut (issue 11.5): a last row without a line end (the exporters roster knows end every
//! row, RFC 4180 only allows leaving it out; a write or copy that stopped part-way leaves a
//! half row that still parses), and a NUL byte anywhere, which no text export holds. A file
//! cut exactly at a line end cannot be told from a whole one; the source shrink guard is
//! what stands against losing rows that way.

use std::fs::File;
use std::io::{self, Read};

use ::csv::{ErrorKind, ReaderBuilder, StringRecord};

use crate::config::CsvSource;
use crate::model::SourceRecord;

use super::{Source, SourceError};

/// A CSV file whose first row names the columns.
pub struct CsvFile {
    config: CsvSource,
}

impl CsvFile {
    /// Keeps the settings; the file is not opened until `read_users`.
    pub fn new(config: CsvSource) -> Self {
        CsvFile { config }
    }

    fn path(&self) -> String {
        self.config.path.value.display().to_string()
    }

    fn error(&self, line: Option<u64>, message: impl Into<String>) -> SourceError {
        SourceError::File {
            path: self.path(),
            line,
            message: message.into(),
        }
    }

    /// Says what is wrong with a row in terms of the file, not of the parser; a NUL byte
    /// the reader stopped at is named by its own line.
    fn row_error(&self, err: &::csv::Error, guard: &CutGuard<File>) -> SourceError {
        if let Some(line) = guard.nul_line {
            return self.error(
                Some(line),
                "a NUL byte: a CSV export never holds one; the file is damaged or not text",
            );
        }
        let line = err.position().map(|p| p.line());
        let message = match err.kind() {
            ErrorKind::Utf8 { err, .. } => format!(
                "not valid UTF-8 (field {}); save the file as UTF-8",
                err.field() + 1
            ),
            ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!(
                "{len} fields where the header row has {expected_len}; a field that holds the \
                 delimiter, a quote or a line end must be in double quotes"
            ),
            ErrorKind::Io(e) => format!("read failed: {e}"),
            _ => err.to_string(),
        };
        self.error(line, message)
    }

    /// The attribute name of each column: `None` for columns that are skipped (no name, or
    /// not among `attrs` when the mapping named which ones it needs).
    fn columns(&self, header: &StringRecord, attrs: &[String]) -> Vec<Option<String>> {
        header
            .iter()
            .enumerate()
            .map(|(index, name)| {
                // csv strips a BOM that starts the file; this catches one after a blank line.
                let name = name.trim_start_matches('\u{feff}').trim();
                if name.is_empty() {
                    log::warn!(
                        "{}: column {} has no name in the header row; its values are not read",
                        self.path(),
                        index + 1
                    );
                    return None;
                }
                let name = name.to_ascii_lowercase();
                (attrs.is_empty() || attrs.contains(&name)).then_some(name)
            })
            .collect()
    }
}

impl Source for CsvFile {
    fn describe(&self) -> String {
        self.path()
    }

    fn read_users(
        &mut self,
        attrs: &[String],
        sink: &mut dyn FnMut(SourceRecord),
    ) -> Result<u64, SourceError> {
        let file = File::open(&self.config.path.value)
            .map_err(|e| self.error(None, format!("cannot open: {e}")))?;
        let mut reader = ReaderBuilder::new()
            .delimiter(self.config.delimiter)
            .has_headers(true)
            .from_reader(CutGuard::new(file));
        let header = match reader.headers() {
            Ok(header) => header.clone(),
            Err(e) => return Err(self.row_error(&e, reader.get_ref())),
        };
        if header.iter().all(|name| name.trim().is_empty()) {
            return Err(self.error(
                Some(1),
                "no header row: the first line must name the columns (e.g. uid,cn,mail)",
            ));
        }
        let columns = self.columns(&header, attrs);
        let path = self.path();
        let mut read = 0;
        let mut row = StringRecord::new();
        loop {
            match reader.read_record(&mut row) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(self.row_error(&e, reader.get_ref())),
            }
            let line = row.position().map_or(0, |p| p.line());
            let mut record = SourceRecord::new(format!("{path}:{line}"));
            for (name, value) in columns.iter().zip(row.iter()) {
                if let Some(name) = name {
                    record.push(name, value);
                }
            }
            sink(record);
            read += 1;
        }
        let guard = reader.get_ref();
        if !guard.ends_with_line_end() {
            return Err(self.error(
                // The line the file ends in, where the cut row is.
                Some(guard.line_ends + 1),
                "the last row has no line end, so the file may have been cut short while it was \
                 written or copied; if it is complete, end it with a newline",
            ));
        }
        log::debug!("read {read} rows from {path}");
        Ok(read)
    }
}

/// The file as the CSV reader sees it, watched for the signs of a cut file: it stops at a
/// NUL byte (an I/O error for the reader; `nul_line` says where) and remembers the last
/// byte, for the line-end check at the end.
struct CutGuard<R> {
    inner: R,
    /// Line ends seen so far, for the line of a NUL byte.
    line_ends: u64,
    last: Option<u8>,
    nul_line: Option<u64>,
}

impl<R> CutGuard<R> {
    fn new(inner: R) -> Self {
        CutGuard {
            inner,
            line_ends: 0,
            last: None,
            nul_line: None,
        }
    }

    /// Whether the file read so far ends with a line end (`\n`, or a lone `\r`, which the
    /// CSV reader takes as one too). An empty file has no row to be cut.
    fn ends_with_line_end(&self) -> bool {
        matches!(self.last, None | Some(b'\n' | b'\r'))
    }
}

impl<R: Read> Read for CutGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let bytes = &buf[..n];
        if let Some(at) = bytes.iter().position(|b| *b == 0) {
            let before = bytes[..at].iter().filter(|b| **b == b'\n').count() as u64;
            self.nul_line = Some(self.line_ends + before + 1);
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a NUL byte"));
        }
        self.line_ends += bytes.iter().filter(|b| **b == b'\n').count() as u64;
        if let Some(last) = bytes.last() {
            self.last = Some(*last);
        }
        Ok(n)
    }
}
