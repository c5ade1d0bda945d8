/* Reports page: draws the three charts with Chart.js (served from /static/vendor).
 * The data comes from the JSON block #report-data (the CSP forbids inline scripts).
 * Every chart also has a summary sentence and a table in the page, so nothing is lost
 * when this script or Chart.js does not run. */
(function () {
  "use strict";

  function readData() {
    var block = document.getElementById("report-data");
    if (!block) { return null; }
    try {
      return JSON.parse(block.textContent);
    } catch (error) {
      return null;
    }
  }

  function cssColour(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function barChart(canvasId, series, options) {
    var canvas = document.getElementById(canvasId);
    if (!canvas || !series) { return; }
    var reduceMotion = window.matchMedia &&
      window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    var text = cssColour("--text", "#1b1f24");
    var grid = cssColour("--border", "#cfd5dc");
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: series.labels,
        datasets: [{
          label: options.label,
          data: series.values,
          backgroundColor: cssColour("--accent", "#0b5cad"),
          borderRadius: 3
        }]
      },
      options: {
        indexAxis: options.horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: reduceMotion ? false : { duration: 300 },
        plugins: { legend: { display: false }, tooltip: { enabled: true } },
        scales: {
          x: {
            beginAtZero: true,
            ticks: { color: text, precision: 0 },
            grid: { color: grid }
          },
          y: {
            beginAtZero: true,
            ticks: { color: text, precision: 0 },
            grid: { color: grid }
          }
        }
      }
    });
  }

  function draw() {
    if (typeof window.Chart !== "function") { return; }  // tables and summaries remain
    var data = readData();
    if (!data) { return; }
    barChart("chart-per-day", data.perDay, { label: "Conversations" });
    barChart("chart-reasons", data.reasons, { label: "Conversations", horizontal: true });
    barChart("chart-ratings", data.ratings, { label: "Ratings" });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
}());
