/* The crew's map layer on a phone: zone outlines, open assignments, and a list sorted by
 * priority, due date or distance from the phone (browser geolocation).
 * Server text is only ever set as textContent.
 */
(function () {
  "use strict";

  var root = document.getElementById("crew");
  if (!root) return;

  var LABELS = {
    new: "New", acknowledged: "Acknowledged", in_progress: "In progress",
    resolved: "Resolved", cant_fix: "Can't fix", closed: "Closed"
  };
  var list = document.getElementById("crew-list");
  var statusLine = document.getElementById("crew-status");
  var newLine = document.getElementById("crew-new");
  var newText = document.getElementById("crew-new-text");
  var mapBox = document.getElementById("crew-map");
  var map = null;
  var pins = null;
  var zonesLayer = null;
  var me = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (res) {
        return res.json().then(function (body) {
          if (!res.ok) throw new Error(body.error || ("HTTP " + res.status));
          return body;
        });
      });
  }

  function withParams(url, params) {
    var u = new URL(url, window.location.href);
    Object.keys(params).forEach(function (k) { u.searchParams.set(k, params[k]); });
    return u.pathname + u.search;
  }

  if (window.L && mapBox) {
    map = L.map(mapBox);
    var tiles = root.dataset.tiles;
    if (tiles && tiles.toLowerCase() !== "none") {
      L.tileLayer(tiles, { maxZoom: 19, attribution: root.dataset.attribution }).addTo(map);
    }
    map.setView([0, 0], 2);
    pins = L.featureGroup().addTo(map);
  }

  function fit() {
    if (!map) return;
    var group = L.featureGroup();
    if (zonesLayer) group.addLayer(zonesLayer);
    pins.eachLayer(function (l) { group.addLayer(l); });
    var b = group.getBounds();
    if (b.isValid()) map.fitBounds(b, { padding: [16, 16], maxZoom: 17 });
  }

  function render(items) {
    var newCount = items.filter(function (item) { return item.new; }).length;
    list.textContent = "";
    if (pins) pins.clearLayers();
    if (!items.length) list.appendChild(el("li", "muted", "Nothing assigned to your crew is open."));
    items.forEach(function (item) {
      var li = el("li", "crew-item priority-" + item.priority + (item.overdue ? " is-overdue" : "") +
        (item.new ? " is-new" : ""));
      li.dataset.publicId = item.public_id;
      var a = el("a");
      a.href = item.url;
      a.appendChild(el("span", "queue-item__id", item.public_id));
      a.appendChild(el("span", "queue-item__service", item.service));
      if (item.new) a.appendChild(el("span", "badge is-new", "New"));
      if (!(item.new && item.status === "new")) {
        a.appendChild(el("span", "badge status-" + item.status, LABELS[item.status] || item.status));
      }
      a.appendChild(el("span", "badge priority", item.priority));
      if (item.overdue) a.appendChild(el("span", "badge overdue", "overdue"));
      a.appendChild(el("span", "queue-item__where", item.address || item.zone || ""));
      if (item.asset_ref) {
        a.appendChild(el("span", "queue-item__asset", item.asset_title + " " + item.asset_ref));
      }
      // "due" is on the city's clock, labelled, as the server wrote it.
      if (item.due) a.appendChild(el("span", "queue-item__due", "due " + item.due));
      if (item.meters !== undefined && item.meters !== null) {
        var d = item.meters >= 1000 ? (item.meters / 1000).toFixed(1) + " km" : item.meters + " m";
        a.appendChild(el("span", "queue-item__distance", d));
      }
      li.appendChild(a);
      list.appendChild(li);
      if (pins && item.lat !== null) {
        var m = L.marker([item.lat, item.lon], {
          title: item.public_id,
          icon: L.divIcon({
            className: "dispatch-pin priority-" + item.priority + (item.overdue ? " is-overdue" : "") +
              (item.new ? " is-new" : ""),
            html: "", iconSize: [18, 18], iconAnchor: [9, 9]
          })
        });
        m.bindTooltip(el("span", null, (item.new ? "New · " : "") + item.public_id + " · " + item.service));
        m.on("click", function () { window.location.href = item.url; });
        pins.addLayer(m);
      }
    });
    statusLine.textContent = items.length + (items.length === 1 ? " open request" : " open requests") +
      (newCount ? ", " + newCount + " new" : "");
    if (newLine) {
      newLine.hidden = !newCount;
      newLine.dataset.count = String(newCount);
      newText.textContent = newCount + (newCount === 1 ? " request is" : " requests are") +
        " new to your crew: open " + (newCount === 1 ? "it" : "each") + " and acknowledge.";
    }
    root.dataset.loaded = String(items.length);
  }

  function load(sort, near) {
    var params = { sort: sort };
    if (near) params.near = near.lat.toFixed(6) + "," + near.lon.toFixed(6);
    Array.prototype.forEach.call(root.querySelectorAll(".sort__btn"), function (b) {
      b.classList.toggle("is-active", b.dataset.sort === sort);
    });
    return getJSON(withParams(root.dataset.apiUrl, params)).then(function (body) {
      render(body.items);
      root.dataset.sort = sort;
    }).catch(function (err) {
      statusLine.textContent = "Could not load the list: " + err.message;
    });
  }

  function loadZones() {
    if (!map) return Promise.resolve();
    return getJSON(root.dataset.zonesUrl).then(function (fc) {
      zonesLayer = L.geoJSON(fc, {
        style: { color: "#2b6cb0", weight: 2, fillOpacity: 0.05 },
        onEachFeature: function (f, layer) {
          layer.bindTooltip(el("span", null, f.properties.name + " (" + f.properties.code + ")"));
        }
      }).addTo(map);
      zonesLayer.bringToBack();
    });
  }

  root.addEventListener("click", function (ev) {
    var btn = ev.target.closest(".sort__btn");
    if (!btn) return;
    ev.preventDefault();
    var sort = btn.dataset.sort;
    if (sort !== "distance") {
      load(sort, me);
      return;
    }
    if (!navigator.geolocation) {
      statusLine.textContent = "This browser cannot tell where you are.";
      return;
    }
    statusLine.textContent = "Finding where you are…";
    navigator.geolocation.getCurrentPosition(function (pos) {
      me = { lat: pos.coords.latitude, lon: pos.coords.longitude };
      if (map) {
        L.circleMarker([me.lat, me.lon], { radius: 7, color: "#fff", fillColor: "#2b6cb0", fillOpacity: 1 })
          .bindTooltip("You are here").addTo(map);
      }
      load("distance", me);
    }, function (err) {
      statusLine.textContent = "No location: " + err.message;
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  });

  loadZones().then(function () {
    return load(root.querySelector(".sort__btn.is-active").dataset.sort || "priority");
  }).then(fit);
})();
