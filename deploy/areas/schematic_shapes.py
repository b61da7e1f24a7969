#!/usr/bin/env python3
"""Writes bac-ninh.geojson: SCHEMATIC shapes of the demo province's districts.

Each district is the set of points nearer its seat than any other seat
(Voronoi cells), cut to an outline around the province. They are not the
surveyed boundaries: a province replaces this file with its official
GeoJSON (same property "code"). Run: python3 schematic_shapes.py
"""
import json

seats = {  # code: (lon, lat) of the district seat, approximate
    "27256": (106.075, 21.185), "27258": (105.955, 21.205), "27259": (106.165, 21.150), "27260": (106.030, 21.125),
    "27261": (105.965, 21.120), "27262": (106.085, 21.045), "27263": (106.195, 21.065), "27264": (106.225, 21.025),
}
names = {
    "27256": "Thành phố Bắc Ninh", "27258": "Huyện Yên Phong", "27259": "Thị xã Quế Võ", "27260": "Huyện Tiên Du",
    "27261": "Thành phố Từ Sơn", "27262": "Thị xã Thuận Thành", "27263": "Huyện Gia Bình", "27264": "Huyện Lương Tài",
}
outline = [(105.90, 21.17), (105.94, 21.26), (106.06, 21.25), (106.17, 21.22), (106.27, 21.16),
           (106.30, 21.06), (106.26, 20.98), (106.12, 20.99), (106.02, 21.02), (105.92, 21.07)]


def clip(poly, a, b, c):
    """Keeps the part of poly where a*x + b*y <= c (Sutherland-Hodgman)."""
    out = []
    for i, p in enumerate(poly):
        q = poly[(i + 1) % len(poly)]
        pin, qin = a * p[0] + b * p[1] <= c, a * q[0] + b * q[1] <= c
        if pin:
            out.append(p)
        if pin != qin:
            t = (c - a * p[0] - b * p[1]) / (a * (q[0] - p[0]) + b * (q[1] - p[1]))
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


features = []
for code, s in seats.items():
    cell = list(outline)
    for other, o in seats.items():
        if other == code:
            continue
        # nearer s than o: (o - s) . x <= (|o|^2 - |s|^2) / 2
        a, b = o[0] - s[0], o[1] - s[1]
        c = (o[0] ** 2 + o[1] ** 2 - s[0] ** 2 - s[1] ** 2) / 2
        cell = clip(cell, a, b, c)
    ring = [[round(x, 5), round(y, 5)] for x, y in cell]
    ring.append(ring[0])
    features.append({"type": "Feature", "properties": {"code": code, "name_vi": names[code], "seat": list(s)},
                     "geometry": {"type": "Polygon", "coordinates": [ring]}})

doc = {"type": "FeatureCollection",
       "description": "SCHEMATIC district shapes of the demo province (Voronoi cells around each seat, see schematic_shapes.py), not surveyed boundaries",
       "note": {"vi": "Hình các huyện là sơ đồ (không phải ranh giới đo đạc)", "en": "The districts' shapes are schematic (not surveyed boundaries)"},
       "features": features}
with open("bac-ninh.geojson", "w", encoding="utf-8") as f:
    json.dump(doc, f, ensure_ascii=False, indent=1)
    f.write("\n")
