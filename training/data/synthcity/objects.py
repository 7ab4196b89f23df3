"""Things standing in the street, as billboards: (width, height, parts) in metres."""

from __future__ import annotations

import numpy as np

from training.data.synthcity.labels import (
    BICYCLE,
    BUS,
    CAR,
    LIGHT,
    PERSON,
    POLE,
    RIDER,
    SIGN,
    TRUCK,
    VEGETATION,
)
from training.data.synthcity.shapes import (
    Part,
    ellipse,
    jitter,
    rect,
    ring,
    segment,
    trapezoid,
    triangle,
)

CAR_COLORS = np.array(
    [(230, 230, 230), (30, 30, 35), (150, 155, 160), (160, 30, 30), (40, 60, 130),
     (40, 80, 50), (200, 190, 150)], np.float32
)  # fmt: skip
LARGE_VEHICLE_COLORS = np.float32([(230, 200, 40), (200, 200, 205), (180, 40, 40), (40, 90, 160)])


Thing = tuple[float, float, list[Part]]  # width, height (metres), parts drawn in order


def car(rng: np.random.Generator) -> Thing:
    """A car seen from behind: wheels, body, cabin, rear window, tail lights, plate."""
    w, h = rng.uniform(1.65, 2.0), rng.uniform(1.35, 1.65)
    paint = jitter(rng, CAR_COLORS[rng.integers(len(CAR_COLORS))], 10)
    dark, glass = np.float32([22, 22, 24]), jitter(rng, (60, 70, 85), 10)
    red, belt, side = jitter(rng, (190, 20, 20)), 0.6 * h, w / 2
    parts = [
        Part(CAR, rect(-side + 0.05, -side + 0.4, 0, 0.45), dark),
        Part(CAR, rect(side - 0.4, side - 0.05, 0, 0.45), dark),
        Part(CAR, rect(-side, side, 0.22, belt), paint),
        Part(CAR, trapezoid(belt, h, side - 0.05, side - 0.3), paint * 0.92),
        Part(CAR, trapezoid(belt + 0.05, h - 0.07, side - 0.15, side - 0.36), glass),
        Part(CAR, rect(-side + 0.08, -side + 0.35, belt - 0.22, belt - 0.08), red),
        Part(CAR, rect(side - 0.35, side - 0.08, belt - 0.22, belt - 0.08), red),
        Part(CAR, rect(-0.26, 0.26, 0.3, 0.42), np.float32([225, 225, 215])),
    ]
    return w, h, parts


def large_vehicle(rng: np.random.Generator) -> Thing:
    """A bus (with a window band) or a truck (with a bumper), seen from behind."""
    label = BUS if rng.random() < 0.5 else TRUCK
    w, h = rng.uniform(2.4, 2.6), rng.uniform(2.9, 3.6)
    paint = jitter(rng, LARGE_VEHICLE_COLORS[rng.integers(len(LARGE_VEHICLE_COLORS))])
    dark, side = np.float32([25, 25, 25]), w / 2
    parts = [
        Part(label, rect(-side + 0.1, -side + 0.55, 0, 0.6), dark),
        Part(label, rect(side - 0.55, side - 0.1, 0, 0.6), dark),
        Part(label, rect(-side, side, 0.3, h), paint),
    ]
    if label == BUS:
        glass = jitter(rng, (55, 65, 80))
        parts.append(Part(BUS, rect(-side + 0.12, side - 0.12, 0.55 * h, 0.9 * h), glass))
    else:
        parts.append(Part(TRUCK, rect(-side, side, 0.3, 0.38), dark))
    return w, h, parts


def person(rng: np.random.Generator) -> Thing:
    """A walking person: legs, torso, arms, head, hair."""
    h, stride = rng.uniform(1.55, 1.92), rng.uniform(0.0, 0.18)
    shirt, trousers = (
        jitter(rng, rng.uniform(30, 220, 3), 0),
        jitter(rng, rng.uniform(20, 120, 3), 0),
    )
    skin, hair = jitter(rng, (200, 160, 130), 25), jitter(rng, (50, 35, 25), 20)
    parts = [
        Part(PERSON, segment((-0.09, 0.47 * h), (-0.09 - stride, 0.0), 0.14), trousers),
        Part(PERSON, segment((0.09, 0.47 * h), (0.09 + stride, 0.0), 0.14), trousers),
        Part(PERSON, trapezoid(0.45 * h, 0.82 * h, 0.17, 0.22), shirt),
        Part(PERSON, segment((-0.22, 0.8 * h), (-0.27, 0.45 * h), 0.09), shirt * 0.9),
        Part(PERSON, segment((0.22, 0.8 * h), (0.27, 0.45 * h), 0.09), shirt * 0.9),
        Part(PERSON, ellipse(0, 0.9 * h, 0.1, 0.12), skin),
        Part(PERSON, ellipse(0, 0.95 * h, 0.105, 0.07), hair),
    ]
    return 0.6 + 2 * stride, h, parts


def bicycle(rng: np.random.Generator, ridden: bool = False) -> Thing:
    """A bicycle seen from the side (thin rings and tubes), with a rider if `ridden`."""
    r, frame = rng.uniform(0.3, 0.36), jitter(rng, rng.uniform(20, 220, 3), 0)
    black = np.float32([20, 20, 20])
    back, front, crank, seat, bar = (
        (-0.55, r),
        (0.55, r),
        (0.0, r),
        (-0.25, 2.6 * r),
        (0.4, 2.8 * r),
    )
    parts = [
        Part(BICYCLE, ring(*back, r, 0.05), black),
        Part(BICYCLE, ring(*front, r, 0.05), black),
    ]
    for a, b in (
        (back, crank),
        (crank, seat),
        (seat, bar),
        (crank, bar),
        (bar, front),
        (back, seat),
    ):
        parts.append(Part(BICYCLE, segment(a, b, 0.04), frame))
    h = 3 * r
    if ridden:
        body, legs = jitter(rng, rng.uniform(30, 220, 3), 0), jitter(rng, (40, 40, 60), 15)
        top = 2.6 * r + 0.8
        parts += [
            Part(RIDER, segment(seat, crank, 0.13), legs),
            Part(RIDER, segment((seat[0], seat[1] + 0.05), (0.05, top - 0.1), 0.3), body),
            Part(RIDER, segment((0.05, top - 0.2), bar, 0.08), body * 0.9),
            Part(RIDER, ellipse(0.12, top + 0.05, 0.11, 0.13), jitter(rng, (200, 160, 130), 25)),
        ]
        h = top + 0.2
    return 2 * (0.55 + r) + 0.1, h, parts


def tree(rng: np.random.Generator) -> Thing:
    """A trunk and a lumpy crown (both vegetation, as in Cityscapes)."""
    trunk_h, crown = rng.uniform(1.8, 4.0), rng.uniform(1.3, 3.2)
    crown_v = crown * rng.uniform(0.9, 1.4)
    wobble = np.stack([rng.uniform(0, 0.12, 4), rng.uniform(0, 2 * np.pi, 4)], 1)
    green = jitter(rng, (rng.uniform(40, 90), rng.uniform(90, 140), rng.uniform(20, 60)), 10)
    bark = jitter(rng, (85, 65, 45), 10)
    parts = [
        Part(VEGETATION, rect(-0.15, 0.15, 0, trunk_h + 0.5), bark),
        Part(VEGETATION, ellipse(0, trunk_h + crown_v * 0.9, crown, crown_v, wobble), green),
    ]
    return 2 * crown * 1.3, trunk_h + 1.8 * crown_v, parts


def _metal(rng: np.random.Generator) -> np.ndarray:
    return jitter(rng, (rng.uniform(70, 150),) * 3, 8)


def plain_pole(rng: np.random.Generator, side: float) -> Thing:
    h, r = rng.uniform(3.0, 8.0), rng.uniform(0.05, 0.09)
    return 2 * r, h, [Part(POLE, rect(-r, r, 0, h), _metal(rng))]


def street_lamp(rng: np.random.Generator, side: float) -> Thing:
    """A pole with an arm reaching over the road (towards `side`, +1 right / -1 left)."""
    h, r, arm, metal = (
        rng.uniform(6.0, 9.0),
        rng.uniform(0.05, 0.09),
        rng.uniform(1.0, 2.5),
        _metal(rng),
    )
    arm *= side
    parts = [
        Part(POLE, rect(-r, r, 0, h), metal),
        Part(POLE, segment((0, h - 0.05), (arm, h + 0.3), 0.08), metal),
        Part(POLE, rect(arm - 0.3, arm + 0.3, h + 0.2, h + 0.35), metal * 0.8),
    ]
    return 2 * abs(arm) + 0.8, h + 0.4, parts


def traffic_light(rng: np.random.Generator, side: float) -> Thing:
    """A light box with three lamps, on its pole or hanging from an arm over the road."""
    h, r, metal = rng.uniform(2.8, 4.5), rng.uniform(0.05, 0.09), _metal(rng)
    at = side * rng.uniform(1.5, 4.0) if rng.random() < 0.4 else 0.0
    box_h, box_w = rng.uniform(0.8, 1.0), rng.uniform(0.3, 0.4)
    top = h + 0.2 if at else h
    parts = [Part(POLE, rect(-r, r, 0, h), metal)]
    if at:
        parts.append(Part(POLE, rect(min(0, at), max(0, at), h - 0.08, h + 0.02), metal))
    box = rect(at - box_w / 2, at + box_w / 2, top - box_h, top)
    parts.append(Part(LIGHT, box, np.float32([28, 30, 28])))
    lit = rng.integers(3)
    for i, lamp in enumerate([(230, 40, 30), (240, 180, 20), (40, 220, 90)]):
        color = np.float32(lamp) * (1.0 if i == lit else 0.3)
        cv = top - box_h * (i + 0.5) / 3
        parts.append(Part(LIGHT, ellipse(at, cv, box_w * 0.3, box_w * 0.3), color))
    return 2 * abs(at) + box_w + 0.2, top, parts


def traffic_sign(rng: np.random.Generator, side: float) -> Thing:
    """A plate on a pole: prohibition disk, mandatory disk, triangle or information panel."""
    h, size, r, metal = (
        rng.uniform(2.2, 3.2),
        rng.uniform(0.55, 0.8),
        rng.uniform(0.05, 0.09),
        _metal(rng),
    )
    cv, half = h + size / 2, size / 2
    white, red = np.float32([235, 235, 235]), jitter(rng, (200, 25, 30), 10)
    blue, yellow = jitter(rng, (30, 70, 170), 10), jitter(rng, (240, 200, 30), 10)
    down = bool(rng.random() < 0.5)
    plate = [
        [(ellipse(0, cv, half, half), red), (ellipse(0, cv, size / 3, size / 3), white)],
        [
            (ellipse(0, cv, half, half), blue),
            (rect(-0.05, 0.05, cv - half / 2, cv + half / 2), white),
        ],
        [
            (triangle(cv, size, down), red),
            (triangle(cv + (0.04 if down else -0.04), 0.6 * size, down), white),
        ],
        [(rect(-half, half, cv - 0.8 * half, cv + 0.8 * half), [blue, yellow][rng.integers(2)])],
    ][rng.integers(4)]
    parts = [Part(POLE, rect(-r, r, 0, h + 0.05), metal)] + [Part(SIGN, m, c) for m, c in plate]
    return size + 0.2, h + size, parts


POLE_THINGS = (plain_pole, street_lamp, traffic_light, traffic_sign)
POLE_WEIGHTS = (0.25, 0.2, 0.25, 0.3)


def pole_object(rng: np.random.Generator, side: float) -> Thing:
    """One of the pole-mounted things at the curb; `side` points towards the road."""
    return POLE_THINGS[rng.choice(len(POLE_THINGS), p=POLE_WEIGHTS)](rng, side)
