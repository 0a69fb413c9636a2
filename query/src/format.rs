//! Answers as text or bytes: a table for people, CSV, JSON lines, or an Arrow IPC stream.

use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::engine::Answer;
use crate::error::Result;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
    Arrow,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "table" => Some(Format::Table),
            "csv" => Some(Format::Csv),
            "json" | "jsonl" | "ndjson" => Some(Format::Json),
            "arrow" => Some(Format::Arrow),
            _ => None,
        }
    }

    /// The format an HTTP `Accept` header asks for (JSON lines when it names none we know).
    pub fn from_accept(accept: &str) -> Format {
        let accept = accept.to_ascii_lowercase();
        if accept.contains("application/vnd.apache.arrow.stream") {
            Format::Arrow
        } else if accept.contains("text/csv") {
            Format::Csv
        } else if accept.contains("text/plain") {
            Format::Table
        } else {
            Format::Json
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Table => "text/plain; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/x-ndjson",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
    }

    /// Encodes a whole answer.
    pub fn encode(self, answer: &Answer) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Format::Table => {
                let text = pretty_format_batches(&answer.batches)?.to_string();
                out.extend_from_slice(text.as_bytes());
                out.push(b'\n');
            }
            Format::Csv => {
                let mut writer = WriterBuilder::new().with_header(true).build(&mut out);
                if answer.batches.is_empty() {
                    // A header even when there are no rows.
                    let empty =
                        datafusion::arrow::array::RecordBatch::new_empty(answer.schema.clone());
                    writer.write(&empty)?;
                }
                for batch in &answer.batches {
                    writer.write(batch)?;
                }
            }
            Format::Json => {
                let mut writer = LineDelimitedWriter::new(&mut out);
                for batch in &answer.batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
            }
            Format::Arrow => {
                let mut writer = StreamWriter::try_new(&mut out, &answer.schema)?;
                for batch in &answer.batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
            }
        }
        Ok(out)
    }
}
