-- id: tx_coil_overheat
-- severity: critical
-- window: 10s
-- keys: vin, station_id, pad_no
-- description: Transmitter coil temperature above its limit (warning above warn_c).
-- param: warn_c = 75
-- param: max_c = 90
SELECT vin, station_id, pad_no,
       max(tx_coil_temp_c) AS max_tx_coil_temp_c,
       CASE WHEN max(tx_coil_temp_c) > ${max_c} THEN 'critical' ELSE 'warning' END AS severity
FROM telemetry
WHERE tx_coil_temp_c > ${warn_c}
GROUP BY vin, station_id, pad_no
