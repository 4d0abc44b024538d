/* Adoption dashboard charts (Chart.js from our static files). Data comes from the page's JSON script. */
(function () {
  "use strict";
  var el = document.getElementById("report-chart-data");
  if (!el || typeof Chart === "undefined") { return; }
  var data = JSON.parse(el.textContent);
  var palette = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
  function color(i) { return palette[i % palette.length]; }
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
  new Chart(document.getElementById("chart-tools"), {
    type: "line",
    data: { labels: data.periods, datasets: seriesBy(data.tool_series, "tool", "active_users") },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
  });
  new Chart(document.getElementById("chart-teams"), {
    type: "bar",
    data: { labels: data.periods, datasets: seriesBy(data.team_series, "team", "active_users") },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } }
  });
  new Chart(document.getElementById("chart-funnel"), {
    type: "bar",
    data: {
      labels: ["Requested", "Granted", "First use", "Accepted agent result"],
      datasets: [{ label: "count", data: data.funnel.map(function (s) { return s.count; }),
                   backgroundColor: [color(0), color(1), color(2), color(3)] }]
    },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } }
  });
  window.addEventListener("beforeprint", function () {
    Object.values(Chart.instances).forEach(function (c) { c.resize(); });
  });
})();
