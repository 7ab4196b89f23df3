"""Rendering one street scene: camera, street, surfaces with a depth test, objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image, ImageFilter

from training.data.synthcity.labels import (
    BUILDING,
    EGO,
    FENCE,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    TRAIN_TO_LABEL_ID,
    VEGETATION,
    WALL,
)
from training.data.synthcity.objects import (
    CAR_COLORS,
    bicycle,
    car,
    large_vehicle,
    person,
    pole_object,
    tree,
)
from training.data.synthcity.shapes import Part, jitter

# Strength of the multiplicative texture noise per train id.
TEXTURE = np.full(256, 0.04, np.float32)
TEXTURE[[VEGETATION, TERRAIN, ROAD, SIDEWALK, BUILDING, SKY]] = (0.35, 0.2, 0.07, 0.06, 0.06, 0.01)

FACADE_COLORS = np.array(
    [(200, 190, 170), (170, 90, 70), (150, 150, 150), (225, 220, 210), (190, 170, 120),
     (120, 110, 100), (210, 180, 160), (160, 170, 180)], np.float32
)  # fmt: skip


@dataclass
class Camera:
    """Pinhole camera at `height` metres; x right, y down in pixels; horizon row `cy`."""

    f: float
    cx: float
    cy: float
    height: float


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Zero-mean, unit-ish noise varying over about `cell` pixels (bilinear upsampling)."""
    gh, gw = int(h / cell) + 2, int(w / cell) + 2
    grid = Image.fromarray(rng.standard_normal((gh, gw)).astype(np.float32))
    return np.asarray(grid.resize((w, h), Image.Resampling.BILINEAR), np.float32)


@dataclass
class Canvas:
    """Image, labels and depth being painted, with a depth test."""

    image: np.ndarray  # (H, W, 3) float32
    label: np.ndarray  # (H, W) uint8
    depth: np.ndarray  # (H, W) float32, inf = sky
    cam: Camera

    def paint(
        self,
        rows: slice,
        cols: slice,
        where: np.ndarray,
        z: np.ndarray | float,
        label: np.ndarray | int,
        color: np.ndarray,
    ) -> None:
        """Paint the region `rows` x `cols` where `where` holds and `z` is nearer than the
        depth there; `z`, `label` (H', W') and `color` (H', W', 3) broadcast to the region."""
        depth = self.depth[rows, cols]
        hit = where & (z < depth)
        np.copyto(depth, z, where=hit)
        np.copyto(self.label[rows, cols], label, where=hit, casting="unsafe")
        np.copyto(self.image[rows, cols], color, where=hit[..., None])


def draw_object(
    canvas: Canvas, x: float, z: float, size: tuple[float, float], parts: list[Part]
) -> None:
    """Draw a billboard standing on the ground at lateral `x`, depth `z` (metres)."""
    cam, (h_img, w_img) = canvas.cam, canvas.label.shape
    width, height = size
    scale = cam.f / z
    if height * scale < 2:
        return
    x0 = max(int(cam.cx + (x - width / 2) * scale) - 1, 0)
    x1 = min(int(cam.cx + (x + width / 2) * scale) + 2, w_img)
    y0 = max(int(cam.cy + (cam.height - height - 0.5) * scale) - 1, 0)
    y1 = min(int(cam.cy + cam.height * scale) + 2, h_img)
    if x0 >= x1 or y0 >= y1:
        return
    u = ((np.arange(x0, x1, dtype=np.float32) + 0.5 - cam.cx) / scale - x)[None, :]
    v = (cam.height - (np.arange(y0, y1, dtype=np.float32) + 0.5 - cam.cy) / scale)[:, None]
    shade = np.broadcast_to(0.8 + 0.25 * np.clip(v / height, 0, 1), (y1 - y0, x1 - x0))
    image, label = canvas.image[y0:y1, x0:x1], canvas.label[y0:y1, x0:x1]
    depth = canvas.depth[y0:y1, x0:x1]
    free = z < depth
    drawn = np.zeros_like(free)
    for part in parts:
        hit = part.mask(u, v, 1 / scale) & free
        label[hit] = part.label
        image[hit] = part.color * shade[hit][:, None]
        drawn |= hit
    depth[drawn] = z


@dataclass
class Street:
    """The cross-section of the street (metres, x to the right of the camera)."""

    road_c: float
    road_half: float
    walk: np.ndarray  # sidewalk width, (left, right)
    verge: np.ndarray  # grass verge width beyond the sidewalk
    facade: np.ndarray  # x of the facade planes
    z_end: float  # depth of the backdrop

    @property
    def edge(self) -> np.ndarray:
        return np.array([self.road_c - self.road_half, self.road_c + self.road_half])

    @property
    def outer(self) -> np.ndarray:
        return self.edge + np.array([-1, 1]) * self.walk

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Street:
        road_c, road_half = rng.uniform(-2.5, 0.5), rng.uniform(3.5, 7.5)
        walk = rng.uniform(1.5, 4.5, 2)
        verge = np.where(rng.random(2) < 0.5, rng.uniform(0.5, 4.0, 2), 0.0)
        edge = np.array([road_c - road_half, road_c + road_half])
        facade = edge + np.array([-1, 1]) * (walk + verge + rng.uniform(0.0, 1.0, 2))
        return cls(road_c, road_half, walk, verge, facade, rng.uniform(90, 220))


def _sky(rng: np.random.Generator, canvas: Canvas) -> None:
    cam, (h, w) = canvas.cam, canvas.label.shape
    rows = slice(0, min(h, int(cam.cy) + 2))
    ys = np.arange(rows.stop, dtype=np.float32)[:, None, None] + 0.5
    top, low = jitter(rng, (70, 120, 190), 15), jitter(rng, (200, 215, 230), 10)
    base = low + (top - low) * np.clip(1 - ys / cam.cy, 0, 1)
    clouds = smooth_noise(rng, rows.stop, w, 40) * 0.8 - rng.uniform(0, 0.8)
    clouds = np.clip(clouds, 0, 1)[..., None]
    canvas.image[rows] = base + (np.float32([235, 235, 240]) - base) * clouds


def _ground(rng: np.random.Generator, canvas: Canvas, st: Street) -> None:
    """Road (asphalt, lane markings, crossings), sidewalks with curbs and pavers, verges."""
    cam, (h, w) = canvas.cam, canvas.label.shape
    r0 = min(h, int(cam.cy + 1))
    rows = slice(r0, h)
    ys = np.arange(r0, h, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(w, dtype=np.float32)[None, :] + 0.5
    zg = cam.f * cam.height / np.maximum(ys - cam.cy, 0.05)  # (rows, 1)
    xg = (xs - cam.cx) * zg / cam.f
    rel = xg - st.road_c
    right = rel > 0
    from_edge = np.abs(rel) - st.road_half  # metres beyond the road edge
    walk = np.where(right, st.walk[1], st.walk[0])
    label = np.where(from_edge < 0, ROAD, np.where(from_edge <= walk, SIDEWALK, TERRAIN)).astype(
        np.uint8
    )
    table = np.zeros((256, 3), np.float32)
    table[ROAD] = jitter(rng, (rng.uniform(70, 120),) * 3, 6)
    table[SIDEWALK] = jitter(rng, (170, 160, 160), 15)
    table[TERRAIN] = jitter(rng, (120, 140, 70), 15)
    shade = (1 + 0.08 * smooth_noise(rng, h - r0, w, 12)) * (1 + 0.1 * np.clip(zg / 60, 0, 1))
    # Lane markings: a dashed centre line, solid edge lines, sometimes a zebra crossing.
    dash = rng.uniform(3, 9)
    marking = (np.abs(rel) < 0.06) & (np.mod(zg, 2 * dash) < dash)
    marking |= np.abs(from_edge + 0.3) < 0.06
    if rng.random() < 0.35:
        zc = rng.uniform(8, 30)
        marking |= (zg > zc) & (zg < zc + 3.5) & (np.mod(rel, 1.0) < 0.5)
    marking &= label == ROAD
    on_walk = label == SIDEWALK
    curb = on_walk & (from_edge < 0.25)
    tiles = on_walk & ~curb & ((np.mod(xg, 0.6) < 0.05) | (np.mod(zg, 0.6) < 0.05))
    shade = shade * np.where(curb, 1.2, np.where(tiles, 0.85, 1.0))
    color = table[label] * shade[..., None]
    color[marking] = jitter(rng, (225, 225, 215), 8)
    canvas.paint(rows, slice(0, w), np.True_, zg, label, color)


def _segments(rng: np.random.Generator, z_end: float, park: bool) -> dict[str, np.ndarray]:
    """Facade segments along one side of the street, one entry per segment."""
    starts, kinds = [0.0], []
    while starts[-1] < z_end:
        kinds.append(2 if park else rng.choice(4, p=[0.7, 0.1, 0.12, 0.08]))
        starts.append(starts[-1] + rng.uniform(7, 30) * (0.6 if kinds[-1] > 0 else 1))
    n = len(kinds)
    kind = np.array(kinds)  # 0 building, 1 wall, 2 trees, 3 open
    color = FACADE_COLORS[rng.integers(len(FACADE_COLORS), size=n)] + rng.normal(0, 12, (n, 3))
    return {
        "start": np.array(starts[:-1]), "end": np.array(starts[1:]), "kind": kind,
        "height": np.where(kind == 0, rng.uniform(7, 28, n), rng.uniform(1.2, 2.6, n)),
        "color": np.clip(color, 0, 255).astype(np.float32),
        "floor": rng.uniform(2.8, 3.6, n), "bay": rng.uniform(1.8, 3.5, n),
        "win_w": rng.uniform(0.35, 0.6, n), "win_h": rng.uniform(0.4, 0.6, n),
    }  # fmt: skip


def _plane_columns(canvas: Canvas, x_plane: float) -> tuple[slice, np.ndarray, np.ndarray]:
    """Columns that see the vertical plane x = `x_plane`, their depth, and a row grid."""
    cam, (h, w) = canvas.cam, canvas.label.shape
    if x_plane < 0:
        cols = slice(0, max(0, min(w, int(cam.cx - 0.5))))
    else:
        cols = slice(min(w, int(cam.cx + 1.5)), w)
    dx = np.abs(np.arange(cols.start, cols.stop, dtype=np.float32) + 0.5 - cam.cx)
    z = cam.f * abs(x_plane) / np.maximum(dx, 0.5)
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
    return cols, z[None, :], ys


def _facade(rng: np.random.Generator, canvas: Canvas, st: Street, s: int, park: bool) -> dict:
    """Buildings (with windows and doors) and walls on the facade plane of side `s`."""
    cam = canvas.cam
    seg = _segments(rng, st.z_end, park)
    cols, z, ys = _plane_columns(canvas, st.facade[s])
    i = np.minimum(np.searchsorted(seg["end"], z), len(seg["kind"]) - 1)
    kind, top = seg["kind"][i], seg["height"][i]
    y = cam.height - (ys - cam.cy) * z / cam.f  # height above ground (rows, cols)
    on = (z < st.z_end) & (kind < 2) & (y >= 0) & (y <= top)
    along = z - seg["start"][i]
    facade_light = rng.uniform(0.75, 1.1)
    color = np.broadcast_to(seg["color"][i] * facade_light, (*on.shape, 3))
    in_bay = (np.mod(along, seg["bay"][i]) < seg["win_w"][i] * seg["bay"][i]) & (along > 0.8)
    in_bay &= (seg["end"][i] - z > 0.8) & (kind == 0)
    window = in_bay & (y > 3.0) & (y < top - 1.0)
    window &= np.mod(y, seg["floor"][i]) < seg["win_h"][i] * seg["floor"][i]
    glass = jitter(rng, (70, 85, 100), 10) + 60 * np.clip(y / 25, 0, 1)[..., None]
    door = (kind == 0) & (y < 2.3) & (np.mod(along, 9.0) < 1.2) & (along > 1.0)
    color = np.where(window[..., None], glass, color * np.where(door, 0.45, 1.0)[..., None])
    label = np.where(kind == 1, WALL, BUILDING).astype(np.uint8)
    canvas.paint(slice(None), cols, on, z, label, color)
    return seg


def _fence(rng: np.random.Generator, canvas: Canvas, x_plane: float) -> None:
    """A fence of posts and two rails on the plane x = `x_plane`, over a stretch of street."""
    cam = canvas.cam
    cols, z, ys = _plane_columns(canvas, x_plane)
    z0, z1 = sorted(rng.uniform(3, 60, 2))
    y = cam.height - (ys - cam.cy) * z / cam.f
    height, gap = rng.uniform(0.9, 1.6), rng.uniform(0.12, 0.35)
    post = np.maximum(0.05, 1.2 * z * z / (cam.f * abs(x_plane)))  # at least 1.2 px wide
    solid = (np.mod(z, gap) < post) | (np.abs(y - height) < 0.05) | (np.abs(y - 0.15) < 0.04)
    fence = (z > z0) & (z < z1) & (y >= 0) & (y <= height) & solid
    color = jitter(rng, (rng.uniform(60, 170),) * 3, 10)
    canvas.paint(slice(None), cols, fence, z, FENCE, color)


def _backdrop(rng: np.random.Generator, canvas: Canvas, z_end: float) -> None:
    """Distant buildings and trees on the plane z = `z_end`."""
    cam, (h, w) = canvas.cam, canvas.label.shape
    xb = (np.arange(w, dtype=np.float32) + 0.5 - cam.cx) * z_end / cam.f
    block = np.floor((xb - rng.uniform(0, 30)) / rng.uniform(12, 30)).astype(int)
    block -= block.min()
    n = int(block.max()) + 1
    tops, trees = rng.uniform(4, 40, n), rng.random(n) < 0.3
    colors = FACADE_COLORS[rng.integers(len(FACADE_COLORS), size=n)] * 0.85
    colors[trees] = (70, 100, 60)
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
    y = cam.height - (ys - cam.cy) * z_end / cam.f
    where = (y >= 0) & (y <= tops[block])
    label = np.where(trees[block], VEGETATION, BUILDING).astype(np.uint8)
    canvas.paint(slice(None), slice(None), where, np.float32(z_end), label, colors[block])


def _objects(rng: np.random.Generator, st: Street, segs: list[dict]) -> list[tuple]:
    """(x, z, maker) of every billboard object in the scene."""
    things: list[tuple[float, float, Callable]] = []
    for s, sign in ((0, -1), (1, 1)):  # left, right
        curb, walk, seg = st.edge[s], st.walk[s], segs[s]
        for k in np.flatnonzero(seg["kind"] == 2):  # trees in the gaps between buildings
            first, step = seg["start"][k] + rng.uniform(1, 5), rng.uniform(5, 9)
            for z in np.arange(first, seg["end"][k], step):
                things.append((st.facade[s] - sign * rng.uniform(-1.5, 1.0), z, tree))
        if st.verge[s] > 1.0:  # an avenue of trees on the verge
            for z in np.arange(rng.uniform(3, 10), st.z_end, rng.uniform(8, 20)):
                things.append((st.outer[s] + sign * st.verge[s] / 2, z, tree))
        z = rng.uniform(2, 12)
        while z < min(st.z_end, 120):  # poles, lamps, traffic lights and signs at the curb
            things.append(
                (curb + sign * rng.uniform(0.3, 0.7), z, partial(pole_object, side=-sign))
            )
            z += rng.uniform(7, 25)
        for _ in range(rng.poisson(2.0)):  # pedestrians
            x = curb + sign * rng.uniform(0.4, walk - 0.4)
            things.append((x, rng.uniform(4, 60), person))
        for _ in range(rng.poisson(0.6)):  # parked bicycles
            x = curb + sign * rng.uniform(0.5, walk - 0.5)
            things.append((x, rng.uniform(4, 40), bicycle))
        for _ in range(rng.poisson(2.5)):  # parked cars
            things.append((curb - sign * rng.uniform(1.0, 1.3), rng.uniform(5, 90), car))
        for _ in range(rng.poisson(0.2)):  # cyclists at the road edge
            x = curb - sign * rng.uniform(0.6, 1.2)
            things.append((x, rng.uniform(6, 40), partial(bicycle, ridden=True)))
    lanes = (st.road_c - st.road_half / 2, st.road_c + st.road_half / 2)
    for _ in range(rng.poisson(3.0)):
        maker = large_vehicle if rng.random() < 0.12 else car
        things.append((lanes[rng.integers(2)] + rng.normal(0, 0.3), rng.uniform(6, 100), maker))
    return things


def _ego_vehicle(rng: np.random.Generator, canvas: Canvas) -> None:
    """The bonnet of the recording car at the bottom (ignored in training)."""
    h, w = canvas.label.shape
    xs = np.arange(w, dtype=np.float32) + 0.5
    rise = h * rng.uniform(0.06, 0.14) * (1 - ((xs - w / 2) / (0.75 * w)) ** 2) + h * 0.02
    r0 = int(h - rise.max())
    ys = np.arange(r0, h, dtype=np.float32)[:, None] + 0.5
    paint = jitter(rng, CAR_COLORS[rng.integers(len(CAR_COLORS))], 10)
    color = paint * (0.6 + 0.4 * xs / w)[:, None]
    canvas.paint(slice(r0, h), slice(None), ys > h - rise, np.float32(0), EGO, color)


def _finish(rng: np.random.Generator, canvas: Canvas) -> np.ndarray:
    """Per-class texture, haze, lighting, blur and sensor noise."""
    image, label, depth = canvas.image, canvas.label, canvas.depth
    h, w = label.shape
    texture = 0.6 * rng.standard_normal((h, w), np.float32) + 0.8 * smooth_noise(rng, h, w, 3)
    haze = 0.8 - 0.8 * np.exp(-np.where(np.isfinite(depth), depth, 0) / rng.uniform(150, 400))
    light = rng.uniform(0.75, 1.15) * (1 + 0.12 * smooth_noise(rng, h, w, max(h, w) / 2))
    # image * (1 + texture) blended towards the haze colour, times the light:
    gain = (1 + TEXTURE[label] * texture) * (1 - haze) * light
    image *= gain[..., None]
    image += (haze * light)[..., None] * np.float32([190, 200, 210])
    sigma = rng.uniform(0.5, 1.0)
    weights = np.exp(-0.5 * (np.arange(-1, 2) / sigma) ** 2)
    kernel = np.outer(weights, weights) / np.outer(weights, weights).sum()
    blurred = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).filter(
        ImageFilter.Kernel((3, 3), kernel.ravel().tolist(), scale=1)
    )
    noise = rng.standard_normal((h, w, 1), np.float32) * rng.uniform(2, 6)
    return np.clip(np.asarray(blurred, np.float32) + noise, 0, 255).astype(np.uint8)


def render_frame(
    rng: np.random.Generator, size: tuple[int, int] = (256, 512)
) -> tuple[np.ndarray, np.ndarray]:
    """One street scene: RGB uint8 (H, W, 3) and Cityscapes labelIds uint8 (H, W)."""
    h, w = size
    cam = Camera(
        f=w * rng.uniform(0.95, 1.2), cx=w * rng.uniform(0.44, 0.56),
        cy=h * rng.uniform(0.36, 0.48), height=rng.uniform(1.2, 1.6),
    )  # fmt: skip
    canvas = Canvas(
        np.zeros((h, w, 3), np.float32), np.full((h, w), SKY, np.uint8),
        np.full((h, w), np.inf, np.float32), cam,
    )  # fmt: skip
    street = Street.sample(rng)
    _sky(rng, canvas)
    _ground(rng, canvas, street)
    park = rng.random(2) < 0.12
    segs = [_facade(rng, canvas, street, s, bool(park[s])) for s in (0, 1)]
    for s, sign in ((0, -1), (1, 1)):
        if rng.random() < 0.3:
            _fence(rng, canvas, street.outer[s] + sign * 0.1)
    _backdrop(rng, canvas, street.z_end)
    for x, z, make in sorted(_objects(rng, street, segs), key=lambda o: -o[1]):
        width, height, parts = make(rng)
        draw_object(canvas, x, z, (width, height), parts)
    if rng.random() < 0.5:
        _ego_vehicle(rng, canvas)
    return _finish(rng, canvas), TRAIN_TO_LABEL_ID[canvas.label]
