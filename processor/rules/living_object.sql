-- id: living_object
-- severity: critical
-- window: 10s
-- keys: vin, station_id, pad_no
-- description: Living object near the pad (LOP node or diagnostics code 2).
SELECT vin, station_id, pad_no,
       max(lop) AS lop,
       max(ground_diag) AS ground_diag
FROM telemetry
WHERE lop = 1 OR ground_diag = 2 OR vehicle_diag = 2
GROUP BY vin, station_id, pad_no
