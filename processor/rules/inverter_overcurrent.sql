-- id: inverter_overcurrent
-- severity: critical
-- window: 10s
-- keys: vin, station_id, pad_no
-- description: Inverter output current above its rating.
-- param: max_a = 45
SELECT vin, station_id, pad_no,
       max(inverter_current_a) AS max_inverter_current_a
FROM telemetry
WHERE inverter_current_a > ${max_a}
GROUP BY vin, station_id, pad_no
