//! How the lake's Parquet files are encoded, the same for the sink's rolls and compaction.

use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;

use crate::error::Result;
use crate::table::Table;

/// How a table's files are encoded: zstd on every column, page statistics (and the page
/// index), and dictionary encoding where it pays: on text, integer and boolean columns (VINs,
/// stations, states, codes, flags repeat), not on measurements (`Float64`), timestamps or the
/// unique `frame_id`, whose dictionaries would only be built to be thrown away. (A dictionary
/// that outgrows its page limit falls back to plain pages anyway.)
pub fn writer_properties(
    table: Table,
    zstd_level: i32,
    row_group_rows: usize,
) -> Result<WriterProperties> {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(true)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_created_by(format!("chargewatch {}", env!("CARGO_PKG_VERSION")));
    for field in table.schema().fields() {
        let pays = matches!(field.data_type(), DataType::Utf8 | DataType::Float64)
            && field.name() != "frame_id";
        if !pays {
            builder = builder
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    Ok(builder.build())
}
