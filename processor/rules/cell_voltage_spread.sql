-- id: cell_voltage_spread
-- severity: major
-- window: 10s
-- keys: vin, pack_no
-- description: The cells of one pack drift apart: in one report the spread between the pack's highest and lowest cell voltage exceeds max_spread_mv (a weak or failing cell, poor consistency). Reads every cell of the `cells` list (2025 type 0x07, 2016 type 0x08).
-- param: max_spread_mv = 100
WITH each_cell AS (
    SELECT vin, event_time, unnest(cells) AS cell
    FROM telemetry
    WHERE cells IS NOT NULL
), per_report AS (
    SELECT vin, event_time, cell['pack_no'] AS pack_no,
           (max(cell['voltage_v']) - min(cell['voltage_v'])) * 1000 AS spread_mv,
           count(cell['voltage_v']) AS cell_count
    FROM each_cell
    GROUP BY vin, event_time, cell['pack_no']
)
SELECT vin, pack_no,
       round(max(spread_mv), 0) AS max_spread_mv,
       max(cell_count) AS cells
FROM per_report
WHERE spread_mv > ${max_spread_mv}
GROUP BY vin, pack_no
