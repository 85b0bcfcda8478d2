/* Projects: the map of a project (its area and its requests) on the staff and public
   pages, drawing the area on the project form, and "tick all" for the requests found
   inside the area. Data comes from data- attributes: no inline script (strict CSP). */
(function () {
  "use strict";

  function baseMap(box) {
    var map = L.map(box);
    var tiles = box.dataset.tiles;
    if (tiles && tiles.toLowerCase() !== "none") {
      L.tileLayer(tiles, { maxZoom: 19, attribution: box.dataset.attribution || "" }).addTo(map);
    }
    return map;
  }

  function popup(props) {
    var div = document.createElement("div");
    var link = document.createElement("a");
    link.href = props.url;
    link.textContent = props.public_id;
    div.appendChild(link);
    div.appendChild(document.createTextNode(" " + props.service + " · " + props.status));
    return div;
  }

  function showProject(box) {
    var data = JSON.parse(box.dataset.map || "{}");
    var map = baseMap(box);
    var group = L.featureGroup().addTo(map);
    if (data.area) {
      L.geoJSON(data.area, { style: { color: "#6b46c1", weight: 2, fillOpacity: 0.12 } }).addTo(group);
    }
    ((data.requests || {}).features || []).forEach(function (f) {
      var c = f.geometry.coordinates; // GeoJSON: [lon, lat]
      L.circleMarker([c[1], c[0]], {
        radius: 7,
        color: "#fff",
        weight: 2,
        fillColor: f.properties.open ? "#c05621" : "#2f855a",
        fillOpacity: 1,
        className: "project-pin",
      })
        .bindPopup(popup(f.properties))
        .addTo(group);
    });
    var bounds = group.getBounds();
    if (bounds.isValid()) {
      map.fitBounds(bounds, { padding: [20, 20], maxZoom: 17 });
    } else {
      map.setView([0, 0], 1);
    }
    box.dataset.ready = "1";
  }

  function drawArea(box) {
    var field = document.getElementById("area");
    var map = baseMap(box);
    var shown = L.featureGroup().addTo(map);
    var corners = [];
    var drawing = false;
    var line = null;

    function showField() {
      shown.clearLayers();
      var text = (field.value || "").trim();
      if (!text) return false;
      try {
        L.geoJSON(JSON.parse(text), { style: { color: "#6b46c1", weight: 2 } }).addTo(shown);
      } catch (e) {
        return false; // the server says what is wrong with it
      }
      return shown.getBounds().isValid();
    }

    if (showField()) {
      map.fitBounds(shown.getBounds(), { padding: [20, 20] });
    } else {
      var b = JSON.parse(box.dataset.bounds || "null"); // [west, south, east, north]
      if (b) map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
      else map.setView([0, 0], 1);
    }

    map.on("click", function (e) {
      if (!drawing) return;
      corners.push(e.latlng);
      if (line) line.remove();
      line = L.polyline(corners, { color: "#6b46c1", dashArray: "4 4" }).addTo(map);
    });

    document.getElementById("area-draw").addEventListener("click", function () {
      drawing = true;
      corners = [];
      box.classList.add("is-drawing");
    });
    document.getElementById("area-finish").addEventListener("click", function () {
      drawing = false;
      box.classList.remove("is-drawing");
      if (line) line.remove();
      line = null;
      if (corners.length < 3) return;
      var ring = corners.map(function (p) {
        return [Number(p.lng.toFixed(6)), Number(p.lat.toFixed(6))];
      });
      ring.push(ring[0]);
      field.value = JSON.stringify({ type: "Polygon", coordinates: [ring] });
      showField();
    });
    document.getElementById("area-clear").addEventListener("click", function () {
      drawing = false;
      corners = [];
      if (line) line.remove();
      line = null;
      field.value = "";
      shown.clearLayers();
    });
    field.addEventListener("change", showField);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("project-map");
    if (box && window.L) showProject(box);
    var area = document.getElementById("area-map");
    if (area && window.L) drawArea(area);
    document.querySelectorAll(".js-tick-all").forEach(function (button) {
      button.addEventListener("click", function () {
        button.form.querySelectorAll('input[name="public_ids"]').forEach(function (c) {
          c.checked = true;
        });
      });
    });
  });
})();
