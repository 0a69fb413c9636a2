-- id: efficiency_low
-- severity: major
-- window: 10s
-- keys: vin, station_id, pad_no
-- description: Transfer efficiency below SAE J2954 (85 % aligned, 80 % anywhere in the offset tolerance).
-- param: aligned_mm = 25
-- param: tolerance_x_mm = 75
-- param: tolerance_y_mm = 100
-- param: aligned_min_pct = 85
-- param: tolerance_min_pct = 80
-- param: min_power_w = 500
SELECT vin, station_id, pad_no,
       round(avg(efficiency_pct), 1) AS efficiency_pct,
       avg(CASE WHEN abs(offset_x_mm) <= ${aligned_mm} AND abs(offset_y_mm) <= ${aligned_mm}
                THEN ${aligned_min_pct} ELSE ${tolerance_min_pct} END) AS required_pct
FROM telemetry
WHERE ground_state = 3
  AND dc_power_w > ${min_power_w}
  AND abs(offset_x_mm) <= ${tolerance_x_mm}
  AND abs(offset_y_mm) <= ${tolerance_y_mm}
GROUP BY vin, station_id, pad_no
HAVING avg(efficiency_pct) < avg(CASE WHEN abs(offset_x_mm) <= ${aligned_mm}
                                      AND abs(offset_y_mm) <= ${aligned_mm}
                                 THEN ${aligned_min_pct} ELSE ${tolerance_min_pct} END)
