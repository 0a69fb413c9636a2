-- id: inverter_freq_out_of_band
-- severity: major
-- window: 10s
-- keys: vin, station_id, pad_no
-- description: Inverter switching frequency outside the SAE J2954 band while charging.
-- param: min_khz = 81.38
-- param: max_khz = 90.0
SELECT vin, station_id, pad_no,
       min(inverter_freq_khz) AS min_inverter_freq_khz,
       max(inverter_freq_khz) AS max_inverter_freq_khz
FROM telemetry
WHERE ground_state = 3
  AND (inverter_freq_khz < ${min_khz} OR inverter_freq_khz > ${max_khz})
GROUP BY vin, station_id, pad_no
