/* Adoption dashboard charts (Chart.js from our static files). Data comes from the page's JSON script.
   A partial period (cut by the range, or the current one, still running) is labelled "(partial)" and drawn
   dashed or pale; the funnel plots counts only (its shares are in the table beside it). */
(function () {
  "use strict";
  var el = document.getElementById("report-chart-data");
  if (!el || typeof Chart === "undefined") { return; }
  var data = JSON.parse(el.textContent);
  var partial = data.partial || [];
  var palette = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
  function color(i) { return palette[i % palette.length]; }
  function pale(hex) { return hex + "55"; }
  var labels = data.periods.map(function (p, i) { return partial[i] ? p + " (partial)" : p; });
  function seriesBy(rows, field, value) {
    var names = [], byName = {};
    rows.forEach(function (r) {
      if (!(r[field] in byName)) { byName[r[field]] = {}; names.push(r[field]); }
      byName[r[field]][r.period_start] = r[value];
    });
    return names.sort().map(function (name, i) {
      return { label: name || "(none)", data: data.periods.map(function (p) { return byName[name][p] || 0; }),
               borderColor: color(i), backgroundColor: color(i), tension: 0.2 };
    });
  }
  Chart.defaults.animation = false; // prints and screenshots show the final chart
  Chart.defaults.maintainAspectRatio = false;

  var toolSets = seriesBy(data.tool_series, "tool", "active_users").map(function (set) {
    set.segment = { borderDash: function (ctx) { return partial[ctx.p1DataIndex] || partial[ctx.p0DataIndex] ? [6, 4] : undefined; } };
    set.pointStyle = data.periods.map(function (_, i) { return partial[i] ? "rectRot" : "circle"; });
    return set;
  });
  new Chart(document.getElementById("chart-tools"), {
    type: "line",
    data: { labels: labels, datasets: toolSets },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "active users" } } } }
  });

  var teamSets = seriesBy(data.team_series, "team", "active_users").map(function (set) {
    var base = set.backgroundColor;
    set.backgroundColor = data.periods.map(function (_, i) { return partial[i] ? pale(base) : base; });
    set.borderColor = base;
    set.borderWidth = data.periods.map(function (_, i) { return partial[i] ? 1 : 0; });
    return set;
  });
  new Chart(document.getElementById("chart-teams"), {
    type: "bar",
    data: { labels: labels, datasets: teamSets },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "active users" } } } }
  });

  new Chart(document.getElementById("chart-funnel"), {
    type: "bar",
    data: {
      labels: data.funnel.map(function (s) { return s.label; }),
      datasets: [{ label: "count", data: data.funnel.map(function (s) { return s.count; }),
                   backgroundColor: data.funnel.map(function (_, i) { return color(i); }) }]
    },
    options: {
      indexAxis: "y",
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: function (ctx) { var s = data.funnel[ctx.dataIndex]; return s.count + " " + s.unit; } } }
      },
      scales: { x: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "count" } } }
    }
  });
  window.addEventListener("beforeprint", function () {
    Object.values(Chart.instances).forEach(function (c) { c.resize(); });
  });
})();
