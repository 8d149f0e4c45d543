// keygate console: draws charts from data-chart attributes, copies a
// secret shown once, asks before destructive actions, and on the
// invitation page moves the token from the link's fragment into the form.
// Nothing is kept in browser storage; the one thing fetched is what an
// invitation is for, from the admin API of this same origin.
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

  // invitation takes the token out of the address (#kg_invite_...), which
  // no server ever saw, puts it in the acceptance forms, and says what
  // the invitation is for.
  function invitation() {
    var fields = document.querySelectorAll("[data-invite-token]");
    if (!fields.length) return;
    var about = document.getElementById("invite-about");
    var fill = function (v) { fields.forEach(function (f) { f.value = v; }); };
    var describe = function (token) {
      if (!about || !token) return;
      fetch("/api/v1/auth/invitations/lookup", { method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify({ token: token }) })
        .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
        .then(function (res) {
          if (!res.ok) { about.textContent = (res.body.error && res.body.error.message) || "This invitation cannot be used."; return; }
          var i = res.body;
          about.textContent = (i.invited_by || "An admin") + " invited " + i.email + " to team " + i.team + " as " + i.role +
            ". The invitation works until " + new Date(i.expires_at).toUTCString() + ".";
        }, function () {});
    };
    var h = window.location.hash;
    if (h.indexOf("#kg_invite_") === 0) {
      fill(decodeURIComponent(h.slice(1)));
      history.replaceState(null, "", window.location.pathname);
      describe(fields[0].value);
    }
    fields.forEach(function (f) {
      f.addEventListener("change", function () { fill(f.value.trim()); describe(f.value.trim()); });
    });
  }

  function sameAs(input) {
    var other = document.getElementById(input.getAttribute("data-same-as"));
    var check = function () { input.setCustomValidity(other && input.value !== other.value ? "The two passwords differ." : ""); };
    input.addEventListener("input", check);
    if (other) other.addEventListener("input", check);
  }

  document.addEventListener("DOMContentLoaded", function () {
    invitation();
    // A link to another origin that a form's answer asks to follow (the
    // single-sign-on provider): forms may not go there themselves.
    var follow = document.querySelector("a[data-follow]");
    if (follow) window.location.assign(follow.href);
    document.querySelectorAll("[data-same-as]").forEach(sameAs);
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
