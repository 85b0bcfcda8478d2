/* Call-taker form: show only the chosen category's questions, and set the location by
 * clicking the map (or typing lat/lon, which moves the marker). */
(function () {
  "use strict";

  var form = document.getElementById("agent-form");
  if (!form) return;
  var select = document.getElementById("service-select");
  var latInput = document.getElementById("agent-lat");
  var lonInput = document.getElementById("agent-lon");

  function showQuestions() {
    Array.prototype.forEach.call(form.querySelectorAll(".questions"), function (fs) {
      var on = fs.dataset.service === select.value;
      fs.hidden = !on;
      fs.disabled = !on; // a hidden category's answers are not sent
    });
  }
  select.addEventListener("change", showQuestions);
  showQuestions();

  var box = document.getElementById("agent-map");
  if (!window.L || !box) return;
  var map = L.map(box);
  var tiles = form.dataset.tiles;
  if (tiles && tiles.toLowerCase() !== "none") {
    L.tileLayer(tiles, { maxZoom: 19, attribution: form.dataset.attribution }).addTo(map);
  }
  var bounds = JSON.parse(form.dataset.bounds || "null");
  if (bounds) map.fitBounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]]);
  else map.setView([0, 0], 2);
  var marker = null;

  function place(lat, lon) {
    if (marker) marker.setLatLng([lat, lon]);
    else marker = L.marker([lat, lon]).addTo(map);
  }

  map.on("click", function (ev) {
    latInput.value = ev.latlng.lat.toFixed(6);
    lonInput.value = ev.latlng.lng.toFixed(6);
    place(ev.latlng.lat, ev.latlng.lng);
  });
  function typed() {
    var lat = parseFloat(latInput.value);
    var lon = parseFloat(lonInput.value);
    if (isFinite(lat) && isFinite(lon)) place(lat, lon);
  }
  latInput.addEventListener("change", typed);
  lonInput.addEventListener("change", typed);
  typed();
})();
