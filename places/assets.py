"""Assets people report against: street lights by pole number, trees, hydrants, signs.

A category may be tied to a layer (``Service.asset_layer_id``). The report map then
shows the layer's assets near the pin; the request stores the layer and the city's own
id of the asset (``ServiceRequest.asset_ref``) and its pin snaps to the asset.
"""

from __future__ import annotations
