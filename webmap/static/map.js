/* civicpin city map: request pins for the visible area, loaded from the bbox endpoint.
 *
 * The page never embeds the requests themselves: on every `moveend` this fetches at most
 * `options.limit` of the newest public requests inside the view and refills the marker
 * cluster. Text from the server is only ever set as textContent (never as HTML).
 */
(function () {
  "use strict";

  var STATUS_LABELS = {
    new: "New",
    acknowledged: "Acknowledged",
    in_progress: "In progress",
    referred: "Referred",
    resolved: "Resolved",
    cant_fix: "Can't fix",
    duplicate: "Duplicate",
    cancelled: "Cancelled",
    closed: "Closed"
  };

  function statusClass(status) {
    return Object.prototype.hasOwnProperty.call(STATUS_LABELS, status) ? status : "other";
  }

  function pinIcon(status) {
    return L.divIcon({
      className: "civicpin-pin civicpin-pin--" + statusClass(status),
      html: "",
      iconSize: [16, 16],
      iconAnchor: [8, 8],
      popupAnchor: [0, -8]
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function popupContent(props) {
    var box = el("div", "civicpin-popup");
    box.appendChild(el("strong", null, props.service));
    box.appendChild(el("div", "civicpin-popup__id", props.public_id));
    var status = el("div", "civicpin-popup__status");
    status.appendChild(el("span", "civicpin-dot civicpin-dot--" + statusClass(props.status)));
    status.appendChild(document.createTextNode(" " + (STATUS_LABELS[props.status] || props.status)));
    box.appendChild(status);
    if (props.requested_at) {
      var when = new Date(props.requested_at);
      box.appendChild(el("div", "civicpin-popup__date", "Reported " + when.toLocaleString()));
    }
    return box;
  }

  function clamp(v, lo, hi) {
    return Math.min(hi, Math.max(lo, v));
  }

  function loadRequestPins(map, cluster, options) {
    var statusEl = document.getElementById(options.statusElement);
    var container = map.getContainer();
    var controller = null;
    var timer = null;

    function say(text) {
      if (statusEl) statusEl.textContent = text;
    }

    function show(collection) {
      var markers = collection.features.map(function (f) {
        var c = f.geometry.coordinates;
        var p = f.properties;
        var marker = L.marker([c[1], c[0]], {
          icon: pinIcon(p.status),
          title: p.service + " (" + (STATUS_LABELS[p.status] || p.status) + ")",
          alt: p.service
        });
        marker.bindPopup(function () { return popupContent(p); });
        return marker;
      });
      cluster.clearLayers();
      cluster.addLayers(markers);
      var n = markers.length.toLocaleString();
      say(collection.truncated
        ? "Showing the " + n + " newest requests in view; zoom in to see more."
        : n + (markers.length === 1 ? " request" : " requests") + " in view.");
      container.setAttribute("data-pins-loaded", String(markers.length));
    }

    function refresh() {
      var b = map.getBounds();
      // Leaflet's bounds run past +-180/90 when zoomed far out; the API wants real ones.
      var bbox = [
        clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90),
        clamp(b.getEast(), -180, 180), clamp(b.getNorth(), -90, 90)
      ];
      if (!(bbox[0] < bbox[2] && bbox[1] < bbox[3])) return;
      if (controller) controller.abort();
      controller = new AbortController();
      var query = new URLSearchParams({
        city: options.city,
        bbox: bbox.map(function (v) { return v.toFixed(6); }).join(","),
        zoom: String(Math.round(map.getZoom()))
      });
      fetch(options.url + "?" + query.toString(), {
        signal: controller.signal,
        headers: { Accept: "application/json" },
        credentials: "same-origin"
      })
        .then(function (r) {
          return r.json().then(function (body) {
            if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
            return body;
          });
        })
        .then(show)
        .catch(function (err) {
          if (err.name !== "AbortError") say("Could not load requests: " + err.message);
        });
    }

    map.on("moveend", function () {
      clearTimeout(timer);
      timer = setTimeout(refresh, 150);
    });
    say("Loading requests…");
    refresh();
  }

  window.civicpin = window.civicpin || {};
  window.civicpin.loadRequestPins = loadRequestPins;
})();
