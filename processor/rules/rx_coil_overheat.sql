-- id: rx_coil_overheat
-- severity: critical
-- window: 10s
-- keys: vin, station_id, pad_no
-- description: Vehicle receiver coil temperature above its limit (warning above warn_c).
-- param: warn_c = 70
-- param: max_c = 85
SELECT vin, station_id, pad_no,
       max(rx_coil_temp_c) AS max_rx_coil_temp_c,
       CASE WHEN max(rx_coil_temp_c) > ${max_c} THEN 'critical' ELSE 'warning' END AS severity
FROM telemetry
WHERE rx_coil_temp_c > ${warn_c}
GROUP BY vin, station_id, pad_no
