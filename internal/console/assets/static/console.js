// keygate console: draws charts from data-chart attributes, copies a
// secret shown once, and asks before destructive actions. Nothing is kept
// in browser storage and nothing is fetched.
(function () {
  "use strict";

  function money(v) { return v == null ? "" : "$" + v.toFixed(2); }

  function draw(el) {
    var data;
    try { data = JSON.parse(el.getAttribute("data-chart")); } catch (e) { return; }
    if (!data || !data.x || !data.x.length || typeof uPlot === "undefined") return;
    var colors = ["#0b57d0", "#b3261e", "#146c2e", "#8a5a00"];
    var series = [{}];
    var columns = [data.x];
    var isMoney = false;
    data.series.forEach(function (s, i) {
      isMoney = isMoney || s.money;
      series.push({ label: s.label, stroke: colors[i % colors.length], width: 2,
        value: s.money ? function (u, v) { return money(v); } : undefined });
      columns.push(s.values);
    });
    var width = Math.max(260, el.clientWidth || 320);
    var opts = { width: width, height: 200, series: series,
      axes: [{}, { values: isMoney ? function (u, vals) { return vals.map(money); } : undefined }] };
    el.textContent = "";
    var chart = new uPlot(opts, columns, el);
    var resize = function () { chart.setSize({ width: Math.max(260, el.clientWidth), height: 200 }); };
    window.addEventListener("resize", resize);
  }

  function copy(btn) {
    var target = document.getElementById(btn.getAttribute("data-copy"));
    var note = document.getElementById("copied");
    if (!target) return;
    navigator.clipboard.writeText(target.textContent.trim()).then(function () {
      if (note) note.textContent = "Copied to the clipboard.";
    }, function () {
      var range = document.createRange();
      range.selectNodeContents(target);
      var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
      if (note) note.textContent = "Selected: copy it with your keyboard.";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(draw);
    document.querySelectorAll("[data-copy]").forEach(function (b) {
      b.addEventListener("click", function () { copy(b); });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (ev) {
        if (!window.confirm(f.getAttribute("data-confirm"))) ev.preventDefault();
      });
    });
  });
})();
