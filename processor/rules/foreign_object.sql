-- id: foreign_object
-- severity: critical
-- window: 10s
-- keys: vin, station_id, pad_no
-- description: Metal object detected between the pads (FOD node or diagnostics code 1).
SELECT vin, station_id, pad_no,
       max(fod) AS fod, max(ground_diag) AS ground_diag
FROM telemetry
WHERE fod = 1 OR ground_diag = 1 OR vehicle_diag = 1
GROUP BY vin, station_id, pad_no
