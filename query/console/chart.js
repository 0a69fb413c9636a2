// Time-series charts with uPlot: one chart per group of series, points as the server
// downsampled them (at most one per pixel of the chart's width).

import uPlot from "/assets/vendor/uplot-1.6.32/uPlot.esm.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

/// The charts of a vehicle or pad, and the series each shows.
export const CHARTS = [
  { title: "Power (kW) and efficiency (%)", series: [["power_kw", "power kW"], ["efficiency_pct", "efficiency %"]] },
  {
    title: "Temperatures (°C)",
    series: [["tx_coil_temp_c", "TX coil"], ["rx_coil_temp_c", "RX coil"], ["pad_surface_temp_c", "pad surface"], ["batt_max_temp_c", "battery max"]],
  },
  { title: "Alignment offsets (mm)", series: [["offset_x_mm", "x"], ["offset_y_mm", "y"]] },
  { title: "State of charge (%)", series: [["soc", "SOC"]] },
  { title: "Cell-voltage spread (mV)", series: [["cell_spread_mv", "max − min cell"]] },
];

/// Draws (or redraws) one chart into `box` from a series answer; returns the uPlot instance.
/// `box.dataset.points` says how many values it plotted (the browser tests read it).
export function draw(box, previous, spec, answer) {
  const times = answer.t_us.map((us) => us / 1e6);
  const data = [times, ...spec.series.map(([name]) => answer.series[name] || [])];
  const points = data.slice(1).reduce((n, values) => n + values.filter((v) => v !== null).length, 0);
  box.dataset.points = String(points);
  const width = Math.max(300, box.clientWidth || 600);
  if (previous) {
    previous.setData(data);
    previous.setSize({ width, height: 220 });
    return previous;
  }
  const options = {
    title: spec.title,
    width,
    height: 220,
    series: [
      {},
      ...spec.series.map(([, label], i) => ({ label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false })),
    ],
    axes: [{}, { size: 50 }],
  };
  return new uPlot(options, data, box);
}
