//! How the CLI prints: aligned tables for people, JSON for scripts, and
//! Kafka errors by name.

use clap::ValueEnum;
use kafka_protocol::ResponseError;
use serde_json::Value;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// One JSON document.
    Json,
}

/// What a command prints: rows under headers (tables) and the same as
/// JSON.
pub struct Output {
    /// Column names.
    pub headers: Vec<&'static str>,
    /// One row per line.
    pub rows: Vec<Vec<String>>,
    /// Lines after the table (a topic's configs).
    pub notes: Vec<String>,
    /// The JSON form.
    pub json: Value,
}

impl Output {
    /// Prints in `format` to standard output.
    pub fn print(&self, format: Format) {
        match format {
            Format::Json => println!("{}", self.json),
            Format::Table => {
                print!("{}", table(&self.headers, &self.rows));
                if !self.notes.is_empty() {
                    println!();
                    for n in &self.notes {
                        println!("{n}");
                    }
                }
            }
        }
    }
}

/// Rows under headers, each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A Kafka error code as its name (`TopicAlreadyExists (36)`).
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "none".to_string(),
        Some(e) => format!("{e} ({code})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let t = table(
            &["NAME", "PARTITIONS"],
            &[
                vec!["orders".into(), "3".into()],
                vec!["a".into(), "12".into()],
            ],
        );
        assert_eq!(t, "NAME    PARTITIONS\norders  3\na       12\n");
        assert_eq!(error_name(36), "TopicAlreadyExists (36)");
    }
}
