"""Procedural demo objects: everyday categories from primitives, proportions and colours drawn
from a seeded RNG, so the demo needs no download and every run builds the same objects.

Each builder works in metres-ish units with the object standing on z=0 and facing -y; the
renderer normalises to the unit cube afterwards, so only proportions matter.
"""

from __future__ import annotations

import colorsys
import math
import random
from collections.abc import Callable

import bpy


def _material(name: str, rgb: tuple[float, float, float], roughness: float = 0.5, metallic: float = 0.0):
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    bsdf = material.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = metallic
    return material


def _color(rng: random.Random, hue: float | None = None, sat=(0.35, 0.8), val=(0.35, 0.9)):
    h = rng.random() if hue is None else hue
    return colorsys.hsv_to_rgb(h, rng.uniform(*sat), rng.uniform(*val))


def _finish(obj, material, smooth: bool = False):
    obj.data.materials.append(material)
    if smooth:
        for polygon in obj.data.polygons:
            polygon.use_smooth = True
    return obj


def box(size, location, material, rotation=(0.0, 0.0, 0.0)):
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=location, rotation=rotation)
    obj = bpy.context.active_object
    obj.scale = size
    return _finish(obj, material)


def cylinder(radius, depth, location, material, vertices=32, rotation=(0.0, 0.0, 0.0)):
    bpy.ops.mesh.primitive_cylinder_add(
        radius=radius, depth=depth, location=location, vertices=vertices, rotation=rotation
    )
    return _finish(bpy.context.active_object, material, smooth=True)


def cone(radius1, radius2, depth, location, material, vertices=32):
    bpy.ops.mesh.primitive_cone_add(radius1=radius1, radius2=radius2, depth=depth, location=location, vertices=vertices)
    return _finish(bpy.context.active_object, material, smooth=True)


def sphere(radius, location, material, scale=(1.0, 1.0, 1.0)):
    bpy.ops.mesh.primitive_uv_sphere_add(radius=radius, location=location, segments=32, ring_count=16)
    obj = bpy.context.active_object
    obj.scale = scale
    return _finish(obj, material, smooth=True)


def torus(major, minor, location, material, rotation=(0.0, 0.0, 0.0)):
    bpy.ops.mesh.primitive_torus_add(major_radius=major, minor_radius=minor, location=location, rotation=rotation)
    return _finish(bpy.context.active_object, material, smooth=True)


def _legs(rng, material, half_w, half_d, height, thickness, round_legs):
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (half_w - thickness), sy * (half_d - thickness)
            if round_legs:
                cylinder(thickness * 0.6, height, (x, y, height / 2), material, vertices=16)
            else:
                box((thickness, thickness, height), (x, y, height / 2), material)


def build_chair(rng: random.Random) -> None:
    wood = _material("frame", _color(rng, hue=rng.uniform(0.05, 0.11), val=(0.25, 0.6)), 0.6)
    seat_mat = _material("seat", _color(rng))
    width, depth = rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.55)
    seat_h, back_h, leg = rng.uniform(0.4, 0.5), rng.uniform(0.35, 0.6), rng.uniform(0.03, 0.05)
    _legs(rng, wood, width / 2, depth / 2, seat_h, leg, rng.random() < 0.5)
    box((width, depth, 0.05), (0, 0, seat_h + 0.025), seat_mat)
    box((width, 0.04, back_h), (0, depth / 2 - 0.02, seat_h + 0.05 + back_h / 2), seat_mat)


def build_table(rng: random.Random) -> None:
    top = _material("top", _color(rng, hue=rng.uniform(0.04, 0.12), val=(0.3, 0.8)), 0.4)
    legs = _material("legs", _color(rng, sat=(0.0, 0.3), val=(0.1, 0.5)), 0.5, metallic=rng.random() * 0.8)
    width, depth, height = rng.uniform(1.0, 1.8), rng.uniform(0.6, 1.0), rng.uniform(0.65, 0.8)
    if rng.random() < 0.3:  # round pedestal table
        cylinder(depth / 2 + 0.2, 0.05, (0, 0, height), top, vertices=48)
        cylinder(0.06, height, (0, 0, height / 2), legs)
        cylinder(0.3, 0.04, (0, 0, 0.02), legs)
    else:
        box((width, depth, 0.05), (0, 0, height), top)
        _legs(rng, legs, width / 2, depth / 2, height - 0.025, rng.uniform(0.04, 0.07), rng.random() < 0.5)


def build_stool(rng: random.Random) -> None:
    seat = _material("seat", _color(rng))
    frame = _material("frame", _color(rng, sat=(0.0, 0.2), val=(0.2, 0.6)), 0.3, metallic=0.7)
    height, radius = rng.uniform(0.45, 0.8), rng.uniform(0.16, 0.22)
    cylinder(radius, 0.06, (0, 0, height), seat, vertices=40)
    for i in range(rng.choice((3, 4))):
        angle = 2 * math.pi * i / 3 + 0.3
        x, y = 0.8 * radius * math.cos(angle), 0.8 * radius * math.sin(angle)
        cylinder(0.018, height, (x, y, height / 2), frame, vertices=12)
    torus(0.8 * radius, 0.012, (0, 0, height * 0.35), frame)


def build_mug(rng: random.Random) -> None:
    glaze = _material("glaze", _color(rng), rng.uniform(0.1, 0.4))
    radius, height = rng.uniform(0.035, 0.05), rng.uniform(0.08, 0.12)
    cylinder(radius, height, (0, 0, height / 2), glaze, vertices=48)
    cylinder(radius * 0.85, height, (0, 0, height / 2 + 0.006), _material("inside", (0.9, 0.9, 0.88)), vertices=48)
    torus(height * 0.3, radius * 0.18, (radius + height * 0.22, 0, height * 0.52), glaze, rotation=(math.pi / 2, 0, 0))


def build_bottle(rng: random.Random) -> None:
    glass = _material("glass", _color(rng, sat=(0.4, 0.9), val=(0.2, 0.6)), 0.05)
    cap = _material("cap", _color(rng), 0.4)
    radius, body = rng.uniform(0.03, 0.045), rng.uniform(0.15, 0.25)
    neck = rng.uniform(0.05, 0.09)
    cylinder(radius, body, (0, 0, body / 2), glass)
    cone(radius, radius * 0.4, neck, (0, 0, body + neck / 2), glass)
    cylinder(radius * 0.45, 0.025, (0, 0, body + neck + 0.012), cap)


def build_lamp(rng: random.Random) -> None:
    metal = _material("metal", _color(rng, sat=(0.0, 0.4), val=(0.2, 0.8)), 0.25, metallic=0.9)
    shade = _material("shade", _color(rng, sat=(0.1, 0.6), val=(0.7, 0.95)), 0.8)
    height = rng.uniform(0.35, 0.7)
    cylinder(rng.uniform(0.08, 0.12), 0.03, (0, 0, 0.015), metal)
    cylinder(0.012, height, (0, 0, height / 2), metal, vertices=12)
    shade_h = rng.uniform(0.15, 0.25)
    cone(rng.uniform(0.12, 0.18), rng.uniform(0.06, 0.1), shade_h, (0, 0, height + shade_h * 0.3), shade)


def build_car(rng: random.Random) -> None:
    paint = _material("paint", _color(rng, sat=(0.5, 1.0), val=(0.4, 0.95)), 0.2, metallic=0.5)
    tyre = _material("tyre", (0.03, 0.03, 0.03), 0.9)
    glass = _material("window", (0.1, 0.15, 0.2), 0.05)
    length, width = rng.uniform(3.6, 4.8), rng.uniform(1.6, 1.9)
    body_h, cabin_h = rng.uniform(0.45, 0.6), rng.uniform(0.4, 0.55)
    wheel_r = rng.uniform(0.3, 0.38)
    # The car is long along y so that azimuth 0 looks at its nose.
    box((width, length, body_h), (0, 0, wheel_r + body_h / 2), paint)
    cabin_len = length * rng.uniform(0.4, 0.55)
    box((width * 0.9, cabin_len, cabin_h), (0, length * 0.05, wheel_r + body_h + cabin_h / 2), glass)
    for sx in (-1, 1):
        for sy in (-1, 1):
            cylinder(wheel_r, 0.25, (sx * width / 2, sy * length * 0.32, wheel_r), tyre, rotation=(0, math.pi / 2, 0))


def build_sofa(rng: random.Random) -> None:
    fabric = _material("fabric", _color(rng, sat=(0.2, 0.7), val=(0.3, 0.8)), 0.9)
    cushion = _material("cushion", _color(rng, sat=(0.1, 0.6), val=(0.4, 0.9)), 0.9)
    seats = rng.choice((2, 3))
    seat_w = rng.uniform(0.55, 0.7)
    width, depth, seat_h = seats * seat_w + 0.4, rng.uniform(0.8, 1.0), rng.uniform(0.35, 0.45)
    box((width, depth, seat_h), (0, 0, seat_h / 2), fabric)
    box((width, 0.2, 0.45), (0, depth / 2 - 0.1, seat_h + 0.225), fabric)
    for sx in (-1, 1):
        box((0.2, depth, 0.25), (sx * (width / 2 - 0.1), 0, seat_h + 0.125), fabric)
    for i in range(seats):
        x = -width / 2 + 0.2 + seat_w * (i + 0.5)
        box((seat_w * 0.95, depth - 0.25, 0.12), (x, -0.1, seat_h + 0.06), cushion)


def build_bookshelf(rng: random.Random) -> None:
    wood = _material("wood", _color(rng, hue=rng.uniform(0.05, 0.12), val=(0.3, 0.8)), 0.6)
    width, depth, height = rng.uniform(0.7, 1.2), rng.uniform(0.25, 0.35), rng.uniform(1.2, 2.0)
    shelves = rng.randint(3, 5)
    board = 0.03
    for sx in (-1, 1):
        box((board, depth, height), (sx * (width / 2 - board / 2), 0, height / 2), wood)
    box((width, board, height), (0, depth / 2 - board / 2, height / 2), wood)
    step = (height - board) / shelves
    for i in range(shelves + 1):
        box((width, depth, board), (0, 0, board / 2 + i * step), wood)
        if i < shelves:  # a row of books on each shelf
            x = -width / 2 + board
            while x < width / 2 - board - 0.06:
                w = rng.uniform(0.025, 0.05)
                h = rng.uniform(0.5, 0.85) * step
                box((w, depth * 0.8, h), (x + w / 2, 0, board + i * step + h / 2), _material("book", _color(rng)))
                x += w + 0.003


def build_snowman(rng: random.Random) -> None:
    snow = _material("snow", (0.95, 0.95, 0.97), 0.7)
    coal = _material("coal", (0.02, 0.02, 0.02), 0.8)
    carrot = _material("carrot", (0.95, 0.45, 0.05), 0.6)
    radii = sorted((rng.uniform(0.35, 0.45), rng.uniform(0.25, 0.32), rng.uniform(0.16, 0.22)), reverse=True)
    z = 0.0
    for r in radii:
        sphere(r, (0, 0, z + r * 0.9), snow)
        z += r * 1.75
    head_r, head_z = radii[2], z - radii[2] * 0.85
    for sx in (-1, 1):
        sphere(0.025, (sx * head_r * 0.35, -head_r * 0.9, head_z + head_r * 0.25), coal)
    bpy.ops.mesh.primitive_cone_add(
        radius1=0.035, depth=head_r * 0.9, location=(0, -head_r * 1.3, head_z), rotation=(math.pi / 2, 0, 0)
    )
    _finish(bpy.context.active_object, carrot)
    if rng.random() < 0.7:  # a hat
        hat = _material("hat", _color(rng, val=(0.05, 0.4)))
        cylinder(head_r * 0.9, 0.02, (0, 0, head_z + head_r * 0.85), hat)
        cylinder(head_r * 0.6, head_r * 0.7, (0, 0, head_z + head_r * 1.2), hat)


BUILDERS: dict[str, Callable[[random.Random], None]] = {
    "chair": build_chair,
    "table": build_table,
    "stool": build_stool,
    "mug": build_mug,
    "bottle": build_bottle,
    "lamp": build_lamp,
    "car": build_car,
    "sofa": build_sofa,
    "bookshelf": build_bookshelf,
    "snowman": build_snowman,
}


def build(builder: str, seed: int) -> None:
    BUILDERS[builder](random.Random(seed))
