//! CSV for the file target: a header row, then one row per account, every field quoted
//! where CSV needs it (RFC 4180, `\n` line ends). Values are written exactly: this is data
//! for an importing system, which would store a formula-escaping `'` as part of the value.

use super::Table;

pub(super) fn write(table: &Table) -> Result<Vec<u8>, String> {
    let mut out = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    out.write_record(&table.header)
        .map_err(|e| format!("cannot write CSV: {e}"))?;
    for row in &table.rows {
        out.write_record(row)
            .map_err(|e| format!("cannot write CSV: {e}"))?;
    }
    out.into_inner()
        .map_err(|e| format!("cannot write CSV: {}", e.error()))
}
