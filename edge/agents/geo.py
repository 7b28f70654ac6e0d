"""Coarsening positions for privacy: a point becomes the centre of its grid cell.

The grid: rows of ``grid_m`` metres of latitude from the south pole up; within each row,
columns ``grid_m`` metres wide measured along the row's centre latitude, starting at 180° W.
Every point in a cell reports the same centre, so a rider's exact path (home, doorstep) cannot
be read back, while a city-scale picture of where vehicles go survives. Metres per degree use
the spherical Earth of the mean radius (IUGG, 6,371,008.8 m), a fraction of a percent off the
ellipsoid: cells are a little more or less than ``grid_m``, never a privacy problem.
"""

from __future__ import annotations

import math

#: Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M = 6_371_008.8
#: Metres per degree of latitude (and of longitude at the equator) on that sphere.
M_PER_DEG = math.pi * EARTH_RADIUS_M / 180.0


def coarsen(lat: float, lon: float, grid_m: float) -> tuple[float, float]:
    """The centre of the ``grid_m`` grid cell holding (``lat``, ``lon``); 0 keeps it exact.

    >>> coarsen(36.0827, 140.1115, 0)
    (36.0827, 140.1115)
    >>> lat, lon = coarsen(36.0827, 140.1115, 500)
    >>> coarsen(lat, lon, 500) == (lat, lon)
    True
    """
    if grid_m < 0 or not math.isfinite(grid_m):
        raise ValueError(f"grid_m must be a finite number >= 0, got {grid_m!r}")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"({lat}, {lon}) is not a latitude and longitude in degrees")
    if grid_m == 0:
        return lat, lon
    dlat = grid_m / M_PER_DEG
    row = math.floor((lat + 90.0) / dlat)
    centre_lat = min(-90.0 + (row + 0.5) * dlat, 90.0)
    # Columns narrow towards the poles; at the pole itself the whole row is one cell.
    width_deg = grid_m / (M_PER_DEG * max(math.cos(math.radians(centre_lat)), 1e-12))
    if width_deg >= 360.0:
        return centre_lat, 0.0
    col = math.floor((lon + 180.0) / width_deg)
    centre_lon = min(-180.0 + (col + 0.5) * width_deg, 180.0)
    return centre_lat, centre_lon


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine, same sphere as the grid)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))
