"""Scripted footage: real photo cut-outs moving over a background, written with PyAV.

Tests, the event-quality evaluation and the speed benchmark build their own footage with this:
people are cut out of scikit-image's photos (the cameraman of ``camera()`` and the astronaut,
both seen as "person" by the built-in detector), the vehicle is a drawn car that the detector
calls "car" (its proportions and colours were chosen by a search against the detector, then
checked at several positions and sizes: score 0.6-0.7), and they move along scripted paths over
a gravel background (``skimage.data.gravel``), optionally passing behind an occluding wall.

Every actor's path is known, so the ground truth is too: ``Scene.truth`` gives the intervals
in which each actor is visible (in frame, not hidden) and in each zone (by its bottom-centre,
the point the zones test), from which the expected events follow.

Needs ``scikit-image`` (a development dependency), imported only when a scene is drawn.

Example:
    >>> scene = Scene(duration=20.0, actors=[Actor("person", "camera", [(0, -40, 300), (20, 680, 300)])])
    >>> write_scene(scene, "walk.mp4")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

#: Drawn-car parameters found by a random search + hill climb against the built-in detector on
#: the gravel background (min "car" score over 6 placements 0.66).
CAR_PARAMS = {
    "aspect": 0.392, "col": (150, 217, 245), "belt": 0.351, "roof": 0.046, "c0": 0.267, "c1": 0.786,
    "wr": 0.174, "glass": (0, 72, 99), "shadow": True, "w0": 0.220, "rim": (106, 123, 134), "g0": 1.253, "g1": 0.594,
}


@functools.lru_cache(maxsize=4)
def _sprite_source(kind: str) -> Image.Image:
    from skimage import data

    if kind == "camera":  # the cameraman, tripod and all: "person" 0.65-0.75 at 1/3 of the frame height
        return Image.fromarray(data.camera()).convert("RGB").crop((40, 50, 270, 512))
    if kind == "astronaut":  # "person" 0.6
        return Image.fromarray(data.astronaut()).crop((0, 0, 380, 512))
    if kind == "car":
        return draw_car(520)
    raise ValueError(f"unknown sprite {kind!r}; use camera, astronaut or car")


def draw_car(width: int, params: dict | None = None) -> Image.Image:
    """A side view of a car (RGBA), ``width`` pixels wide."""
    p = dict(CAR_PARAMS, **(params or {}))
    h = int(width * p["aspect"])
    s = 3
    wd, hd = width * s, h * s
    im = Image.new("RGBA", (wd, hd), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    col, belt, roof, c0, c1, wr = tuple(p["col"]), p["belt"], p["roof"], p["c0"], p["c1"], p["wr"]
    bottom = 1 - wr * 0.6
    d.rounded_rectangle([0, int(hd * belt), wd, int(hd * bottom)], int(hd * 0.08), fill=col)
    d.polygon([(int(wd * (c0 - 0.08)), int(hd * belt) + 2), (int(wd * c0), int(hd * roof)), (int(wd * c1), int(hd * roof)),
               (int(wd * (c1 + 0.12)), int(hd * belt) + 2)], fill=col)
    mid, m, glass = (c0 + c1) / 2, 0.025, tuple(p["glass"])
    d.polygon([(int(wd * (c0 - 0.05)), int(hd * (belt - 0.02))), (int(wd * (c0 + m)), int(hd * (roof + 0.05))),
               (int(wd * (mid - 0.01)), int(hd * (roof + 0.05))), (int(wd * (mid - 0.01)), int(hd * (belt - 0.02)))], fill=glass)
    d.polygon([(int(wd * (mid + 0.01)), int(hd * (belt - 0.02))), (int(wd * (mid + 0.01)), int(hd * (roof + 0.05))),
               (int(wd * (c1 - m)), int(hd * (roof + 0.05))), (int(wd * (c1 + 0.08)), int(hd * (belt - 0.02)))], fill=glass)
    if p["shadow"]:
        d.ellipse([int(-wd * 0.02), int(hd * (bottom + wr * 0.3)), int(wd * 1.02), hd - 1], fill=(10, 10, 10, 160))
    for cx in (p["w0"], 1 - p["w0"]):
        r, cy, cxp = int(hd * wr), int(hd * (1 - wr)), int(wd * cx)
        d.ellipse([cxp - r, cy - r, cxp + r, cy + r], fill=(12, 12, 12))
        d.ellipse([cxp - r // 2, cy - r // 2, cxp + r // 2, cy + r // 2], fill=tuple(p["rim"]))
    d.rectangle([wd - int(wd * 0.03), int(hd * (belt + 0.05)), wd, int(hd * (belt + 0.14))], fill=(250, 240, 190))
    d.rectangle([0, int(hd * (belt + 0.05)), int(wd * 0.025), int(hd * (belt + 0.14))], fill=(200, 20, 20))
    im = im.resize((width, h), Image.Resampling.LANCZOS)
    a = np.asarray(im).astype(np.float32)
    a[..., :3] *= np.linspace(p["g0"], p["g1"], h)[:, None, None]
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


@dataclass
class Actor:
    """Something that moves through the scene.

    Attributes:
        label: What the detector should call it (``person`` or ``car``); the ground truth's class.
        sprite: ``camera`` / ``astronaut`` (people) or ``car``.
        path: ``(t, x, y)`` waypoints: seconds, and where its bottom-centre is, in scene pixels;
            linear in between; absent before the first and after the last waypoint.
        height: Sprite height as a fraction of the frame height (people ~0.33; the car's width
            follows from its own aspect ratio).
        colour: The colour of its clothes (for questions like "the person in red"); ``None``
            leaves the photo's own colours.
        front: Drawn over the walls (it passes between them and the camera).
    """

    label: str
    sprite: str
    path: list[tuple[float, float, float]]
    height: float = 0.36
    colour: tuple[int, int, int] | None = None
    front: bool = False  # walks in front of the walls (never hidden by them)

    def position(self, t: float) -> tuple[float, float] | None:
        p = self.path
        if not p or t < p[0][0] or t > p[-1][0]:
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(p, p[1:]):
            if t0 <= t <= t1:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
        return p[-1][1], p[-1][2]


@dataclass
class Scene:
    """A scripted scene.

    Attributes:
        duration: Seconds.
        actors: What moves.
        width / height / fps: Of the video.
        occluders: Wall rectangles ``(x1, y1, x2, y2)`` drawn over the actors.
        zones: Named polygons (scene pixels) used for the ground truth.
        noise: Per-frame sensor noise (standard deviation, grey levels).
    """

    duration: float
    actors: list[Actor]
    width: int = 640
    height: int = 360
    fps: float = 10.0
    occluders: list[tuple[int, int, int, int]] = field(default_factory=list)
    zones: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    noise: float = 2.0
    seed: int = 0

    # --- drawing ----------------------------------------------------------------------------
    def background(self) -> np.ndarray:
        from skimage import data

        g = data.gravel().astype(np.float32)
        reps = (math.ceil(self.height / g.shape[0]), math.ceil(self.width / g.shape[1]))
        t = np.tile(g, reps)[: self.height, : self.width]
        return np.clip(np.stack([t * 0.6 + 40] * 3, -1), 0, 255).astype(np.uint8)

    def sprite(self, actor: Actor) -> Image.Image:
        src = _sprite_source(actor.sprite)
        if actor.sprite == "car":
            w = int(self.width * actor.height)  # for the car, ``height`` is its width fraction
            im = src.resize((w, max(1, int(w * src.height / src.width))), Image.Resampling.LANCZOS)
        else:
            h = int(self.height * actor.height)
            im = src.resize((max(1, int(src.width * h / src.height)), h), Image.Resampling.LANCZOS).convert("RGBA")
        if actor.colour is not None and actor.sprite != "car":
            # dye the clothes (the middle of the body), not the whole picture: a monochrome person
            # drops the detector's "person" score from ~0.67 to ~0.4; a red jacket keeps it
            a = np.asarray(im).astype(np.float32)
            h, w = a.shape[:2]
            y0, y1, x0, x1 = int(h * 0.3), int(h * 0.75), int(w * 0.2), int(w * 0.8)
            grey = a[y0:y1, x0:x1, :3].mean(-1, keepdims=True)
            tint = np.asarray(actor.colour, np.float32) / max(1.0, float(max(actor.colour)))
            a[y0:y1, x0:x1, :3] = np.clip(grey * (0.35 + tint * 1.55), 0, 255)
            im = Image.fromarray(a.astype(np.uint8))
        return im

    def _sprite_size(self, actor: Actor) -> Image.Image:
        key = id(actor)
        cache = self.__dict__.setdefault("_sizes", {})
        if key not in cache:
            cache[key] = self.sprite(actor)
        return cache[key]

    def frames(self) -> "Iterator[np.ndarray]":  # noqa: F821
        """The frames, ``[H, W, 3]`` uint8 RGB, one per ``1 / fps`` seconds."""
        bg = self.background()
        sprites = [self.sprite(a) for a in self.actors]
        rng = np.random.default_rng(self.seed)
        # a small bank of noise frames, cycled (drawing fresh noise per frame costs more than encoding)
        bank = [rng.normal(0, self.noise, (self.height, self.width, 3)).astype(np.int16) for _ in range(7)] if self.noise else []
        n = int(round(self.duration * self.fps))
        for i in range(n):
            t = i / self.fps
            im = Image.fromarray(bg)
            for layer in (False, True):  # behind the walls, the walls, in front of them
                for a, sp in zip(self.actors, sprites):
                    pos = a.position(t)
                    if pos is None or a.front is not layer:
                        continue
                    x, y = pos
                    im.paste(sp, (int(round(x - sp.width / 2)), int(round(y - sp.height))), sp if sp.mode == "RGBA" else None)
                if not layer and self.occluders:
                    d = ImageDraw.Draw(im)
                    for r in self.occluders:
                        d.rectangle(list(r), fill=(96, 80, 72))
            arr = np.asarray(im, dtype=np.uint8)
            if bank:
                arr = np.clip(arr.astype(np.int16) + bank[i % len(bank)], 0, 255).astype(np.uint8)
            yield arr

    # --- ground truth -------------------------------------------------------------------------
    def box(self, actor: Actor, t: float) -> tuple[float, float, float, float] | None:
        pos = actor.position(t)
        if pos is None:
            return None
        sp = self._sprite_size(actor)
        x, y = pos
        return (x - sp.width / 2, y - sp.height, x + sp.width / 2, y)

    def visible(self, actor: Actor, t: float, *, min_fraction: float = 0.6) -> bool:
        """Whether at least ``min_fraction`` of the actor is in frame and not behind a wall."""
        b = self.box(actor, t)
        if b is None:
            return False
        x1, y1, x2, y2 = b
        area = max(1e-6, (x2 - x1) * (y2 - y1))
        cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, self.width), min(y2, self.height)
        inside = max(0.0, cx2 - cx1) * max(0.0, cy2 - cy1)
        hidden = 0.0
        for ox1, oy1, ox2, oy2 in ([] if actor.front else self.occluders):
            hidden += max(0.0, min(cx2, ox2) - max(cx1, ox1)) * max(0.0, min(cy2, oy2) - max(cy1, oy1))
        return (inside - hidden) / area >= min_fraction

    def truth(self, step: float = 0.1) -> list[dict]:
        """Per actor: ``{"label", "visible": [(t0, t1)...], "zones": {name: [(t0, t1)...]}}``."""
        out = []
        times = np.arange(0.0, self.duration, step)
        for a in self.actors:
            vis = _runs(times, [self.visible(a, t) for t in times])
            zones = {}
            for name, poly in self.zones.items():
                flags = []
                for t in times:
                    pos = a.position(t)
                    flags.append(pos is not None and self.visible(a, t, min_fraction=0.3) and point_in_polygon(pos, poly))
                zones[name] = _runs(times, flags)
            out.append({"label": a.label, "visible": vis, "zones": zones})
        return out


def _runs(times: Sequence[float], flags: Sequence[bool]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    start = None
    for t, f in zip(times, flags):
        if f and start is None:
            start = t
        elif not f and start is not None:
            out.append((float(start), float(t)))
            start = None
    if start is not None:
        out.append((float(start), float(times[-1])))
    return out


def point_in_polygon(pt: tuple[float, float], poly: Sequence[tuple[float, float]]) -> bool:
    """Even-odd rule."""
    x, y = pt
    inside = False
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def write_scene(scene: Scene, path: str | Path, *, codec: str = "libx264", crf: int = 23, gop: int | None = None) -> Path:
    """Encode the scene to a video file (container from the suffix: .mp4 .mkv .avi .mov .ts)."""
    import av

    path = Path(path)
    out = av.open(str(path), "w")
    try:
        st = out.add_stream(codec, rate=int(scene.fps) if float(scene.fps).is_integer() else scene.fps)
        st.width, st.height, st.pix_fmt = scene.width, scene.height, "yuv420p"
        if codec == "libx264":
            st.options = {"preset": "ultrafast", "crf": str(crf), "g": str(gop or int(scene.fps * 2))}
        for arr in scene.frames():
            for pkt in st.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    finally:
        out.close()
    return path


def random_scene(seed: int, *, duration: float = 60.0, width: int = 640, height: int = 360, fps: float = 10.0,
                 people: int = 3, cars: int = 1, zone: str = "gate") -> Scene:
    """A scene with random paths: people crossing or lingering in a zone, cars passing."""
    rng = np.random.default_rng(seed)
    zx1, zx2 = width * 0.55, width * 0.85
    zy1, zy2 = height * 0.55, height * 0.95
    zones = {zone: [(zx1, zy1), (zx2, zy1), (zx2, zy2), (zx1, zy2)]}
    actors: list[Actor] = []
    for _ in range(people):
        sprite = "camera" if rng.random() < 0.6 else "astronaut"
        t0 = float(rng.uniform(0, duration * 0.6))
        y = float(rng.uniform(height * 0.7, height * 0.92))
        speed = float(rng.uniform(50, 110)) * width / 640
        left = rng.random() < 0.5
        xa, xb = (-60.0, width + 60.0) if left else (width + 60.0, -60.0)
        if rng.random() < 0.5:  # linger in the zone
            stop = float(rng.uniform(zx1 + 20, zx2 - 20))
            t1 = t0 + abs(stop - xa) / speed
            t2 = t1 + float(rng.uniform(5, 25))
            path = [(t0, xa, y), (t1, stop, y), (t2, stop, y), (t2 + abs(xb - stop) / speed, xb, y)]
        else:
            path = [(t0, xa, y), (t0 + abs(xb - xa) / speed, xb, y)]
        actors.append(Actor("person", sprite, path))
    for _ in range(cars):
        t0 = float(rng.uniform(0, duration * 0.6))
        y = float(rng.uniform(height * 0.85, height * 0.95))
        speed = float(rng.uniform(80, 160)) * width / 640
        path = [(t0, -200.0, y), (t0 + (width + 400) / speed, width + 200.0, y)]
        actors.append(Actor("car", "car", path, height=0.38))
    return Scene(duration=duration, actors=actors, width=width, height=height, fps=fps, zones=zones, seed=seed)


#: The gate zone of ``gate_scene`` (640x360 pixels): the lower right, where people stand.
GATE_ZONE = [(380.0, 230.0), (600.0, 230.0), (600.0, 355.0), (380.0, 355.0)]


def gate_scene(duration: float = 36.0, fps: float = 10.0) -> Scene:
    """The scripted scene the tests and the README use (640x360, 36 s):

    - the cameraman walks in from the right at 2 s, stands in the gate zone from 5 s to 16 s,
      and walks out to the right by 19 s (the loiterer);
    - the cameraman again walks left to right across the left half from 3 s to 12 s, passing
      behind a wall (x 140-220) for about two seconds (the occluded walker);
    - the astronaut, tinted red, walks through the whole frame (in front of the wall) from 19 s
      to 29 s, crossing the gate zone in about three seconds (the passer);
    - a car drives in from the right at 29 s and stops in the gate zone at 32 s until the end.
    """
    return Scene(
        duration=duration, fps=fps, zones={"gate": GATE_ZONE}, occluders=[(140, 0, 220, 360)],
        actors=[
            Actor("person", "camera", [(2, 700, 330), (5, 480, 330), (16, 480, 330), (19, 720, 330)]),
            Actor("person", "camera", [(3, -60, 300), (12, 340, 300)]),
            Actor("person", "astronaut", [(19, -70, 345), (29, 720, 345)], colour=(220, 30, 30), front=True),
            Actor("car", "car", [(29, 850, 350), (32, 470, 350), (duration, 470, 350)], height=0.38),
        ],
    )
