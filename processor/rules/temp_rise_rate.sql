-- id: temp_rise_rate
-- severity: major
-- window: 60s slide 10s
-- keys: vin, station_id, pad_no
-- description: A coil heats faster than max_c_per_min while charging (least-squares slope over the window).
-- param: max_c_per_min = 20
-- param: min_span_s = 30
WITH readings AS (
    -- x: seconds into the window, so the sums below stay well inside f64 precision.
    SELECT vin, station_id, pad_no,
           date_part('epoch', event_time) - date_part('epoch', $window_start) AS x,
           CAST(tx_coil_temp_c AS DOUBLE) AS tx,
           CAST(rx_coil_temp_c AS DOUBLE) AS rx
    FROM telemetry
    WHERE ground_state = 3 AND tx_coil_temp_c IS NOT NULL AND rx_coil_temp_c IS NOT NULL
), sums AS (
    SELECT vin, station_id, pad_no,
           CAST(count(*) AS DOUBLE) AS n, sum(x) AS sx, sum(x * x) AS sxx,
           sum(tx) AS st, sum(x * tx) AS sxt, sum(rx) AS sr, sum(x * rx) AS sxr,
           max(x) - min(x) AS span_s
    FROM readings
    GROUP BY vin, station_id, pad_no
), slopes AS (
    SELECT vin, station_id, pad_no, span_s,
           (n * sxt - sx * st) / (n * sxx - sx * sx) * 60.0 AS tx_c_per_min,
           (n * sxr - sx * sr) / (n * sxx - sx * sx) * 60.0 AS rx_c_per_min
    FROM sums
    WHERE n >= 2 AND n * sxx - sx * sx > 0
)
SELECT vin, station_id, pad_no,
       round(greatest(tx_c_per_min, rx_c_per_min), 1) AS rise_c_per_min,
       CASE WHEN tx_c_per_min >= rx_c_per_min THEN 'tx_coil' ELSE 'rx_coil' END AS coil
FROM slopes
WHERE span_s >= ${min_span_s}
  AND greatest(tx_c_per_min, rx_c_per_min) > ${max_c_per_min}
