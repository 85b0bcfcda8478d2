/* Call-taker form: show only the chosen category's questions; find the place from what
 * the caller says (the geocoder's candidates as the agent types), or by clicking the map
 * (the pin is put into words by reverse geocoding); show open requests of the category
 * near the pin, which the caller can follow instead of a new request. */
(function () {
  "use strict";

  var form = document.getElementById("agent-form");
  if (!form) return;
  var select = document.getElementById("service-select");
  var latInput = document.getElementById("agent-lat");
  var lonInput = document.getElementById("agent-lon");
  var place = document.getElementById("agent-place");
  var addressInput = document.getElementById("agent-address");
  var addressId = document.getElementById("agent-address-id");
  var list = document.getElementById("place-candidates");
  var pinPlace = document.getElementById("pin-place");
  var nearby = document.getElementById("agent-nearby");
  var nearbyList = document.getElementById("nearby-list");
  var later = document.getElementById("place-later");
  var csrf = form.querySelector("input[name=csrf_token]").value;

  function showQuestions() {
    Array.prototype.forEach.call(form.querySelectorAll(".questions"), function (fs) {
      var on = fs.dataset.service === select.value;
      fs.hidden = !on;
      fs.disabled = !on; // a hidden category's answers are not sent
    });
  }
  select.addEventListener("change", showQuestions);
  showQuestions();

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function getJSON(url, done) {
    var xhr = new XMLHttpRequest();
    xhr.open("GET", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.onload = function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      done(xhr.status, body);
    };
    xhr.onerror = function () { done(0, null); };
    xhr.send();
    return xhr;
  }

  var box = document.getElementById("agent-map");
  var map = null;
  var marker = null;
  var previews = null;
  if (window.L && box) {
    map = L.map(box);
    var tiles = form.dataset.tiles;
    if (tiles && tiles.toLowerCase() !== "none") {
      L.tileLayer(tiles, { maxZoom: 19, attribution: form.dataset.attribution }).addTo(map);
    }
    var bounds = JSON.parse(form.dataset.bounds || "null");
    if (bounds) map.fitBounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]]);
    else map.setView([0, 0], 2);
    previews = L.layerGroup().addTo(map);
  }
  window.civicpinAgentMap = map; // the page's tests read the centre

  function pin(lat, lon, centre) {
    if (!map) return;
    if (marker) marker.setLatLng([lat, lon]);
    else {
      marker = L.marker([lat, lon], { draggable: true }).addTo(map);
      marker.on("dragend", function () {
        var at = marker.getLatLng();
        setPoint(at.lat, at.lng);
        describe(at.lat, at.lng);
      });
    }
    if (centre) map.setView([lat, lon], Math.max(map.getZoom() || 0, 18));
  }

  function setPoint(lat, lon) {
    latInput.value = Number(lat).toFixed(6);
    lonInput.value = Number(lon).toFixed(6);
    if (later) later.checked = false;
    findNearby();
  }

  // --- candidates as the agent types
  var pending = null;
  var timer = null;
  var lastQuery = "";

  function choose(c) {
    addressInput.value = c.address;
    addressId.value = c.address_id || "";
    setPoint(c.lat, c.lon);
    pin(c.lat, c.lon, true);
    if (previews) previews.clearLayers();
    list.textContent = "";
    pinPlace.textContent = "Chosen: " + c.address + " (" + c.match_words + ")";
  }

  function showCandidates(body) {
    list.textContent = "";
    if (previews) previews.clearLayers();
    if (!body || !body.candidates || !body.candidates.length) {
      list.appendChild(el("li", "muted", "No candidate: check the address with the caller, or put the pin on the map."));
      return;
    }
    body.candidates.forEach(function (c, i) {
      var li = el("li", "place-candidate" + (i === 0 ? " best" : ""));
      var btn = el("button", "link-button", c.address);
      btn.type = "button";
      btn.dataset.address = c.address;
      btn.addEventListener("click", function () { choose(c); });
      li.appendChild(btn);
      li.appendChild(el("span", "muted", " · " + c.score_words + " (" + c.score.toFixed(2) + ") · " + c.match_words));
      list.appendChild(li);
      if (previews) {
        L.circleMarker([c.lat, c.lon], { radius: i === 0 ? 8 : 5 })
          .bindTooltip(c.address).on("click", function () { choose(c); }).addTo(previews);
      }
    });
    var best = body.candidates[0];
    if (map) map.setView([best.lat, best.lon], Math.max(map.getZoom() || 0, 17));
    if (body.confident) {
      // A confident best candidate is the pin until the agent picks another.
      addressId.value = best.address_id || "";
      setPoint(best.lat, best.lon);
      pin(best.lat, best.lon, true);
      pinPlace.textContent = "Best candidate: " + best.address + " (" + best.match_words + ")";
      autoPicked = { query: addressInput.value.trim(), lat: latInput.value, lon: lonInput.value, address: best.address };
    }
  }

  // Sent as it stands, a confidently placed text goes with its normalised address.
  var autoPicked = null;
  form.addEventListener("submit", function () {
    if (autoPicked && addressInput.value.trim() === autoPicked.query &&
        latInput.value === autoPicked.lat && lonInput.value === autoPicked.lon) {
      addressInput.value = autoPicked.address;
    }
  });

  function lookUp() {
    var q = addressInput.value.trim();
    if (q === lastQuery) return;
    lastQuery = q;
    if (pending) pending.abort();
    if (q.length < 3) { list.textContent = ""; return; }
    pending = getJSON(place.dataset.placesUrl + "?q=" + encodeURIComponent(q), function (status, body) {
      pending = null;
      if (status === 200) showCandidates(body);
      else if (status === 400 && body && body.error) {
        list.textContent = "";
        list.appendChild(el("li", "field-error", body.error));
      }
    });
  }

  addressInput.addEventListener("input", function () {
    // Typed text is a new place: the old pin and address id no longer hold.
    addressId.value = "";
    latInput.value = "";
    lonInput.value = "";
    clearTimeout(timer);
    timer = setTimeout(lookUp, 250);
  });

  // --- the pin put into words
  function describe(lat, lon) {
    var url = place.dataset.reverseUrl + "?lat=" + lat + "&lon=" + lon;
    getJSON(url, function (status, body) {
      if (status !== 200 || !body) return;
      if (body.place) {
        addressInput.value = body.place.address;
        lastQuery = body.place.address.trim();
        addressId.value = body.place.match_type === "address_point" ? (body.place.address_id || "") : "";
        pinPlace.textContent = "Pin: " + body.place.address;
      } else {
        addressId.value = "";
        pinPlace.textContent = "Pin: no address near this spot";
      }
    });
  }

  if (map) {
    map.on("click", function (ev) {
      setPoint(ev.latlng.lat, ev.latlng.lng);
      pin(ev.latlng.lat, ev.latlng.lng, false);
      list.textContent = "";
      if (previews) previews.clearLayers();
      describe(ev.latlng.lat, ev.latlng.lng);
    });
  }
  function typed() {
    var lat = parseFloat(latInput.value);
    var lon = parseFloat(lonInput.value);
    if (isFinite(lat) && isFinite(lon)) {
      pin(lat, lon, false);
      findNearby();
    }
  }
  latInput.addEventListener("change", function () { addressId.value = ""; typed(); });
  lonInput.addEventListener("change", function () { addressId.value = ""; typed(); });

  // The no-script list of candidates: picking one moves the pin too.
  Array.prototype.forEach.call(form.querySelectorAll("input[name=candidate]"), function (radio) {
    radio.addEventListener("change", function () {
      var lat = parseFloat(radio.dataset.lat), lon = parseFloat(radio.dataset.lon);
      if (isFinite(lat) && isFinite(lon)) pin(lat, lon, true);
    });
  });

  // --- open requests nearby for the chosen category
  function followForm(c) {
    var f = el("form", "follow");
    f.method = "post";
    f.action = c.follow_url;
    var t = el("input");
    t.type = "hidden"; t.name = "csrf_token"; t.value = csrf;
    f.appendChild(t);
    var ch = el("input");
    ch.type = "hidden"; ch.name = "channel";
    ch.value = form.querySelector("select[name=channel]").value;
    f.appendChild(ch);
    var em = el("input");
    em.type = "hidden"; em.name = "email";
    em.value = (form.querySelector("input[name=contact_email]").value || "").trim();
    f.appendChild(em);
    var b = el("button", null, "Caller follows " + c.public_id + " instead");
    b.type = "submit";
    f.appendChild(b);
    return f;
  }

  function findNearby() {
    var lat = parseFloat(latInput.value), lon = parseFloat(lonInput.value);
    if (!select.value || !isFinite(lat) || !isFinite(lon)) { nearby.hidden = true; return; }
    var url = place.dataset.duplicatesUrl + "?service=" + encodeURIComponent(select.value) +
      "&lat=" + lat + "&lon=" + lon;
    getJSON(url, function (status, body) {
      nearbyList.textContent = "";
      if (status !== 200 || !body || !body.candidates.length) { nearby.hidden = true; return; }
      body.candidates.forEach(function (c) {
        var li = el("li", "result");
        li.dataset.publicId = c.public_id;
        var p = el("p");
        p.appendChild(el("strong", "mono", c.public_id));
        p.appendChild(document.createTextNode(" · " + c.service + " · " + c.status_label + " · " +
          c.distance_m + " m away · " + c.supporters + " follower" + (c.supporters === 1 ? "" : "s")));
        li.appendChild(p);
        li.appendChild(el("p", null, (c.address || "(no address)") + (c.description ? " · " + c.description : "")));
        li.appendChild(followForm(c));
        nearbyList.appendChild(li);
      });
      nearby.hidden = false;
    });
  }
  select.addEventListener("change", findNearby);

  /* Category suggestions from what the caller says (the city's classifier); one click
   * picks a category, as choosing it in the list would. */
  var description = document.getElementById("agent-description");
  var suggestions = document.getElementById("category-suggestions");
  var suggestionList = document.getElementById("category-suggestion-list");
  var suggestTimer = null;
  var suggestPending = null;
  function pickCategory(code) {
    select.value = code;
    select.dispatchEvent(new Event("change"));
  }
  function suggestCategories() {
    var text = description.value.trim();
    if (suggestPending) suggestPending.abort();
    if (text.length < 3) { suggestions.hidden = true; return; }
    var url = suggestions.dataset.url + "?text=" + encodeURIComponent(text.slice(0, 1000));
    suggestPending = getJSON(url, function (status, body) {
      suggestPending = null;
      suggestionList.textContent = "";
      if (status !== 200 || !body || !body.suggestions.length) { suggestions.hidden = true; return; }
      body.suggestions.forEach(function (s) {
        var btn = el("button", "category-suggestion", s.name + " (" + s.percent + " %)");
        btn.type = "button";
        btn.dataset.code = s.code;
        btn.addEventListener("click", function () { pickCategory(s.code); });
        suggestionList.appendChild(btn);
      });
      suggestions.hidden = false;
    });
  }
  if (description && suggestions) {
    description.addEventListener("input", function () {
      clearTimeout(suggestTimer);
      suggestTimer = setTimeout(suggestCategories, 300);
    });
  }

  typed();
})();
