-- id: soc_stall
-- severity: warning
-- window: 60s
-- keys: vin, station_id, pad_no
-- description: Charging with power flowing but the SOC has not moved for stall_min minutes.
-- param: stall_min = 15
-- param: min_power_w = 500
SELECT vin, station_id, pad_no, session_id,
       soc,
       greatest(soc_changed_at, charging_since) AS soc_unchanged_since
FROM sessions
WHERE ground_state = 3
  AND dc_power_w > ${min_power_w}
  AND logged_out_at IS NULL
  AND last_seen >= $window_end - INTERVAL '60 seconds'
  AND greatest(soc_changed_at, charging_since) < $window_end - INTERVAL '${stall_min} minutes'
