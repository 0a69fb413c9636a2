-- id: comm_loss
-- severity: major
-- window: 10s
-- keys: vin, station_id, pad_no
-- description: A charging session has sent nothing for silence_s seconds (and has not logged out).
-- param: silence_s = 30
SELECT vin, station_id, pad_no, session_id,
       last_seen
FROM sessions
WHERE ground_state = 3
  AND logged_out_at IS NULL
  AND last_seen < $window_end - INTERVAL '${silence_s} seconds'
