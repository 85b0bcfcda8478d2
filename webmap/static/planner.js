/* civicpin planner maps: a heat layer with a period slider, or coloured areas.
 *
 * The page holds no data: the map element names the URL to fetch (data-url), the city's
 * bounds, the tile URL and, for the heatmap, the slider's periods (data-steps). Colours
 * and labels come computed from the server; text is only ever set as textContent.
 */
(function () {
  "use strict";

  var node = document.getElementById("planner-map");
  if (!node || typeof L === "undefined") return;
  var status = document.getElementById("map-status");

  function say(text) {
    if (status) status.textContent = text;
  }

  function readJSON(name) {
    var raw = node.getAttribute(name);
    if (!raw) return null;
    try {
      return JSON.parse(raw);
    } catch (e) {
      return null;
    }
  }

  function el(tag, className, text) {
    var n = document.createElement(tag);
    if (className) n.className = className;
    if (text !== undefined && text !== null) n.textContent = text;
    return n;
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (res) {
        if (!res.ok) {
          return res.json().then(
            function (body) { throw new Error(body.error || "HTTP " + res.status); },
            function () { throw new Error("HTTP " + res.status); }
          );
        }
        return res.json();
      });
  }

  var map = L.map(node, { preferCanvas: true, zoomSnap: 0.25 });
  var bounds = readJSON("data-bounds");
  if (bounds) {
    map.fitBounds(bounds, { padding: [8, 8] });
  } else {
    map.setView([0, 0], 2);
  }
  var tiles = node.getAttribute("data-tiles");
  if (tiles) {
    L.tileLayer(tiles, {
      maxZoom: 19,
      attribution: node.getAttribute("data-attribution") || ""
    }).addTo(map);
  }

  function heatMode() {
    var heat = null;
    var flags = L.layerGroup().addTo(map);
    var steps = readJSON("data-steps") || [];
    var allUrl = node.getAttribute("data-url");

    function show(url, label) {
      say("Loading " + label + "…");
      getJSON(url).then(function (data) {
        if (heat) map.removeLayer(heat);
        heat = L.heatLayer(data.points, {
          radius: 16,
          blur: 14,
          minOpacity: 0.25,
          max: Math.max(1, data.max)
        }).addTo(map);
        flags.clearLayers();
        data.flagged.forEach(function (p) {
          var marker = L.circleMarker([p.lat, p.lon], {
            radius: 8, color: "#6b46c1", weight: 2, fillOpacity: 0.1
          });
          var tip = el("div", "planner-tooltip");
          tip.appendChild(el("strong", null, "Flagged point (left out)"));
          tip.appendChild(el("div", null, p.requests + " requests, " + p.addresses + " addresses"));
          marker.bindTooltip(tip);
          flags.addLayer(marker);
        });
        node.setAttribute("data-points-loaded", String(data.points.length));
        node.setAttribute("data-requests-loaded", String(data.requests));
        say(label + ": " + data.requests.toLocaleString() + " requests in " +
            data.points.length.toLocaleString() + " cells" +
            (data.flagged.length ? "; " + data.flagged.length + " flagged point(s) left out" : ""));
      }).catch(function (err) {
        say("Could not load the heat layer: " + err.message);
      });
    }

    var slider = document.getElementById("period");
    var output = document.getElementById("period-label");
    if (slider && steps.length) {
      slider.addEventListener("input", function () {
        var i = parseInt(slider.value, 10);
        var label = i === 0 ? "all " + steps.length + " periods" : steps[i - 1].label;
        if (output) output.textContent = label;
      });
      slider.addEventListener("change", function () {
        var i = parseInt(slider.value, 10);
        if (i === 0) show(allUrl, "all periods");
        else show(steps[i - 1].url, steps[i - 1].label);
      });
    }
    show(allUrl, "all periods");
  }

  function areasMode() {
    say("Loading the map…");
    getJSON(node.getAttribute("data-url")).then(function (data) {
      var layer = L.geoJSON(data, {
        style: function (feature) {
          return {
            color: "#4a5568",
            weight: 0.6,
            fillColor: feature.properties.fill,
            fillOpacity: 0.75
          };
        },
        onEachFeature: function (feature, lyr) {
          var p = feature.properties;
          var tip = el("div", "planner-tooltip");
          tip.appendChild(el("strong", null, p.name));
          tip.appendChild(el("div", null, p.label));
          lyr.bindTooltip(tip, { sticky: true });
        }
      }).addTo(map);
      var n = data.features.length;
      node.setAttribute("data-features-loaded", String(n));
      if (n && !bounds) map.fitBounds(layer.getBounds());
      say(n.toLocaleString() + " areas on the map");
    }).catch(function (err) {
      say("Could not load the map: " + err.message);
    });
  }

  if (node.getAttribute("data-mode") === "heat") heatMode();
  else areasMode();
})();
