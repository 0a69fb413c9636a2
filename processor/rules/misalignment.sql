-- id: misalignment
-- severity: warning
-- window: 10s
-- keys: vin, station_id, pad_no
-- description: Vehicle charging outside the lateral offset tolerance (±75 mm X, ±100 mm Y).
-- param: tolerance_x_mm = 75
-- param: tolerance_y_mm = 100
SELECT vin, station_id, pad_no,
       round(avg(offset_x_mm)) AS offset_x_mm,
       round(avg(offset_y_mm)) AS offset_y_mm
FROM telemetry
WHERE ground_state = 3
GROUP BY vin, station_id, pad_no
HAVING avg(abs(offset_x_mm)) > ${tolerance_x_mm} OR avg(abs(offset_y_mm)) > ${tolerance_y_mm}
