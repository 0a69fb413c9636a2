-- id: diagnosis
-- severity: major
-- window: 30s
-- keys: vin, station_id, pad_no, diagnosis
-- description: Combined signals: low efficiency + misalignment → realign vehicle; low efficiency while aligned with the coil heating → suspected foreign object.
-- param: tolerance_x_mm = 75
-- param: tolerance_y_mm = 100
-- param: misaligned_min_pct = 80
-- param: aligned_min_pct = 85
-- param: rise_c_per_min = 6
-- param: min_power_w = 500
WITH readings AS (
    SELECT vin, station_id, pad_no, efficiency_pct, offset_x_mm, offset_y_mm,
           date_part('epoch', event_time) - date_part('epoch', $window_start) AS x,
           CAST(tx_coil_temp_c AS DOUBLE) AS tx
    FROM telemetry
    WHERE ground_state = 3 AND dc_power_w > ${min_power_w} AND tx_coil_temp_c IS NOT NULL
), w AS (
    SELECT vin, station_id, pad_no,
           avg(efficiency_pct) AS efficiency_pct,
           avg(abs(offset_x_mm)) AS abs_offset_x_mm,
           avg(abs(offset_y_mm)) AS abs_offset_y_mm,
           -- least-squares slope of the coil temperature, °C per minute
           CASE WHEN count(*) * sum(x * x) - sum(x) * sum(x) > 0
                THEN (count(*) * sum(x * tx) - sum(x) * sum(tx))
                     / (count(*) * sum(x * x) - sum(x) * sum(x)) * 60.0
           END AS tx_c_per_min
    FROM readings
    GROUP BY vin, station_id, pad_no
)
SELECT vin, station_id, pad_no,
       CASE WHEN abs_offset_x_mm > ${tolerance_x_mm} OR abs_offset_y_mm > ${tolerance_y_mm}
            THEN 'realign vehicle' ELSE 'suspected foreign object' END AS diagnosis,
       round(efficiency_pct, 1) AS efficiency_pct,
       round(abs_offset_x_mm) AS abs_offset_x_mm,
       round(abs_offset_y_mm) AS abs_offset_y_mm
FROM w
WHERE (efficiency_pct < ${misaligned_min_pct}
       AND (abs_offset_x_mm > ${tolerance_x_mm} OR abs_offset_y_mm > ${tolerance_y_mm}))
   OR (efficiency_pct < ${aligned_min_pct}
       AND abs_offset_x_mm <= ${tolerance_x_mm} AND abs_offset_y_mm <= ${tolerance_y_mm}
       AND tx_c_per_min >= ${rise_c_per_min})
