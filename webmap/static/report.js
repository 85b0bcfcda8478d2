/* civicpin resident pages: the report form's map and helpers, the tracking page map, and
 * the tracking page's "show us where" for a request that arrived without a location.
 *
 * The report form works as a plain HTML form; this script adds the pin (tap, drag, your
 * location, the place search with its candidates, a photo's GPS), the address under the
 * pin (reverse geocoding: "12 ELM ST" or "near MAIN ST and 5TH ST"), the category notice
 * and help article with "continue anyway", the category's numbered assets near the pin
 * (tap one, or type its number), and the list of possible duplicates. Text from
 * the server is only ever set as textContent (never as HTML). No inline script: the page
 * passes its settings in data- attributes and a JSON <script type="application/json">.
 */
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function getJSON(url, params, signal) {
    return fetch(url + "?" + new URLSearchParams(params).toString(), {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      signal: signal
    }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
        return body;
      });
    });
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  }

  // Only the newest of a series of look-ups may update the page.
  function latest() {
    var controller = null;
    return function () {
      if (controller) controller.abort();
      controller = new AbortController();
      return controller.signal;
    };
  }

  function metres(lat1, lon1, lat2, lon2) {
    var r = 6371000, rad = Math.PI / 180;
    var dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    var a = Math.sin(dlat / 2) * Math.sin(dlat / 2) +
      Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dlon / 2) * Math.sin(dlon / 2);
    return 2 * r * Math.asin(Math.sqrt(a));
  }

  function baseMap(container) {
    var map = L.map(container, { minZoom: 3, maxZoom: 19 });
    var tiles = container.getAttribute("data-tiles");
    if (tiles && tiles.toLowerCase() !== "none") {
      L.tileLayer(tiles, {
        attribution: container.getAttribute("data-attribution") || "",
        maxZoom: 19
      }).addTo(map);
    }
    return map;
  }

  // ------------------------------------------------------------------------- the pin

  // The pin, shared by the report form and the tracking page's "show us where": the map
  // (tap, drag), "use my location", the address combobox, the coordinate fields, and the
  // nearest address under the pin. onPin() runs after each move.
  function initWhere(form, mapEl, onPin) {
    var city = form.getAttribute("data-city");
    var latIn = $("lat"), lonIn = $("lon"), addrIn = $("address"), pinInfo = $("pin-info");
    var addrIdIn = $("address-id");
    var marker = null, accuracyCircle = null;
    var reverseSignal = latest(), searchSignal = latest();

    var map = baseMap(mapEl);
    var bounds = JSON.parse(mapEl.getAttribute("data-bounds") || "null");
    if (bounds) map.fitBounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]]);
    else map.setView([0, 0], 2);
    var boundary = JSON.parse(($("city-boundary") || {}).textContent || "null");
    if (boundary) {
      L.geoJSON(boundary, {
        style: { color: "#1a202c", weight: 2, fill: false },
        interactive: false
      }).addTo(map);
    }

    function say(node, text, isError) {
      node.textContent = text;
      node.classList.toggle("rp-pin-info--error", !!isError);
    }

    function placeMarker(lat, lon) {
      if (marker) {
        marker.setLatLng([lat, lon]);
        return;
      }
      marker = L.marker([lat, lon], {
        draggable: true, autoPan: true, keyboard: true,
        title: "Where the problem is (drag to move)", alt: "Report location"
      }).addTo(map);
      marker.on("dragend", function () {
        var p = marker.getLatLng();
        setPin(p.lat, p.lng, "drag");
      });
    }

    // The address under the pin: an address near it, or "near MAIN ST and 5TH ST". A place
    // chosen from the search keeps its own words (source "address").
    function lookupAddress(lat, lon, source) {
      if (source !== "address") say(pinInfo, "Looking up the address of this spot…");
      getJSON(form.getAttribute("data-reverse-url"), { city: city, lat: lat, lon: lon },
        reverseSignal())
        .then(function (body) {
          form.setAttribute("data-inside", body.inside ? "1" : "0");
          if (!body.inside) {
            if (source !== "address") addrIn.value = "";
            say(pinInfo, body.message, true);
            return;
          }
          if (source === "address") return;
          addrIn.value = body.address || "";
          if (addrIdIn) addrIdIn.value = body.address_id || "";
          if (!body.address) {
            say(pinInfo, "Pin placed. There is no street name known near this spot.");
          } else if (body.match_type === "near") {
            say(pinInfo, "Pin placed " + body.address + ".");
          } else {
            say(pinInfo, "Nearest address: " + body.address + " (" +
              Math.round(body.distance_m) + " m from the pin)");
          }
        })
        .catch(function (err) {
          if (err.name !== "AbortError") say(pinInfo, "Could not look up the address: " + err.message);
        });
    }

    function setPin(lat, lon, source) {
      lat = Number(lat);
      lon = Number(lon);
      if (!isFinite(lat) || !isFinite(lon)) return;
      // A moved pin is no longer on the address point chosen from the search.
      if (source !== "address" && addrIdIn) addrIdIn.value = "";
      placeMarker(lat, lon);
      latIn.value = lat.toFixed(6);
      lonIn.value = lon.toFixed(6);
      form.setAttribute("data-pin", source);
      if (source !== "drag" && source !== "click") {
        map.setView([lat, lon], Math.max(map.getZoom(), 17));
      }
      if (accuracyCircle && source !== "gps") {
        map.removeLayer(accuracyCircle);
        accuracyCircle = null;
      }
      lookupAddress(lat, lon, source);
      onPin(lat, lon, source);
    }

    map.on("click", function (e) { setPin(e.latlng.lat, e.latlng.lng, "click"); });

    function coordsChanged() {
      var lat = parseFloat(latIn.value), lon = parseFloat(lonIn.value);
      if (isFinite(lat) && isFinite(lon) && Math.abs(lat) <= 90 && Math.abs(lon) <= 180) {
        setPin(lat, lon, "coords");
      }
    }
    latIn.addEventListener("change", coordsChanged);
    lonIn.addEventListener("change", coordsChanged);

    // "Use my location", with the accuracy the device reports.
    $("locate").addEventListener("click", function () {
      var status = $("locate-status");
      if (!navigator.geolocation) {
        status.textContent = "This browser cannot share its location: search an address instead.";
        return;
      }
      status.textContent = "Finding your location…";
      navigator.geolocation.getCurrentPosition(function (pos) {
        var lat = pos.coords.latitude, lon = pos.coords.longitude;
        var accuracy = Math.round(pos.coords.accuracy);
        setPin(lat, lon, "gps");
        if (accuracyCircle) map.removeLayer(accuracyCircle);
        accuracyCircle = L.circle([lat, lon], {
          radius: accuracy, weight: 1, color: "#2b6cb0", fillOpacity: 0.08, interactive: false
        }).addTo(map);
        status.textContent = "Pin at your location, accurate to about " + accuracy +
          " m. Drag it if it is not quite right.";
      }, function (err) {
        status.textContent = err.code === 1
          ? "You did not allow the location: tap the map or search an address instead."
          : "Your location could not be found (" + err.message + "): tap the map instead.";
      }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
    });

    // Place search: a combobox whose listbox holds the geocoder's candidates, best first,
    // each with its match type in words (arrow keys, Enter, Escape). Choosing one centres
    // the map and drops the pin there; an address point's city id goes with the form.
    var q = $("address-q"), list = $("address-list"), suggestNote = $("address-suggest-note");
    var searchStatus = $("address-status");
    var matches = [], active = -1;
    var MATCH_WORDS = {
      address_point: "exact address",
      range: "estimated along the street",
      intersection: "intersection",
      street: "street only"
    };

    function closeList() {
      list.hidden = true;
      suggestNote.hidden = true;
      q.setAttribute("aria-expanded", "false");
      q.removeAttribute("aria-activedescendant");
    }

    function highlight(i) {
      active = i;
      Array.prototype.forEach.call(list.children, function (li, j) {
        li.setAttribute("aria-selected", j === i ? "true" : "false");
      });
      if (i >= 0 && list.children[i]) {
        q.setAttribute("aria-activedescendant", list.children[i].id);
        list.children[i].scrollIntoView({ block: "nearest" });
      }
    }

    function choose(i) {
      var m = matches[i];
      if (!m) return;
      q.value = m.address;
      closeList();
      addrIn.value = m.address;
      if (addrIdIn) addrIdIn.value = m.address_id || "";
      setPin(m.lat, m.lon, "address");
      say(pinInfo, "Pin placed at " + m.address + " (" +
        (m.match_label || MATCH_WORDS[m.match_type] || m.match_type) + ").");
    }

    function showMatches(body) {
      list.textContent = "";
      matches = body.candidates || [];
      active = -1;
      suggestNote.hidden = !(matches.length && !body.confident);
      if (!matches.length) {
        var none = el("li", "rp-listbox__empty",
          "No place found. Check the spelling, or put the pin on the map.");
        none.setAttribute("role", "option");
        none.setAttribute("aria-disabled", "true");
        none.id = "addr-none";
        list.appendChild(none);
      }
      matches.forEach(function (m, i) {
        var option = el("li", "rp-listbox__item");
        option.appendChild(el("span", "rp-listbox__text", m.address));
        option.appendChild(el("span", "rp-visually-hidden", ", "));
        option.appendChild(el("span", "rp-listbox__kind",
          m.match_label || MATCH_WORDS[m.match_type] || m.match_type));
        option.id = "addr-opt-" + i;
        option.setAttribute("role", "option");
        option.setAttribute("aria-selected", "false");
        option.setAttribute("data-match-type", m.match_type);
        // mousedown, not click: it comes before the input's blur closes the list.
        option.addEventListener("mousedown", function (e) { e.preventDefault(); choose(i); });
        list.appendChild(option);
      });
      list.hidden = false;
      q.setAttribute("aria-expanded", "true");
      searchStatus.textContent = !matches.length ? "No place found." :
        (matches.length === 1 ? "1 place found" : matches.length + " places found") +
        (body.confident ? ": the first is the best match." : ": choose the right one.");
    }

    var search = debounce(function () {
      var text = q.value.trim();
      if (text.length < 3) {
        closeList();
        return;
      }
      getJSON(form.getAttribute("data-search-url"), { city: city, q: text }, searchSignal())
        .then(showMatches)
        .catch(function (err) {
          if (err.name === "AbortError") return;
          closeList();
          searchStatus.textContent = err.message;
          say(pinInfo, err.message, true);
        });
    }, 250);
    q.addEventListener("input", search);
    q.addEventListener("keydown", function (e) {
      if (e.key === "Enter") {
        e.preventDefault(); // Enter picks a place; it never sends the report
        if (!list.hidden && matches.length) choose(active >= 0 ? active : 0);
        return;
      }
      if (list.hidden) return;
      if (e.key === "ArrowDown") {
        e.preventDefault();
        highlight(Math.min(matches.length - 1, active + 1));
      } else if (e.key === "ArrowUp") {
        e.preventDefault();
        highlight(Math.max(0, active - 1));
      } else if (e.key === "Escape") {
        closeList();
      }
    });
    q.addEventListener("blur", function () { setTimeout(closeList, 150); });

    // The server's "which place do you mean?" list (after sending an unsure address):
    // ticking one shows it on the map at once.
    document.querySelectorAll("input[name=place_choice]").forEach(function (radio) {
      radio.addEventListener("change", function () {
        addrIn.value = radio.getAttribute("data-address") || "";
        if (addrIdIn) addrIdIn.value = radio.getAttribute("data-address-id") || "";
        setPin(radio.getAttribute("data-lat"), radio.getAttribute("data-lon"), "address");
        say(pinInfo, "Pin placed at " + addrIn.value + ".");
      });
    });

    // Shown again after an error: the pin where it was.
    function restore() {
      var lat0 = parseFloat(latIn.value), lon0 = parseFloat(lonIn.value);
      if (isFinite(lat0) && isFinite(lon0)) {
        placeMarker(lat0, lon0);
        map.setView([lat0, lon0], 17);
        lookupAddress(lat0, lon0, addrIn.value ? "address" : "restore");
      }
    }

    return { map: map, setPin: setPin, restore: restore, say: say, pinInfo: pinInfo };
  }

  // ------------------------------------------------------------------ the report form

  function initReport(form) {
    var city = form.getAttribute("data-city");
    var mapEl = $("report-map");
    var latIn = $("lat"), lonIn = $("lon");
    var select = $("service_code"), rest = $("report-rest");
    var continued = {};
    var dupSignal = latest();
    var where = initWhere(form, mapEl, function (lat, lon, source) {
      refreshDuplicates();
      pinMovedForAssets(lat, lon, source);
    });
    var setPin = where.setPin;

    // The category's numbered assets (street lights by pole number...): markers near the
    // pin; tapping one (or typing its number) chooses it and the pin snaps to it.
    var assetField = $("asset-field"), assetIn = $("asset_ref");
    var assetStatus = $("asset-status"), assetTitle = $("asset-title");
    var assetGroup = L.layerGroup().addTo(where.map);
    var assetSignal = latest(), findSignal = latest();
    var chosenAsset = null; // {ref, label, lat, lon}

    function layerTitle() {
      var option = select.options[select.selectedIndex];
      return (option && option.getAttribute("data-asset-title")) || "";
    }

    function assetName(a) {
      return layerTitle() + " " + a.ref + (a.label && a.label !== a.ref ? " (" + a.label + ")" : "");
    }

    function sameRef(a, b) {
      return String(a).trim().toUpperCase() === String(b).trim().toUpperCase();
    }

    function drawAssets(assets) {
      assetGroup.clearLayers();
      assets.forEach(function (a) {
        var chosen = chosenAsset && sameRef(chosenAsset.ref, a.ref);
        var marker = L.marker([a.lat, a.lon], {
          icon: L.divIcon({
            className: "rp-asset" + (chosen ? " rp-asset--chosen" : ""),
            iconSize: [20, 20]
          }),
          title: assetName(a) + (chosen ? ", chosen" : ", tap to choose"),
          keyboard: true,
          riseOnHover: true
        });
        marker.on("click", function () { chooseAsset(a); });
        marker.addTo(assetGroup);
        var node = marker.getElement();
        if (node) {
          node.setAttribute("role", "button");
          node.setAttribute("aria-label", marker.options.title);
          node.setAttribute("data-ref", a.ref);
          if (chosen) node.setAttribute("aria-pressed", "true");
        }
      });
      form.setAttribute("data-assets", String(assets.length));
    }

    function refreshAssets() {
      var code = select.value;
      var lat = parseFloat(latIn.value), lon = parseFloat(lonIn.value);
      if (!code || !layerTitle() || !isFinite(lat) || !isFinite(lon)) {
        assetGroup.clearLayers();
        return;
      }
      getJSON(form.getAttribute("data-assets-near-url"),
        { city: city, service: code, lat: lat, lon: lon }, assetSignal())
        .then(function (body) {
          drawAssets(body.assets);
          if (!chosenAsset) {
            assetStatus.textContent = body.assets.length
              ? body.assets.length + " " + layerTitle().toLowerCase() +
                (body.assets.length === 1 ? "" : "s") + " near the pin: tap the one with the problem, or type its number."
              : "No " + layerTitle().toLowerCase() + " near the pin: type its number if you know it.";
          }
        })
        .catch(function (err) {
          if (err.name !== "AbortError") assetGroup.clearLayers();
        });
    }

    function chooseAsset(a) {
      chosenAsset = a;
      assetIn.value = a.ref;
      assetIn.removeAttribute("aria-invalid");
      setPin(a.lat, a.lon, "asset");
      assetStatus.textContent = assetName(a) + " chosen: the pin is on it.";
    }

    // A pin moved away from the chosen asset lets it go: the report is then about the spot.
    function pinMovedForAssets(lat, lon, source) {
      if (chosenAsset && source !== "asset" && isFinite(chosenAsset.lat) &&
          metres(lat, lon, chosenAsset.lat, chosenAsset.lon) > 30) {
        assetStatus.textContent = "The pin moved away from " + assetName(chosenAsset) +
          ": tap it again if the report is about it.";
        chosenAsset = null;
        assetIn.value = "";
      }
      refreshAssets();
    }

    function findAsset() {
      var ref = assetIn.value.trim();
      if (!ref) {
        chosenAsset = null;
        refreshAssets();
        return;
      }
      if (chosenAsset && sameRef(chosenAsset.ref, ref)) return;
      assetStatus.textContent = "Looking up " + layerTitle().toLowerCase() + " " + ref + "…";
      getJSON(form.getAttribute("data-assets-find-url"),
        { city: city, service: select.value, ref: ref }, findSignal())
        .then(function (body) { chooseAsset(body.asset); })
        .catch(function (err) {
          if (err.name === "AbortError") return;
          chosenAsset = null;
          assetIn.setAttribute("aria-invalid", "true");
          assetStatus.textContent = err.message;
        });
    }
    assetIn.addEventListener("change", findAsset);
    assetIn.addEventListener("keydown", function (e) {
      if (e.key === "Enter") {
        e.preventDefault(); // Enter looks the number up; it never sends the report
        findAsset();
      }
    });

    function showAssetField() {
      var title = layerTitle();
      assetField.hidden = !title;
      assetIn.disabled = !title;
      if (title) {
        assetTitle.textContent = title;
      } else {
        chosenAsset = null;
        assetIn.value = "";
        assetStatus.textContent = "";
      }
      refreshAssets();
    }
    if (assetIn.value) chosenAsset = { ref: assetIn.value, lat: NaN, lon: NaN };

    // Categories: a notice first (with "continue anyway"), then that category's questions.
    function showCategory(focusQuestions) {
      var code = select.value;
      document.querySelectorAll(".rp-notice[data-service]").forEach(function (n) { n.hidden = true; });
      document.querySelectorAll(".rp-questions").forEach(function (box) {
        var on = box.getAttribute("data-service") === code;
        box.hidden = !on;
        box.querySelector("fieldset").disabled = !on;
      });
      var option = select.options[select.selectedIndex];
      $("contact-required-note").hidden =
        !(option && option.getAttribute("data-contact-required") === "1");
      // The category's location mode: no place asked (the step goes), or an optional one.
      var placeMode = (option && option.getAttribute("data-location-mode")) || "required";
      $("step-where").hidden = placeMode === "none";
      $("where-optional-note").hidden = placeMode !== "optional";
      showAssetField();
      if (!code) {
        rest.hidden = true;
        return;
      }
      var notice = $("notice-" + code);
      if (notice && !continued[code]) {
        notice.hidden = false;
        rest.hidden = true;
        return;
      }
      rest.hidden = false;
      if (focusQuestions) {
        var first = rest.querySelector(".rp-questions:not([hidden]) input, " +
          ".rp-questions:not([hidden]) textarea, #description");
        if (first) first.focus();
      }
      refreshDuplicates();
    }
    select.addEventListener("change", function () { showCategory(false); });
    document.querySelectorAll(".rp-continue").forEach(function (button) {
      button.addEventListener("click", function () {
        continued[button.getAttribute("data-service")] = true;
        showCategory(true);
      });
    });
    if (select.value && !rest.hidden) continued[select.value] = true; // shown again after an error

    var filter = $("category-filter");
    filter.addEventListener("input", function () {
      var text = filter.value.trim().toLowerCase();
      var shown = 0, only = null;
      Array.prototype.forEach.call(select.options, function (o) {
        if (!o.value) return;
        var hay = (o.textContent + " " + (o.getAttribute("data-keywords") || "")).toLowerCase();
        var ok = !text || hay.indexOf(text) !== -1;
        o.hidden = !ok;
        o.disabled = !ok;
        if (ok) {
          shown += 1;
          only = o;
        }
      });
      select.querySelectorAll("optgroup").forEach(function (group) {
        group.hidden = !group.querySelector("option:not([hidden])");
      });
      var message = "";
      if (text) {
        message = shown === 0 ? "No category matches." :
          shown === 1 ? "1 category matches: " + only.textContent + " (chosen)." :
          shown + " categories match: choose one below.";
      }
      $("category-filter-status").textContent = message;
      if (shown === 1 && select.value !== only.value) {
        select.value = only.value;
        showCategory(false);
      }
    });

    // Photos: checked before upload, and a GPS position is offered for the pin.
    var photos = $("photos");
    photos.addEventListener("change", function () {
      var files = Array.prototype.slice.call(photos.files);
      var maxCount = Number(photos.getAttribute("data-max-photos"));
      var maxBytes = Number(photos.getAttribute("data-max-bytes"));
      var problems = [];
      if (files.length > maxCount) problems.push("Choose at most " + maxCount + " photos.");
      files.forEach(function (f) {
        if (f.size > maxBytes) {
          problems.push(f.name + " is " + (f.size / 1048576).toFixed(1) + " MB; the limit is " +
            Math.round(maxBytes / 1048576) + " MB.");
        } else if (f.type && !/^image\/(jpeg|png|webp|gif)$/.test(f.type)) {
          problems.push(f.name + " is not a JPEG, PNG, WebP or GIF image.");
        }
      });
      var clientError = $("photos-client-error");
      clientError.textContent = problems.join(" ");
      clientError.hidden = problems.length === 0;
      var listEl = $("photo-list");
      listEl.textContent = "";
      files.forEach(function (f) {
        listEl.appendChild(el("li", null, f.name + " (" + Math.max(1, Math.round(f.size / 1024)) + " kB)"));
      });
      if (window.exifr) readPhotoLocation(files);
    });

    function readPhotoLocation(files) {
      var candidates = files.filter(function (f) {
        return /jpe?g|tiff?/i.test(f.type || "") || /\.(jpe?g|tiff?)$/i.test(f.name);
      });
      var i = 0;
      (function next() {
        if (i >= candidates.length) return;
        var file = candidates[i++];
        window.exifr.gps(file).then(function (gps) {
          if (gps && isFinite(gps.latitude) && isFinite(gps.longitude)) {
            suggestPhotoLocation(gps.latitude, gps.longitude, file.name);
          } else {
            next();
          }
        }).catch(next);
      })();
    }

    function suggestPhotoLocation(lat, lon, name) {
      var note = $("photo-location");
      note.textContent = "";
      note.hidden = false;
      var pinLat = parseFloat(latIn.value), pinLon = parseFloat(lonIn.value);
      if (!isFinite(pinLat) || !isFinite(pinLon)) {
        setPin(lat, lon, "photo");
        note.textContent = "We put the pin where " + name + " was taken (from its location " +
          "data). Check it on the map and drag it if that is not right.";
        return;
      }
      if (metres(pinLat, pinLon, lat, lon) < 25) {
        note.textContent = name + " was taken where your pin is.";
        return;
      }
      note.appendChild(document.createTextNode(name + " was taken " +
        Math.round(metres(pinLat, pinLon, lat, lon)) + " m from your pin. "));
      var use = el("button", "rp-button rp-button--secondary", "Use the photo's location");
      use.type = "button";
      use.addEventListener("click", function () {
        setPin(lat, lon, "photo");
        note.textContent = "Pin moved to where " + name + " was taken.";
      });
      note.appendChild(use);
    }

    // Possible duplicates: same category, near the pin, open, recent.
    var dupSection = $("duplicates"), dupList = $("duplicates-list"), dupStatus = $("duplicates-status");

    function duplicateItem(d) {
      var item = el("li", "rp-dupe");
      if (d.thumb_url) {
        var img = el("img", "rp-dupe__thumb");
        img.src = d.thumb_url;
        img.alt = "Photo of report " + d.public_id;
        img.width = 96;
        img.height = 72;
        item.appendChild(img);
      }
      var text = el("div", "rp-dupe__text");
      var title = el("p", "rp-dupe__title");
      title.appendChild(el("strong", null, d.service));
      title.appendChild(document.createTextNode(" · "));
      title.appendChild(el("span", "rp-status rp-status--" + d.status, d.status_label));
      text.appendChild(title);
      text.appendChild(el("p", "rp-dupe__meta", d.distance_m + " m away · reported " + d.age +
        " (" + d.reported + ")" + (d.supporters ? " · " + d.supporters + " following" : "")));
      if (d.address) text.appendChild(el("p", "rp-dupe__addr", d.address));
      if (d.description) text.appendChild(el("p", "rp-dupe__desc", d.description));
      var actions = el("p", "rp-dupe__actions");
      var link = el("a", null, "See report " + d.public_id);
      link.href = d.url;
      link.target = "_blank";
      link.rel = "noopener";
      actions.appendChild(link);
      var followButton = el("button", "rp-button rp-button--secondary", "Follow this one instead");
      followButton.type = "submit";
      followButton.setAttribute("formaction", d.follow_url);
      followButton.setAttribute("formmethod", "post");
      followButton.setAttribute("formenctype", "application/x-www-form-urlencoded");
      followButton.formNoValidate = true;
      followButton.setAttribute("aria-label", "Follow report " + d.public_id + " instead");
      actions.appendChild(followButton);
      text.appendChild(actions);
      item.appendChild(text);
      return item;
    }

    function refreshDuplicates() {
      var code = select.value;
      var lat = parseFloat(latIn.value), lon = parseFloat(lonIn.value);
      if (!code || !isFinite(lat) || !isFinite(lon)) {
        dupSection.hidden = true;
        return;
      }
      getJSON(form.getAttribute("data-duplicates-url"),
        { city: city, service: code, lat: lat, lon: lon }, dupSignal())
        .then(function (body) {
          dupList.textContent = "";
          body.candidates.forEach(function (d) { dupList.appendChild(duplicateItem(d)); });
          dupSection.hidden = body.candidates.length === 0;
          dupStatus.textContent = body.candidates.length === 1
            ? "1 similar open report nearby."
            : body.candidates.length + " similar open reports nearby.";
          form.setAttribute("data-duplicates", String(body.candidates.length));
        })
        .catch(function (err) {
          if (err.name !== "AbortError") dupStatus.textContent = "";
        });
    }

    form.addEventListener("submit", function (e) {
      var send = $("send");
      if (e.submitter === send) {
        send.disabled = true;
        send.textContent = "Sending…";
      }
    });

    // Shown again after an error: the pin where it was, the category's questions.
    where.restore();
    if (select.value) showCategory(false);
    var summary = $("error-summary");
    if (summary) summary.focus();
    mapEl.setAttribute("data-ready", "1");
  }

  // ------------------------------------------- the tracking page's "show us where"

  function initLocate(form) {
    var mapEl = $("locate-map");
    // The plain-HTML parts stand back for the map: it needs this script to work.
    form.querySelectorAll("[data-needs-js]").forEach(function (n) { n.hidden = false; });
    form.querySelectorAll("details[data-close-with-js]").forEach(function (d) { d.open = false; });
    var plain = $("locate-plain");
    if (plain && !plain.hasAttribute("data-keep-open")) plain.hidden = true;
    var where = initWhere(form, mapEl, function () {});
    if (!$("lat").value) {
      where.say(where.pinInfo, "Tap the map where the problem is, use your location, or search an address.");
    }
    where.restore();
    form.addEventListener("submit", function (e) {
      if (!$("lat").value || !$("lon").value) {
        e.preventDefault();
        where.say(where.pinInfo, "Put the pin on the map first: tap where the problem is.", true);
        mapEl.focus();
        return;
      }
      var save = $("save-location");
      save.disabled = true;
      save.textContent = "Saving…";
    });
    var section = $("locate-section");
    var summary = $("error-summary");
    if (summary) summary.focus();
    else if (section && section.hasAttribute("data-focus")) section.focus();
    mapEl.setAttribute("data-ready", "1");
  }

  // ------------------------------------------------------------- the tracking page map

  function initTrack(container) {
    var lat = Number(container.getAttribute("data-lat"));
    var lon = Number(container.getAttribute("data-lon"));
    var map = baseMap(container);
    map.setView([lat, lon], 17);
    map.scrollWheelZoom.disable();
    L.marker([lat, lon], { keyboard: false, interactive: false, alt: "Report location" }).addTo(map);
    container.setAttribute("data-ready", "1");
  }

  function start() {
    if (typeof L === "undefined") return;
    var form = $("report-form");
    if (form && $("report-map")) initReport(form);
    var locateForm = $("locate-form");
    if (locateForm && $("locate-map")) initLocate(locateForm);
    var track = $("track-map");
    if (track) initTrack(track);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
