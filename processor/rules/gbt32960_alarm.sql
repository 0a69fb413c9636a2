-- id: gbt32960_alarm
-- severity: warning
-- window: 10s
-- keys: vin, alarm
-- description: A general alarm flag of GB/T 32960.3 is set (2016 type 0x07, 2025 type 0x06; bits 19-27 only in 2025); its level gives the severity, 4 (thermal event, 2025) is critical.
SELECT t.vin,
       b.name AS alarm,
       max(t.alarm_max_level) AS level,
       CASE max(t.alarm_max_level)
            WHEN 4 THEN 'critical' WHEN 3 THEN 'critical' WHEN 2 THEN 'major' WHEN 1 THEN 'warning'
            ELSE 'info'
       END AS severity
FROM telemetry t
JOIN alarm_bits b ON (t.alarm_general_flags & b.mask) <> 0
                 AND coalesce(t.edition, 2016) >= b.edition
GROUP BY t.vin, b.name
