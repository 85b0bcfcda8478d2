// Admin maps: zones, overlaps and gaps of a layer report, or the requests a what-if moves.
// Data comes from a <script type="application/json" id="map-data"> block on the page.
(function () {
  "use strict";
  var el = document.getElementById("admin-map");
  var dataEl = document.getElementById("map-data");
  if (!el || !dataEl || typeof L === "undefined") { return; }
  var data = JSON.parse(dataEl.textContent);
  var map = L.map(el);
  var tiles = document.body.getAttribute("data-tile-url");
  if (tiles && tiles !== "none") { L.tileLayer(tiles, { maxZoom: 19 }).addTo(map); }
  var colors = { zone: "#3b7dd8", overlap: "#d62728", gap: "#ff9f1c" };
  function text(v) { return v === null || v === undefined ? "–" : String(v); }
  var layer = L.geoJSON(data, {
    style: function (f) {
      var kind = f.properties.kind || "zone";
      return { color: colors[kind], weight: kind === "zone" ? 1 : 2, fillOpacity: kind === "zone" ? 0.1 : 0.5 };
    },
    pointToLayer: function (f, latlng) {
      return L.circleMarker(latlng, { radius: 5, color: "#d62728", fillOpacity: 0.7 });
    },
    onEachFeature: function (f, lyr) {
      var p = f.properties, div = document.createElement("div");
      if (el.dataset.kind === "whatif") {
        [["Request", p.public_id], ["Department", text(p.department[0]) + " → " + text(p.department[1])],
         ["Crew", text(p.crew[0]) + " → " + text(p.crew[1])], ["Zone", text(p.zone[0]) + " → " + text(p.zone[1])]]
          .forEach(function (kv) { var line = document.createElement("div"); line.textContent = kv[0] + ": " + kv[1]; div.appendChild(line); });
      } else {
        div.textContent = p.label + (p.area_m2 !== undefined ? " (" + p.area_m2 + " m²)" : "");
      }
      lyr.bindPopup(div);
    }
  }).addTo(map);
  var bounds = layer.getBounds();
  if (bounds.isValid()) { map.fitBounds(bounds); } else { map.setView([0, 0], 2); }
})();

// A re-route job after a publish: refresh its line from the JSON endpoint while it runs.
(function () {
  "use strict";
  var box = document.getElementById("reroute");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-reroute-url");
  var statusEl = box.querySelector(".reroute-status");
  var textEl = box.querySelector(".reroute-text");
  var bar = box.querySelector(".reroute-progress");
  function running(status) { return status === "queued" || status === "running"; }
  function show(job) {
    box.setAttribute("data-status", job.status);
    statusEl.textContent = job.status;
    textEl.textContent = job.text;
    if (bar) {
      bar.max = job.total || 1;
      bar.value = job.total ? job.done : (job.finished ? 1 : 0);
      bar.textContent = job.done + " / " + (job.total || 0);
    }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (job) { show(job); if (running(job.status)) { setTimeout(poll, 1500); } })
      .catch(function () { setTimeout(poll, 5000); });
  }
  if (running(box.getAttribute("data-status"))) { setTimeout(poll, 1000); }
})();
