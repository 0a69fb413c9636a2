-- id: dc_bus_overvoltage
-- severity: critical
-- window: 10s
-- keys: vin, station_id, pad_no
-- description: PFC DC bus voltage above its limit.
-- param: max_v = 450
SELECT vin, station_id, pad_no,
       max(dc_bus_voltage_v) AS max_dc_bus_voltage_v
FROM telemetry
WHERE dc_bus_voltage_v > ${max_v}
GROUP BY vin, station_id, pad_no
