-- id: temp_rise_rate
-- severity: major
-- window: 60s slide 10s
-- keys: vin, station_id, pad_no
-- description: A coil heats faster than max_c_per_min while charging (first to last reading of the window).
-- param: max_c_per_min = 20
-- param: min_span_s = 30
WITH rise AS (
    SELECT vin, station_id, pad_no,
           last_value(tx_coil_temp_c ORDER BY event_time)
             - first_value(tx_coil_temp_c ORDER BY event_time) AS tx_rise_c,
           last_value(rx_coil_temp_c ORDER BY event_time)
             - first_value(rx_coil_temp_c ORDER BY event_time) AS rx_rise_c,
           date_part('epoch', max(event_time)) - date_part('epoch', min(event_time)) AS span_s
    FROM telemetry
    WHERE ground_state = 3
    GROUP BY vin, station_id, pad_no
)
SELECT vin, station_id, pad_no,
       round(greatest(tx_rise_c, rx_rise_c) * 60.0 / span_s, 1) AS rise_c_per_min,
       CASE WHEN tx_rise_c >= rx_rise_c THEN 'tx_coil' ELSE 'rx_coil' END AS coil
FROM rise
WHERE span_s >= ${min_span_s}
  AND greatest(tx_rise_c, rx_rise_c) * 60.0 / span_s > ${max_c_per_min}
