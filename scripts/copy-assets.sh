#!/bin/sh
# Copy the map libraries installed by npm into webmap/static/vendor/, where the app serves
# them itself (no CDN: the map works offline and residents' browsers talk only to us).
set -eu
cd "$(dirname "$0")/.."
src=node_modules
dst=webmap/static/vendor
for f in leaflet/dist/leaflet.js leaflet.markercluster/dist/leaflet.markercluster.js \
         leaflet.heat/dist/leaflet-heat.js exifr/dist/mini.umd.js; do
    if [ ! -f "$src/$f" ]; then
        echo "copy-assets: $src/$f is missing: run 'npm ci' first" >&2
        exit 1
    fi
done
tmp="$dst.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/leaflet/images" "$tmp/leaflet.markercluster" "$tmp/leaflet.heat" "$tmp/exifr"
cp "$src"/leaflet/dist/leaflet.js "$src"/leaflet/dist/leaflet.js.map \
   "$src"/leaflet/dist/leaflet.css "$src"/leaflet/LICENSE "$tmp/leaflet/"
cp "$src"/leaflet/dist/images/*.png "$tmp/leaflet/images/"
cp "$src"/leaflet.markercluster/dist/leaflet.markercluster.js \
   "$src"/leaflet.markercluster/dist/leaflet.markercluster.js.map \
   "$src"/leaflet.markercluster/dist/MarkerCluster.css \
   "$src"/leaflet.markercluster/dist/MarkerCluster.Default.css \
   "$src"/leaflet.markercluster/MIT-LICENCE.txt "$tmp/leaflet.markercluster/"
cp "$src"/leaflet.heat/dist/leaflet-heat.js "$src"/leaflet.heat/LICENSE "$tmp/leaflet.heat/"
# exifr (mini build: JPEG/TIFF, GPS) reads a photo's location in the browser before upload.
cp "$src"/exifr/dist/mini.umd.js "$src"/exifr/LICENSE "$tmp/exifr/"
# Swap in one step so a running server never sees a half-copied folder.
rm -rf "$dst"
mv "$tmp" "$dst"
echo "map assets copied to $dst"
