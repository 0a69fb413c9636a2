-- id: battery_overtemp
-- severity: critical
-- window: 10s
-- keys: vin
-- description: Traction battery hotter than its limit (vehicle board or GB/T extremes; warning above warn_c).
-- param: warn_c = 45
-- param: max_c = 55
SELECT vin,
       max(greatest(batt_max_temp_c, max_temp_c)) AS max_battery_temp_c,
       CASE WHEN max(greatest(batt_max_temp_c, max_temp_c)) > ${max_c}
            THEN 'critical' ELSE 'warning' END AS severity
FROM telemetry
WHERE greatest(batt_max_temp_c, max_temp_c) > ${warn_c}
GROUP BY vin
