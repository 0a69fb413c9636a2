//! Chart data: a vehicle's or a pad's telemetry from the lake, downsampled on the server.
//!
//! The range is cut into at most `points` equal buckets (the chart's width in pixels) and
//! each bucket gives the average of each series, so a chart never gets more points than it
//! asked for, whatever the report rate. Series: power, efficiency, coil, pad-surface and
//! battery temperatures, offsets x and y, SOC and the cell-voltage spread (max − min cell,
//! where the frames carry extremes). The range reaches the newest file the sink has written.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, TimestampMicrosecondType};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::Engine;

/// The series, as (name in the answer, SQL over the telemetry columns).
pub const SERIES: [(&str, &str); 10] = [
    ("power_kw", "dc_power_w / 1000.0"),
    ("efficiency_pct", "efficiency_pct"),
    ("tx_coil_temp_c", "tx_coil_temp_c"),
    ("rx_coil_temp_c", "rx_coil_temp_c"),
    ("pad_surface_temp_c", "pad_surface_temp_c"),
    ("batt_max_temp_c", "batt_max_temp_c"),
    ("offset_x_mm", "offset_x_mm"),
    ("offset_y_mm", "offset_y_mm"),
    ("soc", "soc"),
    (
        "cell_spread_mv",
        "(max_cell_voltage_v - min_cell_voltage_v) * 1000.0",
    ),
];

/// What a chart asks for.
#[derive(Debug, Clone, Deserialize)]
pub struct SeriesRequest {
    pub vin: Option<String>,
    pub station: Option<String>,
    pub pad: Option<u8>,
    /// The range ends now (or at `to_us`) and goes back this many seconds.
    pub seconds: u64,
    pub to_us: Option<i64>,
    /// The chart's width: the most points returned.
    pub points: usize,
}

/// The answer: bucket starts and one array per series (null where a bucket had no value).
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub from_us: i64,
    pub to_us: i64,
    pub bucket_us: i64,
    pub t_us: Vec<i64>,
    pub series: Map<String, Value>,
}

/// A VIN or station id safe to put in SQL: letters, digits, `-`, `_`, `.`, at most 32.
fn plain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The SQL for a request, checked against the caps; or what is wrong with it.
pub fn statement(
    request: &SeriesRequest,
    now_us: i64,
    max_points: usize,
    max_range_s: u64,
) -> Result<(String, i64, i64, i64), String> {
    if request.points == 0 || request.points > max_points {
        return Err(format!("points must be 1..={max_points}"));
    }
    if request.seconds == 0 || request.seconds > max_range_s {
        return Err(format!("seconds must be 1..={max_range_s}"));
    }
    let target = match (&request.vin, &request.station, request.pad) {
        (Some(vin), None, None) if plain(vin) => format!("vin = '{vin}'"),
        (None, Some(station), Some(pad)) if plain(station) => {
            format!("station_id = '{station}' AND pad_no = {pad}")
        }
        _ => return Err("give vin, or station and pad (letters, digits, - _ .)".into()),
    };
    let to = request.to_us.unwrap_or(now_us);
    let from = to - request.seconds as i64 * 1_000_000;
    // Whole milliseconds, rounded up so that the buckets never outnumber the points.
    let bucket = (request.seconds * 1_000_000).div_ceil(request.points as u64);
    let bucket = (bucket.div_ceil(1000) * 1000) as i64;
    let date = |us: i64| schemas::time::format_utc_micros(us)[..10].to_owned();
    let columns: Vec<String> = SERIES
        .iter()
        .map(|(name, expr)| format!("avg(CAST({expr} AS DOUBLE)) AS {name}"))
        .collect();
    let sql = format!(
        "SELECT date_bin(INTERVAL '{bucket} microseconds', event_time, to_timestamp_micros({from})) AS t, {} \
         FROM telemetry \
         WHERE {target} AND date >= '{}' AND date <= '{}' \
           AND event_time >= to_timestamp_micros({from}) AND event_time < to_timestamp_micros({to}) \
         GROUP BY 1 ORDER BY 1",
        columns.join(", "),
        date(from),
        date(to),
    );
    Ok((sql, from, to, bucket))
}

/// Runs a request through the engine.
pub async fn fetch(
    engine: &Engine,
    request: &SeriesRequest,
    now_us: i64,
    max_points: usize,
    max_range_s: u64,
) -> Result<Series, (u16, String)> {
    let (sql, from_us, to_us, bucket_us) =
        statement(request, now_us, max_points, max_range_s).map_err(|e| (400, e))?;
    let answer = engine
        .run(&sql)
        .await
        .map_err(|e| (e.status(), e.to_string()))?;
    let mut t_us = Vec::new();
    let mut values: Vec<Vec<Value>> = vec![Vec::new(); SERIES.len()];
    for batch in &answer.batches {
        let times = cast(
            batch.column(0),
            &DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None),
        )
        .map_err(|e| (500, e.to_string()))?;
        let times = times.as_primitive::<TimestampMicrosecondType>();
        t_us.extend(times.values().iter().copied());
        for (i, out) in values.iter_mut().enumerate() {
            let column = batch.column(i + 1).as_primitive::<Float64Type>();
            out.extend((0..column.len()).map(|row| {
                match column.is_valid(row) {
                    // Two decimals are more than a chart shows.
                    true => {
                        serde_json::Number::from_f64((column.value(row) * 100.0).round() / 100.0)
                            .map_or(Value::Null, Value::Number)
                    }
                    false => Value::Null,
                }
            }));
        }
    }
    let series = SERIES
        .iter()
        .zip(values)
        .map(|((name, _), v)| ((*name).to_owned(), Value::Array(v)))
        .collect();
    Ok(Series {
        from_us,
        to_us,
        bucket_us,
        t_us,
        series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(points: usize, seconds: u64) -> SeriesRequest {
        SeriesRequest {
            vin: Some("LSIM0000000000001".into()),
            station: None,
            pad: None,
            seconds,
            to_us: None,
            points,
        }
    }

    #[test]
    fn buckets_never_outnumber_the_points() {
        for (points, seconds) in [(1, 1), (7, 3600), (800, 3600), (2000, 86_400), (999, 7)] {
            let (_, from, to, bucket) =
                statement(&request(points, seconds), 1_000_000_000_000, 2000, 86_400).unwrap();
            // Buckets aligned to `from`: the range covers at most `points` of them.
            assert!(
                ((to - from) as u64).div_ceil(bucket as u64) as usize <= points,
                "{points} {seconds}"
            );
        }
    }

    #[test]
    fn requests_outside_the_caps_or_with_odd_names_are_refused() {
        assert!(statement(&request(2001, 60), 0, 2000, 86_400).is_err());
        assert!(statement(&request(10, 86_401), 0, 2000, 86_400).is_err());
        let mut odd = request(10, 60);
        odd.vin = Some("x' OR 1=1 --".into());
        assert!(statement(&odd, 0, 2000, 86_400).is_err());
        let pad = SeriesRequest {
            vin: None,
            station: Some("ST-0001".into()),
            pad: Some(2),
            ..request(10, 60)
        };
        let (sql, ..) = statement(&pad, 0, 2000, 86_400).unwrap();
        assert!(
            sql.contains("station_id = 'ST-0001' AND pad_no = 2"),
            "{sql}"
        );
    }
}
