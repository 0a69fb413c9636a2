-- id: pad_surface_overheat
-- severity: critical
-- window: 10s
-- keys: vin, station_id, pad_no
-- description: Ground pad surface too hot to touch (warning above warn_c, critical above max_c).
-- param: warn_c = 50
-- param: max_c = 60
SELECT vin, station_id, pad_no,
       max(pad_surface_temp_c) AS max_pad_surface_temp_c,
       CASE WHEN max(pad_surface_temp_c) > ${max_c} THEN 'critical' ELSE 'warning' END AS severity
FROM telemetry
WHERE pad_surface_temp_c > ${warn_c}
GROUP BY vin, station_id, pad_no
