-- id: grid_voltage_out_of_range
-- severity: major
-- window: 10s
-- keys: vin, station_id, pad_no
-- description: Grid AC voltage outside nominal ±10 %.
-- param: min_v = 207
-- param: max_v = 253
SELECT vin, station_id, pad_no,
       min(ac_voltage_v) AS min_ac_voltage_v,
       max(ac_voltage_v) AS max_ac_voltage_v,
       CASE WHEN max(ac_voltage_v) > ${max_v} THEN 'over' ELSE 'under' END AS direction
FROM telemetry
WHERE ac_voltage_v < ${min_v} OR ac_voltage_v > ${max_v}
GROUP BY vin, station_id, pad_no
