//! The columns a row can carry, generated at build time from `grammars/row-columns.tsv`:
//! the [`columns`] name constants every format writes, and the column lists (in row order)
//! that `cefgate dcr-template` declares. One source, so a stream can never miss a column a
//! row carries.

/// The type of a Sentinel column, which decides how a value is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    /// 32-bit integer.
    Int,
    /// 64-bit integer.
    Long,
    Real,
    DateTime,
}

impl ColumnType {
    /// The name used in `grammars/*.tsv` and in DCR stream declarations.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int => "int",
            ColumnType::Long => "long",
            ColumnType::Real => "real",
            ColumnType::DateTime => "datetime",
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/row_columns.rs"));
