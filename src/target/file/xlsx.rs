//! XLSX for the file target (and the Luma upload), with `rust_xlsxwriter`: one worksheet, the header row in bold,
//! then one row per account. Every cell is a string cell, never a formula, so a value
//! starting with `=` is shown and imported as the text it is.

use rust_xlsxwriter::{Format, Workbook};

use super::Table;

/// The worksheet's name.
pub(super) const SHEET: &str = "roster";

/// The workbook of `table`, in one worksheet named `sheet`.
pub(crate) fn write(table: &Table, sheet: &str) -> Result<Vec<u8>, String> {
    let mut workbook = Workbook::new();
    let sheet = workbook
        .add_worksheet()
        .set_name(sheet)
        .map_err(|e| format!("cannot write XLSX: {e}"))?;
    let bold = Format::new().set_bold();
    let rows = std::iter::once(&table.header).chain(table.rows.iter());
    for (r, row) in rows.enumerate() {
        let r = u32::try_from(r).map_err(|_| "too many rows for one worksheet".to_string())?;
        for (c, cell) in row.iter().enumerate() {
            let c =
                u16::try_from(c).map_err(|_| "too many columns for one worksheet".to_string())?;
            let written = if r == 0 {
                sheet.write_string_with_format(r, c, cell, &bold)
            } else {
                sheet.write_string(r, c, cell)
            };
            written.map_err(|e| format!("cannot write XLSX row {}: {e}", r + 1))?;
        }
    }
    workbook
        .save_to_buffer()
        .map_err(|e| format!("cannot write XLSX: {e}"))
}
