// charts.js — the dashboard's time-series charts (Stats, Usage), drawn with the vendored
// uPlot (static/vendor/uPlot.iife.min.js, see VENDORED.md).
//
// Markup: <div class="chart" data-chart="ID" data-title="…"></div> and, beside it,
// <script type="application/json" id="ID">{"x": ["YYYY-MM-DD", …], "series":
// [{"label": …, "values": [numbers]}], "bytes": true|false}</script> (a data block: it is
// never executed, and the server writes it with Jinja's tojson, which escapes < > &).
// Each drawn chart gets data-rendered="1".
"use strict";
(function () {
  var palette = ["#0b5cad", "#b42318", "#2e7d32", "#8e44ad", "#c77700"];
  var DAY = 86400;

  function bytes(value) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (Math.abs(value) >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
    return (i ? value.toFixed(1) : String(Math.round(value))) + " " + units[i];
  }

  function draw(box) {
    var block = document.getElementById(box.dataset.chart);
    if (!block || typeof uPlot === "undefined") { return; }
    var spec = JSON.parse(block.textContent);
    if (!spec.x || spec.x.length === 0) {
      box.textContent = "Nothing to chart yet.";
      box.classList.add("empty");
      return;
    }
    var xs = spec.x.map(function (day) { return Date.parse(day + "T00:00:00Z") / 1000; });
    var data = [xs];
    var series = [{}];
    spec.series.forEach(function (one, i) {
      data.push(one.values);
      series.push({
        label: one.label,
        stroke: palette[i % palette.length],
        width: 2,
        points: { show: true, size: 6 },
        value: spec.bytes ? function (u, v) { return v == null ? "" : bytes(v); } : undefined,
      });
    });
    var axes = [{}, spec.bytes ? { values: function (u, vals) { return vals.map(bytes); }, size: 70 } : { size: 60 }];
    var options = {
      title: box.dataset.title || "",
      width: Math.max(320, box.clientWidth || 800),
      height: 260,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }, // UTC days
      scales: {
        // The days charted and one either side (uPlot's own padding of a single point
        // spans years).
        x: { time: true, range: function () { return [xs[0] - DAY, xs[xs.length - 1] + DAY]; } },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } },
      },
      series: series,
      axes: axes,
    };
    new uPlot(options, data, box);
    box.dataset.rendered = "1";
  }

  document.querySelectorAll(".chart[data-chart]").forEach(draw);
})();
