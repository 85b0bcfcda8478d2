"""Places as the city knows them: address points, streets with address ranges, their
intersections, the geocoder that turns what people say into a point (and a point back
into words), and the assets people report against.

Imports point one way: ``places -> spatial``. ``intake``, ``routing`` and ``webmap`` use
places; places uses none of them.
"""
