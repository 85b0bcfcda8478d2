/* civicpin city map: requests for the visible area, loaded from the bbox endpoint.
 *
 * The page never embeds the requests themselves: on every `moveend` (and when a filter
 * changes) this fetches what is in view for the current zoom. The server answers with
 * single requests (`mode: "points"`, clustered here by Leaflet.markercluster) or, when a
 * view holds more than `options.limit`, with counts per grid cell (`mode: "clusters"`),
 * drawn as numbered circles in the colour of their most common status. The list beside
 * the map shows the newest requests in view, each with a link and a "show on map"
 * button, so the map's content is reachable by keyboard. Text from the server is only
 * ever set as textContent (never as HTML).
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
  var PIN_STATUSES = ["new", "acknowledged", "in_progress", "referred", "resolved", "closed"];

  function statusClass(status) {
    return PIN_STATUSES.indexOf(status) !== -1 ? status : "other";
  }

  function statusLabel(status) {
    return STATUS_LABELS[status] || status;
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

  function cellIcon(count, status) {
    var size = Math.round(Math.min(46, 24 + 5 * Math.log10(Math.max(1, count))));
    var label = count >= 10000 ? Math.round(count / 1000) + "k" : count.toLocaleString();
    return L.divIcon({
      className: "civicpin-cell civicpin-cell--" + statusClass(status),
      // An element, not a string: Leaflet would set a string as HTML.
      html: el("span", null, label),
      iconSize: [size, size],
      iconAnchor: [size / 2, size / 2]
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function clamp(v, lo, hi) {
    return Math.min(hi, Math.max(lo, v));
  }

  function isoDate(d) {
    var m = d.getMonth() + 1, day = d.getDate();
    return d.getFullYear() + "-" + (m < 10 ? "0" : "") + m + "-" + (day < 10 ? "0" : "") + day;
  }

  function urlFor(template, publicId) {
    return template.replace("ID", encodeURIComponent(publicId));
  }

  function loadRequestPins(map, cluster, options) {
    var statusEl = document.getElementById(options.statusElement);
    var form = options.filterForm ? document.getElementById(options.filterForm) : null;
    var listEl = options.listElement ? document.getElementById(options.listElement) : null;
    var container = map.getContainer();
    var cells = L.layerGroup().addTo(map);
    var controller = null;
    var timer = null;

    function say(text) {
      if (statusEl) statusEl.textContent = text;
    }

    function popupContent(props) {
      var box = el("div", "civicpin-popup");
      box.appendChild(el("strong", null, props.service));
      box.appendChild(el("div", "civicpin-popup__id", props.public_id));
      var status = el("div", "civicpin-popup__status");
      status.appendChild(el("span", "civicpin-dot civicpin-dot--" + statusClass(props.status)));
      status.appendChild(document.createTextNode(" " + statusLabel(props.status)));
      box.appendChild(status);
      if (props.requested_at) {
        box.appendChild(el("div", "civicpin-popup__date",
          "Reported " + new Date(props.requested_at).toLocaleString()));
      }
      var more = el("div", "civicpin-popup__more");
      box.appendChild(more);
      if (options.trackUrl) {
        var link = el("a", "civicpin-popup__link", "Details and timeline");
        link.href = urlFor(options.trackUrl, props.public_id);
        box.appendChild(link);
      }
      if (options.detailsUrl) {
        fetch(urlFor(options.detailsUrl, props.public_id), {
          headers: { Accept: "application/json" }, credentials: "same-origin"
        })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (d) {
            if (!d) return;
            if (d.thumb_url) {
              var img = el("img", "civicpin-popup__thumb");
              img.src = d.thumb_url;
              img.alt = "Photo of " + d.public_id;
              more.appendChild(img);
            }
            if (d.address) more.appendChild(el("div", null, d.address));
            if (d.department) {
              more.appendChild(el("div", null, "With: " + d.department + (d.crew ? ", " + d.crew : "")));
            }
            if (d.supporters) more.appendChild(el("div", null, d.supporters + " following"));
          })
          .catch(function () { /* the popup keeps its basic fields */ });
      }
      return box;
    }

    function showList(items, total, clustered) {
      if (!listEl) return;
      listEl.textContent = "";
      items.slice(0, options.listSize || 50).forEach(function (f) {
        var p = f.properties, c = f.geometry.coordinates;
        var item = el("li", "request-list__item");
        var link = el("a", "request-list__link");
        link.href = options.trackUrl ? urlFor(options.trackUrl, p.public_id) : "#";
        link.appendChild(el("span", "civicpin-dot civicpin-dot--" + statusClass(p.status)));
        link.appendChild(el("strong", null, " " + p.service));
        link.appendChild(el("span", "request-list__meta",
          statusLabel(p.status) + " · " + p.public_id +
          (p.requested_at ? " · " + new Date(p.requested_at).toLocaleDateString() : "")));
        item.appendChild(link);
        var show = el("button", "request-list__show", "Show on map");
        show.type = "button";
        show.setAttribute("aria-label", "Show " + p.public_id + " on the map");
        show.addEventListener("click", function () {
          map.setView([c[1], c[0]], Math.max(map.getZoom(), 17));
          var popup = L.popup({ autoPan: true })
            .setLatLng([c[1], c[0]])
            .setContent(popupContent(p))
            .openOn(map);
          var focusable = popup.getElement() && popup.getElement().querySelector("a");
          if (focusable) focusable.focus();
        });
        item.appendChild(show);
        listEl.appendChild(item);
      });
      var heading = document.getElementById(options.listElement + "-count");
      if (heading) {
        var shown = Math.min(items.length, options.listSize || 50);
        heading.textContent = total === 0 ? "No requests in view" :
          (shown < total ? "Newest " + shown + " of " + total.toLocaleString() : total.toLocaleString()) +
          (total === 1 ? " request in view" : " requests in view") + (clustered ? " (zoom in for single ones)" : "");
      }
    }

    function showPoints(collection) {
      var markers = collection.features.map(function (f) {
        var c = f.geometry.coordinates;
        var p = f.properties;
        var marker = L.marker([c[1], c[0]], {
          icon: pinIcon(p.status),
          title: p.service + " (" + statusLabel(p.status) + ")",
          alt: p.service
        });
        marker.bindPopup(function () { return popupContent(p); });
        return marker;
      });
      cells.clearLayers();
      cluster.clearLayers();
      cluster.addLayers(markers);
      var n = markers.length.toLocaleString();
      say(collection.truncated
        ? "Showing the " + n + " newest requests in view; zoom in to see more."
        : n + (markers.length === 1 ? " request" : " requests") + " in view.");
      container.setAttribute("data-map-mode", "points");
      container.setAttribute("data-pins-loaded", String(markers.length));
      showList(collection.features, collection.truncated ? collection.features.length : markers.length, false);
    }

    function showCells(collection) {
      cluster.clearLayers();
      cells.clearLayers();
      collection.features.forEach(function (f) {
        var c = f.geometry.coordinates, p = f.properties;
        var parts = Object.keys(p.statuses).map(function (s) {
          return p.statuses[s].toLocaleString() + " " + statusLabel(s).toLowerCase();
        });
        var marker = L.marker([c[1], c[0]], {
          icon: cellIcon(p.count, p.status),
          title: p.count.toLocaleString() + " requests here: " + parts.join(", "),
          keyboard: true
        });
        marker.on("click", function () {
          map.setView([c[1], c[0]], Math.min(map.getMaxZoom(), map.getZoom() + 2));
        });
        cells.addLayer(marker);
      });
      say(collection.total.toLocaleString() + " requests in view, counted by area; " +
        "zoom in or use the list to see single requests.");
      container.setAttribute("data-map-mode", "clusters");
      container.setAttribute("data-pins-loaded", String(collection.total));
      showList(collection.newest || [], collection.total, true);
    }

    function filterParams(query) {
      if (!form) return;
      var service = form.elements.service && form.elements.service.value;
      var status = form.elements.status && form.elements.status.value;
      if (service) query.set("service", service);
      if (status) query.set("status", status);
      var period = form.elements.period && form.elements.period.value;
      if (period === "custom") {
        if (form.elements.since.value) query.set("since", form.elements.since.value);
        if (form.elements.until.value) query.set("until", form.elements.until.value);
      } else if (period) {
        var since = new Date();
        since.setDate(since.getDate() - Number(period));
        query.set("since", isoDate(since));
      }
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
      filterParams(query);
      container.setAttribute("aria-busy", "true");
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
        .then(function (body) {
          container.removeAttribute("aria-busy");
          if (body.mode === "clusters") showCells(body);
          else showPoints(body);
        })
        .catch(function (err) {
          if (err.name !== "AbortError") {
            container.removeAttribute("aria-busy");
            say("Could not load requests: " + err.message);
          }
        });
    }

    function later() {
      clearTimeout(timer);
      timer = setTimeout(refresh, 150);
    }

    map.on("moveend", later);
    if (form) {
      var dates = document.getElementById("f-dates");
      form.addEventListener("change", function () {
        if (dates) {
          var custom = form.elements.period && form.elements.period.value === "custom";
          dates.hidden = !custom;
        }
        later();
      });
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        refresh();
      });
    }
    say("Loading requests…");
    refresh();
  }

  window.civicpin = window.civicpin || {};
  window.civicpin.loadRequestPins = loadRequestPins;
})();
