/* Active Dispatch console: live queue (polling), map, request panel and action forms.
 *
 * Every few seconds the console asks /dispatch/api/updates for requests that arrived
 * since its cursor; each arrival goes on top of the list and the map, with a banner and
 * a short beep (Web Audio, no sound file). Any other change reloads the list. Text from
 * the server is only ever set as textContent, except the request panel, which is HTML
 * rendered (and escaped) by the server's templates.
 */
(function () {
  "use strict";

  var root = document.getElementById("console");
  if (!root) return;

  var LABELS = {
    new: "New", acknowledged: "Acknowledged", in_progress: "In progress", referred: "Referred",
    resolved: "Resolved", cant_fix: "Can't fix", duplicate: "Duplicate", cancelled: "Cancelled",
    closed: "Closed"
  };
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var list = document.getElementById("queue-list");
  var panel = document.getElementById("panel");
  var banner = document.getElementById("arrival-banner");
  var statusLine = document.getElementById("queue-status");
  var filtersForm = document.getElementById("filters");
  var soundButton = document.getElementById("sound-toggle");
  var pollMs = parseInt(root.dataset.pollMs, 10) || 3000;
  var cursor = {
    after_id: parseInt(root.dataset.afterId, 10) || 0,
    since: root.dataset.since,
    updated: root.dataset.updated
  };
  var known = {};
  var selected = null;
  var soundOn = true;
  var audio = null;
  var beeps = 0;
  var arrivalsSeen = 0;
  var pickingPin = false;

  Array.prototype.forEach.call(list.querySelectorAll(".queue-item"), function (li) {
    known[li.dataset.id] = true;
  });

  // ---------------------------------------------------------------- helpers

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function filterParams() {
    var params = new URLSearchParams(new FormData(filtersForm));
    // Unchecked boxes and "any" choices are left out so the URL stays short.
    Array.from(params.keys()).forEach(function (key) {
      if (params.get(key) === "") params.delete(key);
    });
    return params;
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

  // ---------------------------------------------------------------- map

  var map = null;
  var markers = {};
  var markerLayer = null;
  var mapBox = document.getElementById("dispatch-map");
  if (window.L && mapBox) {
    map = L.map(mapBox, { zoomControl: true });
    var tiles = root.dataset.tiles;
    if (tiles && tiles.toLowerCase() !== "none") {
      L.tileLayer(tiles, { maxZoom: 19, attribution: root.dataset.attribution }).addTo(map);
    }
    var bounds = JSON.parse(root.dataset.bounds || "null");
    if (bounds) {
      map.fitBounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]]);
    } else {
      map.setView([0, 0], 2);
    }
    markerLayer = L.layerGroup().addTo(map);
    map.on("click", function (ev) {
      if (!pickingPin) return;
      pickingPin = false;
      mapBox.classList.remove("is-picking");
      var form = panel.querySelector('form[data-action="move"]');
      if (!form) return;
      form.elements.lat.value = ev.latlng.lat.toFixed(6);
      form.elements.lon.value = ev.latlng.lng.toFixed(6);
    });
  }

  function markerFor(item) {
    if (!map || item.lat === null || item.lon === null) return;
    var icon = L.divIcon({
      className: "dispatch-pin priority-" + item.priority + (item.overdue ? " is-overdue" : "") +
        (item.triaged ? "" : " is-untriaged"),
      html: "",
      iconSize: [16, 16],
      iconAnchor: [8, 8]
    });
    var m = L.marker([item.lat, item.lon], { icon: icon, title: item.public_id });
    var tip = el("span", null, item.public_id + " · " + item.service);
    m.bindTooltip(tip);
    m.on("click", function () { openPanel(item.public_id); });
    m.addTo(markerLayer);
    markers[item.public_id] = m;
  }

  function resetMarkers(items) {
    if (!map) return;
    markerLayer.clearLayers();
    markers = {};
    items.forEach(markerFor);
  }

  // ---------------------------------------------------------------- list

  function badge(className, text) {
    return el("span", "badge " + className, text);
  }

  function itemNode(item) {
    var li = el("li", "queue-item priority-" + item.priority);
    if (item.overdue) li.classList.add("is-overdue");
    var untriaged = !item.triaged && item.status === "new";
    if (untriaged) li.classList.add("is-untriaged");
    li.dataset.id = item.id;
    li.dataset.publicId = item.public_id;
    var a = el("a", "queue-item__link");
    a.href = root.dataset.panelBase + encodeURIComponent(item.public_id);
    a.appendChild(el("span", "queue-item__id", item.public_id));
    a.appendChild(el("span", "queue-item__service", item.service));
    a.appendChild(badge("status-" + item.status, LABELS[item.status] || item.status));
    a.appendChild(badge("priority", item.priority));
    if (item.overdue) a.appendChild(badge("overdue", "overdue"));
    if (untriaged) a.appendChild(badge("untriaged", "untriaged"));
    if (item.needs_location) a.appendChild(badge("needs-location", "needs location"));
    if (item.needs_answers) a.appendChild(badge("needs-answers", "needs answers"));
    if (item.possible_duplicate) a.appendChild(badge("possible-duplicate", "possible duplicate"));
    if (item.held) a.appendChild(badge("held", "held: not public yet"));
    if (item.escalation_level) {
      li.classList.add("is-escalated");
      a.appendChild(badge("escalated escalated-" + item.escalation_level,
        "escalated: level " + item.escalation_level));
    }
    if (item.no_location && !item.needs_location) a.appendChild(badge("no-location", "no location"));
    if (item.reopened) a.appendChild(badge("reopened", "reopened"));
    if (item.new_message) a.appendChild(badge("new-message", "new message"));
    a.appendChild(el("span", "queue-item__where", item.address || item.zone || ""));
    if (item.asset_ref) {
      a.appendChild(el("span", "queue-item__asset", item.asset_title + " " + item.asset_ref));
    }
    a.appendChild(el("span", "queue-item__to",
      (item.department || "central dispatch") + (item.crew ? " / " + item.crew : "")));
    a.appendChild(el("span", "queue-item__channel", item.channel));
    // "reported" is on the city's clock, labelled, as the server wrote it.
    if (item.reported) {
      var when = el("time", "queue-item__when", item.reported);
      when.setAttribute("datetime", item.requested_at);
      a.appendChild(when);
    }
    li.appendChild(a);
    if (selected === item.public_id) li.classList.add("is-selected");
    return li;
  }

  function showCount(total, shown) {
    statusLine.textContent = total + (total === 1 ? " request" : " requests") +
      (total > shown ? " (showing " + shown + ")" : "") +
      // The server's time of the list, on the city's clock (not the browser's zone).
      " · updated " + cursor.updated;
  }

  var total = parseInt(root.dataset.total, 10) || 0;

  function renderList(items, count) {
    total = count;
    list.textContent = "";
    known = {};
    items.forEach(function (item) {
      // Newer than the live cursor: the next poll announces it, so it is not "known" yet.
      if (item.id <= cursor.after_id) known[item.id] = true;
      list.appendChild(itemNode(item));
    });
    resetMarkers(items);
    showCount(total, items.length);
  }

  function reloadList() {
    var params = filterParams();
    return getJSON(root.dataset.queueUrl + "?" + params.toString()).then(function (body) {
      cursor.updated = body.cursor.updated;
      renderList(body.items, body.total);
      root.dataset.loaded = String(Date.now());
    });
  }

  // ---------------------------------------------------------------- arrivals

  function ensureAudio() {
    if (audio) return audio;
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    audio = new Ctx();
    return audio;
  }

  function beep() {
    if (!soundOn) return;
    var ctx = ensureAudio();
    if (!ctx) return;
    if (ctx.state === "suspended" && ctx.resume) ctx.resume();
    var osc = ctx.createOscillator();
    var gain = ctx.createGain();
    osc.type = "sine";
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.25, ctx.currentTime + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.35);
    osc.connect(gain);
    gain.connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.4);
    beeps += 1;
    document.body.dataset.beeps = String(beeps);
  }

  function announce(fresh) {
    arrivalsSeen += fresh.length;
    document.body.dataset.arrivals = String(arrivalsSeen);
    var first = fresh[0];
    banner.textContent = (fresh.length === 1 ? "New request: " : fresh.length + " new requests: ") +
      first.public_id + " · " + first.service + (first.address ? " · " + first.address : "");
    banner.hidden = false;
    banner.classList.remove("flash");
    void banner.offsetWidth; // restart the CSS animation
    banner.classList.add("flash");
    document.title = "(" + arrivalsSeen + ") " + document.title.replace(/^\(\d+\) /, "");
    try {
      beep();
    } catch (err) {
      // No audio device: the banner still shows the arrival.
      document.body.dataset.beepError = String(err);
    }
  }

  function poll() {
    var params = filterParams();
    params.set("after_id", String(cursor.after_id));
    if (cursor.since) params.set("since", cursor.since);
    return getJSON(root.dataset.updatesUrl + "?" + params.toString()).then(function (body) {
      cursor = body.cursor;
      var fresh = body.arrivals.filter(function (item) { return !known[item.id]; });
      fresh.slice().reverse().forEach(function (item) {
        known[item.id] = true;
        var existing = list.querySelector('.queue-item[data-id="' + item.id + '"]');
        if (existing) existing.remove();
        if (markerLayer && markers[item.public_id]) markerLayer.removeLayer(markers[item.public_id]);
        var li = itemNode(item);
        li.classList.add("is-new");
        list.insertBefore(li, list.firstChild);
        markerFor(item);
      });
      if (fresh.length) {
        total += fresh.length;
        showCount(total, list.querySelectorAll(".queue-item").length);
        announce(fresh);
      }
      if (body.changed && !fresh.length) return reloadList();
      return null;
    });
  }

  function schedule() {
    window.setTimeout(function () {
      poll().catch(function (err) {
        statusLine.textContent = "Live updates paused: " + err.message + " (retrying)";
      }).then(schedule);
    }, pollMs);
  }

  // ---------------------------------------------------------------- panel and actions

  function openPanel(publicId) {
    selected = publicId;
    Array.prototype.forEach.call(list.querySelectorAll(".queue-item"), function (li) {
      li.classList.toggle("is-selected", li.dataset.publicId === publicId);
    });
    var url = root.dataset.panelBase + encodeURIComponent(publicId) + "?partial=1";
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (res) {
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.text();
      })
      .then(function (html) {
        // Server-rendered by our own templates, with every value escaped.
        panel.innerHTML = html;
        var art = panel.querySelector(".request-panel");
        if (map && art && art.dataset.lat) {
          map.setView([parseFloat(art.dataset.lat), parseFloat(art.dataset.lon)],
            Math.max(map.getZoom(), 15));
        }
        panel.dataset.loaded = publicId;
      })
      .catch(function (err) {
        panel.textContent = "";
        panel.appendChild(el("p", "form-error", "Could not open " + publicId + ": " + err.message));
      });
  }

  function panelMessage(text, isError) {
    var art = panel.querySelector(".request-panel") || panel;
    var old = panel.querySelector(".panel-message");
    if (old) old.remove();
    var p = el("p", "panel-message " + (isError ? "form-error" : "form-ok"), text);
    p.setAttribute("role", isError ? "alert" : "status");
    art.insertBefore(p, art.firstChild);
  }

  panel.addEventListener("submit", function (ev) {
    var form = ev.target.closest("form.js-action");
    if (!form) return;
    ev.preventDefault();
    var button = form.querySelector('button[type="submit"]');
    if (button) button.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrf }
    })
      .then(function (res) {
        return res.json().catch(function () { return { error: "HTTP " + res.status }; })
          .then(function (body) { return { ok: res.ok, body: body }; });
      })
      .then(function (r) {
        if (!r.ok) {
          if (button) button.disabled = false;
          panelMessage(r.body.error || "That did not work", true);
          return null;
        }
        var publicId = r.body.public_id;
        return Promise.all([reloadList(), openPanel(publicId)]).then(function () {
          panelMessage(r.body.message, false);
        });
      })
      .catch(function (err) {
        if (button) button.disabled = false;
        panelMessage(err.message, true);
      });
  });

  panel.addEventListener("click", function (ev) {
    var fill = ev.target.closest(".js-fill");
    if (fill) {
      ev.preventDefault(); // a link's address is for pages without this script
      var input = fill.closest("form").elements[fill.dataset.target];
      if (input) input.value = fill.dataset.value;
      return;
    }
    if (ev.target.closest(".js-pick-pin")) {
      pickingPin = true;
      if (mapBox) mapBox.classList.add("is-picking");
      return;
    }
    var open = ev.target.closest(".js-open");
    if (open) {
      ev.preventDefault();
      openPanel(open.dataset.publicId);
    }
  });

  list.addEventListener("click", function (ev) {
    var li = ev.target.closest(".queue-item");
    if (!li || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    ev.preventDefault();
    li.classList.remove("is-new");
    openPanel(li.dataset.publicId);
  });

  filtersForm.addEventListener("change", function () {
    var params = filterParams();
    history.replaceState(null, "", "?" + params.toString());
    reloadList();
  });
  filtersForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var params = filterParams();
    history.replaceState(null, "", "?" + params.toString());
    reloadList();
  });

  soundButton.addEventListener("click", function () {
    soundOn = !soundOn;
    soundButton.setAttribute("aria-pressed", soundOn ? "true" : "false");
    soundButton.textContent = soundOn ? "Sound on" : "Sound off";
    if (soundOn) ensureAudio();
  });
  // Browsers only let a page make sound after the user has touched it once.
  document.addEventListener("pointerdown", function () {
    var ctx = soundOn ? ensureAudio() : null;
    if (ctx && ctx.state === "suspended" && ctx.resume) ctx.resume();
  }, { once: true });

  banner.addEventListener("click", function () { banner.hidden = true; });

  reloadList().catch(function () { /* the server-rendered list stays */ });
  root.dataset.live = "1";
  schedule();
})();
