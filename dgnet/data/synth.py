"""Synthetic pedestrians: a procedurally drawn re-id data set in exact Market-1501 layout.

    dgnet data synth --out data/synth_a --ids 60 --seed 0            # style A
    dgnet data synth --out data/synth_b --ids 60 --seed 1 --style B  # the second domain

    from dgnet.config import SynthConfig
    from dgnet.data.synth import write_synthetic
    summary = write_synthetic(Path("data/synth_a"), SynthConfig())

Every identity has appearance attributes (top / bottom / shoe colours from a
palette, a texture on the top: solid, stripes, dots or checks, sleeves) and
structure-like traits (body height and width, hair colour and length, skin
tone, a bag). Every image draws a pose (walking phase, stride, arm swing), a
position and scale, a viewpoint (front / back / side, facing left or right),
a camera-specific background with clutter, a camera-specific illumination cast
and gamma, plus noise, blur and occasional occluders. Images of one identity in
one camera share the view and framing (as a tracklet does), so cross-camera
matching is the hard part, as in the real data sets. About a quarter of the
identities copy the top and bottom colours of another one (hard negatives).

``world`` chooses how people are drawn: ``classic`` (here) or ``readable``
(``dgnet/data/synth_readable.py``: the same kinds of people, their cues
besides clothing colour drawn to be readable at 64x32). Layout, cameras and
everything else are shared.

Style ``A`` (warm, built-up campus) and ``B`` (cool street scenes, other
clothing palette, darker, blurrier cameras) are two domains. Camera looks
depend on the style only; identities, poses and noise on the seed.

Layout (names ``PPPP_cCsS_FFFFFF_BB.jpg``; pid ``0000`` = distractor, ``-1`` = junk)::

    bounding_box_train/   train ids (disjoint from test ids)
    query/                one image per test id for some of the cameras it visits
    bounding_box_test/    images_per_camera per test id and camera + distractors + junk
    gt_bbox/              each query image and two more frames of the same id and camera
    attributes.csv        one row per image file: split, file, pid, camid (0-based), attributes

Same seed and config give the same bytes in every file.
"""

from __future__ import annotations

import csv
import io as _io
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dgnet import io
from dgnet.config import SynthConfig
from dgnet.data import synth_readable
from dgnet.data.layouts import load_layout
from dgnet.data.synth_draw import BAGS, SKIN, TEXTURE_P, TEXTURES, Canvas, Identity, jitter, paint
from dgnet.errors import UserError

JPEG_QUALITY = 90
MULTI_QUERY_EXTRA = 2  # gt_bbox frames per query besides the query itself

# Clothing palettes (name, RGB); B is another "domain" with some colours shared.
PALETTES: dict[str, tuple[tuple[str, tuple[int, int, int]], ...]] = {
    "A": (
        ("black", (25, 25, 28)), ("white", (225, 225, 220)), ("grey", (128, 128, 128)),
        ("red", (190, 35, 35)), ("darkred", (110, 20, 30)), ("blue", (40, 70, 180)),
        ("navy", (25, 35, 80)), ("lightblue", (130, 175, 220)), ("green", (45, 130, 60)),
        ("olive", (110, 115, 45)), ("yellow", (225, 200, 50)), ("orange", (230, 120, 35)),
        ("pink", (225, 140, 170)), ("purple", (110, 55, 140)), ("brown", (105, 70, 40)),
        ("beige", (200, 180, 140)),
    ),
    "B": (
        ("black", (25, 25, 28)), ("charcoal", (60, 62, 68)), ("teal", (30, 125, 125)),
        ("maroon", (120, 30, 55)), ("khaki", (175, 160, 105)), ("mustard", (200, 160, 30)),
        ("coral", (235, 110, 90)), ("forest", (35, 85, 45)), ("sky", (120, 190, 235)),
        ("tan", (185, 140, 95)), ("lavender", (170, 150, 210)), ("slate", (95, 110, 135)),
        ("cream", (235, 225, 195)), ("burgundy", (90, 20, 35)), ("cobalt", (20, 60, 160)),
        ("lime", (150, 200, 60)),
    ),
}
PALETTES["P"] = PALETTES["A"] + PALETTES["B"][1:]  # the pre-training set: both domains' colours, own cameras
HAIR = (("black", (22, 20, 18)), ("brown", (85, 55, 32)), ("blond", (195, 165, 100)),
        ("grey", (150, 148, 145)), ("auburn", (130, 55, 30)))
VIEWS = ("front", "back", "side")

CSV_FIELDS = (
    "split", "file", "pid", "camid", "kind", "view", "facing", "top_color", "top_texture",
    "top2_color", "sleeves", "bottom_color", "bottom_type", "shoe_color", "hair_color",
    "hair_long", "skin_tone", "bag", "bag_color", "height_factor", "width_factor", "phase",
    "scale", "brightness", "occluder", "blurred",
)
SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query",
                 "gallery": "bounding_box_test", "gt_bbox": "gt_bbox"}


# ---------------------------------------------------------------- identities and cameras


@dataclass(frozen=True)
class Camera:
    wall: np.ndarray
    floor: np.ndarray
    pattern: str  # panels | bricks | windows | foliage
    pattern_rgb: np.ndarray
    period: float  # pattern period, fraction of image width
    horizon: float  # fraction of image height
    gain: np.ndarray  # RGB illumination cast
    gamma: float
    brightness: float
    light_side: float  # -1..1: horizontal light gradient
    blur_p: float
    view_p: np.ndarray  # probabilities of front, back, side


def _make_identity(rng: np.random.Generator, palette, previous: list[Identity]) -> Identity:
    def pick(options):
        i = int(rng.integers(len(options)))
        return options[i][0], jitter(rng, options[i][1])

    top, top_rgb = pick(palette)
    bottom, bottom_rgb = pick(palette)
    if previous and rng.random() < 0.25:  # a near twin: same top and bottom colours
        twin = previous[int(rng.integers(len(previous)))]
        top, top_rgb, bottom, bottom_rgb = twin.top, twin.top_rgb, twin.bottom, twin.bottom_rgb
    top2, top2_rgb = pick(palette)
    if top2 == top:
        top2, rgb = ("white", (225, 225, 220)) if top != "white" else ("black", (25, 25, 28))
        top2_rgb = jitter(rng, rgb)
    shoe, shoe_rgb = pick(palette[:3] + palette[-4:])  # shoes: mostly dark / neutral
    hair, hair_rgb = pick(HAIR)
    bag = BAGS[int(rng.choice(3, p=(0.5, 0.3, 0.2)))]
    bag_color, bag_rgb = pick(palette)
    return Identity(
        top=top, top_rgb=top_rgb, top2=top2, top2_rgb=top2_rgb,
        texture=TEXTURES[int(rng.choice(4, p=TEXTURE_P))],
        tex_period=float(rng.uniform(0.05, 0.09)),
        sleeves="long" if rng.random() < 0.6 else "short",
        bottom=bottom, bottom_rgb=bottom_rgb,
        bottom_type="trousers" if rng.random() < 0.75 else "shorts",
        shoe=shoe, shoe_rgb=shoe_rgb, hair=hair, hair_rgb=hair_rgb,
        hair_long=bool(rng.random() < 0.35), skin=int(rng.integers(len(SKIN))),
        height_factor=float(rng.uniform(0.86, 1.04)), width_factor=float(rng.uniform(0.8, 1.25)),
        bag=bag, bag_color=bag_color, bag_rgb=bag_rgb,
    )


def _make_camera(style: str, cam: int) -> Camera:
    """Camera looks depend on the style and camera index only (not on the seed)."""
    rng = np.random.default_rng([0xCA3, ord(style), cam])
    family = style if style in ("A", "B") else ("A", "B")[int(rng.integers(2))]  # P: either family, own draws
    if family == "A":  # warm, built-up: beige / brick / grey walls, light floors
        wall = rng.choice([[185, 170, 145], [160, 95, 75], [150, 150, 155], [205, 195, 175], [120, 110, 100]])
        floor = rng.choice([[150, 145, 140], [110, 108, 105], [175, 165, 150]])
        pattern = ("panels", "bricks", "windows")[cam % 3]
        gain = np.array([1.06, 1.0, 0.9]) + rng.uniform(-0.1, 0.1, 3)
        brightness = rng.uniform(0.95, 1.1)
        blur_p = rng.uniform(0.1, 0.35)
        gamma = rng.uniform(0.85, 1.15)
    else:  # cool street scenes: green / blue / dark walls, dark asphalt, blurrier
        wall = rng.choice([[70, 110, 70], [80, 95, 120], [55, 60, 70], [110, 130, 125], [40, 80, 60]])
        floor = rng.choice([[70, 72, 78], [95, 95, 90], [55, 58, 60]])
        pattern = ("foliage", "windows", "bricks")[cam % 3]
        gain = np.array([0.88, 0.98, 1.12]) + rng.uniform(-0.1, 0.1, 3)
        brightness = rng.uniform(0.75, 0.95)
        blur_p = rng.uniform(0.3, 0.6)
        gamma = rng.uniform(0.9, 1.35)
    view_p = rng.dirichlet([2.0, 2.0, 1.5])
    return Camera(
        wall=(np.asarray(wall, np.float32) + rng.normal(0, 10, 3)).clip(0, 255) / 255,
        floor=(np.asarray(floor, np.float32) + rng.normal(0, 8, 3)).clip(0, 255) / 255,
        pattern=pattern, pattern_rgb=rng.uniform(0.1, 0.9, 3).astype(np.float32),
        period=float(rng.uniform(0.2, 0.45)), horizon=float(rng.uniform(0.45, 0.68)),
        gain=gain.astype(np.float32), gamma=float(gamma), brightness=float(brightness),
        light_side=float(rng.uniform(-1, 1)), blur_p=float(blur_p), view_p=view_p,
    )


# ---------------------------------------------------------------- drawing


def _lowfreq(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = rng.random((cells * 2, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BILINEAR))


def _background(cv: Canvas, cam: Camera, rng: np.random.Generator, palette) -> np.ndarray:
    h, w = cv.h, cv.w
    horizon = (cam.horizon + rng.normal(0, 0.03)) * h
    pan = rng.uniform(0, 10 * w)
    wall_shade = (0.85 + 0.25 * (cv.yy / h))[..., None]
    img = np.where((cv.yy < horizon)[..., None], cam.wall * wall_shade,
                   cam.floor * (0.8 + 0.35 * (cv.yy / h))[..., None]).astype(np.float32)
    period = cam.period * w
    u = (cv.xx + pan) / period
    v = cv.yy / period
    if cam.pattern == "panels":
        m = (np.abs((u % 1.0) - 0.5) > 0.42).astype(np.float32)
    elif cam.pattern == "bricks":
        row = np.floor(v * 2.5)
        m = (((v * 2.5) % 1.0) < 0.12) | ((((u * 1.5) + 0.5 * row) % 1.0) < 0.08)
        m = m.astype(np.float32)
    elif cam.pattern == "windows":
        m = (((u % 1.0) > 0.2) & ((u % 1.0) < 0.7) & (((v * 0.8) % 1.0) > 0.25) & (((v * 0.8) % 1.0) < 0.75))
        m = m.astype(np.float32)
    else:  # foliage
        m = np.clip((_lowfreq(rng, h, w, 5) - 0.45) * 4, 0, 1)
    m *= (cv.yy < horizon)
    paint(img, m * 0.8, cam.pattern_rgb)
    # floor texture: faint perspective lines
    lines = (np.abs(((cv.xx - w / 2) / np.maximum(cv.yy - horizon + 2, 2) * 2 + pan) % 1.0 - 0.5) > 0.46)
    paint(img, lines * (cv.yy > horizon) * 0.25, cam.floor * 0.6)
    # clutter: a few objects, coloured like clothes at times (hard backgrounds)
    for _ in range(int(rng.poisson(1.3))):
        color = (jitter(rng, palette[int(rng.integers(len(palette)))][1])
                 if rng.random() < 0.5 else rng.uniform(0.1, 0.9, 3))
        x0 = rng.uniform(-0.2, 1.0) * w
        y0 = rng.uniform(0.0, 0.9) * h
        if rng.random() < 0.5:
            mask = cv.box(x0, x0 + rng.uniform(0.1, 0.5) * w, y0, y0 + rng.uniform(0.05, 0.3) * h)
        else:
            mask = cv.ellipse(x0, y0, rng.uniform(0.05, 0.25) * w, rng.uniform(0.03, 0.12) * h)
        paint(img, mask, color)
    return img


def _top_colors(cv: Canvas, ident: Identity, cx: float, y0: float, s: float) -> np.ndarray:
    """Per-pixel colour of the top (texture in body coordinates, so it moves with the body)."""
    if ident.texture == "solid":
        return ident.top_rgb
    p = ident.tex_period
    u = (cv.xx - cx) / s / p
    v = (cv.yy - y0) / s / p
    if ident.texture == "stripes":
        m = np.clip(np.sin(2 * np.pi * v) * 3 + 0.5, 0, 1)
    elif ident.texture == "checks":
        m = np.clip(np.sin(2 * np.pi * u) * np.sin(2 * np.pi * v) * 6 + 0.5, 0, 1)
    else:  # dots
        d = np.hypot((u % 1.0) - 0.5, (v % 1.0) - 0.5)
        m = np.clip((0.3 - d) * p * s + 0.5, 0, 1)
    return ident.top_rgb + (ident.top2_rgb - ident.top_rgb) * m[..., None]


def _draw_person(img: np.ndarray, cv: Canvas, ident: Identity, pose: dict) -> None:
    """Draw one pedestrian: ``pose`` has view, facing (+-1), phase, s (height px), cx, foot."""
    s, cx, foot, phase, f = pose["s"], pose["cx"], pose["foot"], pose["phase"], pose["facing"]
    view, wf = pose["view"], ident.width_factor
    top = foot - s
    skin = np.asarray(SKIN[ident.skin], np.float32) / 255
    y_sh, y_hip, y_knee, y_ank = top + 0.175 * s, top + 0.52 * s, top + 0.745 * s, top + 0.965 * s
    side = view == "side"
    hw_sh, hw_hip = (0.085 * s * wf, 0.08 * s * wf) if side else (0.13 * s * wf, 0.105 * s * wf)
    r_leg, r_arm = 0.047 * s * (0.85 + 0.15 * wf), 0.032 * s
    leg_amp, arm_amp = pose["stride"], 0.8 * pose["stride"]
    shin_rgb = skin if ident.bottom_type == "shorts" else ident.bottom_rgb
    fore_rgb = skin if ident.sleeves == "short" else ident.top_rgb

    # ground shadow
    paint(img, cv.ellipse(cx, foot, 0.22 * s, 0.03 * s) * 0.45, np.zeros(3, np.float32))

    def leg(hip_x, theta, bend, shade, lift=0.0):
        knee = (hip_x + f * math.sin(theta) * (y_knee - y_hip), y_hip + math.cos(theta) * (y_knee - y_hip))
        a = theta - bend
        ank = (knee[0] + f * math.sin(a) * (y_ank - y_knee), knee[1] + math.cos(a) * (y_ank - y_knee) - lift)
        paint(img, cv.capsule((hip_x, y_hip), knee, r_leg), ident.bottom_rgb * shade)
        paint(img, cv.capsule(knee, ank, r_leg * 0.9), shin_rgb * shade)
        off = f * 0.03 * s if side else 0.0
        paint(img, cv.ellipse(ank[0] + off, ank[1] + 0.012 * s, (0.055 if side else 0.036) * s, 0.022 * s),
               ident.shoe_rgb * shade)

    def arm(sh_x, alpha, bend, sign, shade):
        la, lf = 0.165 * s, 0.15 * s
        elbow = (sh_x + sign * math.sin(alpha) * la, y_sh + 0.02 * s + math.cos(alpha) * la)
        b = alpha + bend
        hand = (elbow[0] + sign * math.sin(b) * lf, elbow[1] + math.cos(b) * lf)
        paint(img, cv.capsule((sh_x, y_sh + 0.02 * s), elbow, r_arm), ident.top_rgb * shade)
        paint(img, cv.capsule(elbow, hand, r_arm * 0.9), fore_rgb * shade)
        paint(img, cv.ellipse(hand[0], hand[1], 0.026 * s, 0.028 * s), skin * shade)
        return hand

    def handbag(hand):
        if ident.bag == "handbag":
            paint(img, cv.box(hand[0] - 0.06 * s, hand[0] + 0.06 * s, hand[1], hand[1] + 0.11 * s), ident.bag_rgb)

    def head():
        hx = cx + (f * 0.02 * s if side else 0.0)
        hy, rx, ry = top + 0.075 * s, 0.058 * s, 0.07 * s
        if ident.hair_long and view != "back":  # long hair falls behind the head
            paint(img, cv.capsule((hx - f * 0.02 * s * side, hy), (hx - f * 0.03 * s * side, top + 0.21 * s),
                                   0.062 * s), ident.hair_rgb)
        paint(img, cv.ellipse(hx, hy, rx, ry), skin)
        if view == "back":
            paint(img, cv.ellipse(hx, hy, rx * 1.05, ry * 1.02), ident.hair_rgb)
            if ident.hair_long:
                paint(img, cv.capsule((hx, hy), (hx, top + 0.24 * s), 0.06 * s), ident.hair_rgb)
        elif side:
            cap = cv.ellipse(hx - f * 0.015 * s, hy - 0.02 * s, rx * 1.05, ry * 0.8)
            paint(img, cap * (cv.xx * f < (hx + f * 0.02 * s) * f), ident.hair_rgb)
        else:
            paint(img, cv.ellipse(hx, hy - 0.035 * s, rx * 1.08, ry * 0.6), ident.hair_rgb)
            for ex in (-0.022 * s, 0.022 * s):
                paint(img, cv.ellipse(hx + ex, hy + 0.005 * s, 0.009 * s, 0.007 * s) * 0.7, np.zeros(3, np.float32))

    torso = cv.trapezoid(cx, y_sh, y_hip + 0.02 * s, hw_sh, hw_hip)
    shoulders = cv.capsule((cx - hw_sh + 0.03 * s, y_sh + 0.03 * s), (cx + hw_sh - 0.03 * s, y_sh + 0.03 * s), 0.03 * s)
    top_fill = _top_colors(cv, ident, cx, y_sh, s)
    if side:
        th = leg_amp * math.sin(phase)
        bend = lambda ph: 0.6 * leg_amp * (1 + math.cos(ph)) / 2 + 0.05  # noqa: E731
        if ident.bag == "backpack":  # sticks out behind the back
            x_in, x_out = cx - f * 0.5 * hw_sh, cx - f * (hw_sh + 0.1 * s)
            paint(img, cv.box(min(x_in, x_out), max(x_in, x_out), y_sh + 0.02 * s, y_sh + 0.26 * s),
                   ident.bag_rgb)
        leg(cx, -th, bend(phase + math.pi), 0.75)  # far leg
        arm(cx, arm_amp * math.sin(phase), 0.35, f, 0.75)  # far arm
        paint(img, torso, top_fill)
        paint(img, shoulders * 0.8, top_fill)
        leg(cx, th, bend(phase), 1.0)  # near leg
        head()
        hand = arm(cx, -arm_amp * math.sin(phase), 0.35, f, 1.0)
        handbag(hand)
    else:
        for k, sign in enumerate((-1.0, 1.0)):
            hip_x = cx + sign * 0.055 * s * wf
            # front / back: the swing is in depth, seen as a lifted foot
            lift = 0.12 * s * leg_amp * max(0.0, math.sin(phase + k * math.pi))
            leg(hip_x, sign * 0.05 * f, 0.0, 1.0, lift)
        paint(img, torso, top_fill)
        paint(img, shoulders, top_fill)
        if ident.bag == "backpack":
            if view == "back":
                pack = cv.box(cx - 0.75 * hw_sh, cx + 0.75 * hw_sh, y_sh + 0.03 * s, y_sh + 0.27 * s)
                paint(img, pack, ident.bag_rgb)
            else:
                for sx in (-0.55 * hw_sh, 0.55 * hw_sh):
                    paint(img, cv.capsule((cx + sx, y_sh), (cx + sx * 1.05, y_sh + 0.2 * s), 0.014 * s), ident.bag_rgb)
        hands = []
        for k, sign in enumerate((-1.0, 1.0)):
            swing = 0.1 + 0.15 * arm_amp * math.sin(phase + k * math.pi)
            hands.append(arm(cx + sign * (hw_sh - 0.025 * s), swing, -0.05, sign, 0.92))
        head()
        handbag(hands[0] if f < 0 else hands[1])


def _illuminate(img: np.ndarray, cv: Canvas, cam: Camera, rng: np.random.Generator) -> tuple[np.ndarray, float, bool]:
    brightness = cam.brightness * float(rng.uniform(0.72, 1.22))
    gain = cam.gain * (1 + rng.normal(0, 0.04, 3)).astype(np.float32)
    grad = 1 + 0.25 * cam.light_side * (cv.xx / cv.w - 0.5)
    # NumPy's power runs different SIMD code on AVX-512 and AVX2 CPUs, which differ in float32's last
    # bits (and so, now and then, in a JPEG's bytes); in float64, rounded to float32, they agree
    lit = np.clip(img * gain * brightness * grad[..., None], 0, 1)
    out = (lit.astype(np.float64) ** cam.gamma).astype(np.float32)
    blurred = bool(rng.random() < cam.blur_p)
    if blurred:  # separable [1, 2, 1] / 4, once or twice
        for _ in range(int(rng.integers(1, 3))):
            out = (np.roll(out, 1, 0) + 2 * out + np.roll(out, -1, 0)) / 4
            out = (np.roll(out, 1, 1) + 2 * out + np.roll(out, -1, 1)) / 4
    out = out + rng.normal(0, rng.uniform(0.008, 0.03), out.shape).astype(np.float32)
    return np.clip(out, 0, 1), brightness, blurred


def _occlude(img: np.ndarray, cv: Canvas, rng: np.random.Generator, palette) -> str:
    if rng.random() >= 0.15:
        return "none"
    kind = ("pole", "box", "passer")[int(rng.integers(3))]
    h, w = cv.h, cv.w
    if kind == "pole":
        x = rng.uniform(0.1, 0.9) * w
        hw = rng.uniform(0.04, 0.09) * w
        paint(img, cv.box(x - hw, x + hw, -1, h + 1), rng.uniform(0.15, 0.6) * np.ones(3, np.float32))
    elif kind == "box":
        top = rng.uniform(0.65, 0.82) * h
        paint(img, cv.box(-1, w + 1, top, h + 1), jitter(rng, palette[int(rng.integers(len(palette)))][1]))
    else:  # part of a passer-by at the edge
        x = (rng.uniform(-0.15, 0.05) if rng.random() < 0.5 else rng.uniform(0.95, 1.15)) * w
        color = jitter(rng, palette[int(rng.integers(len(palette)))][1])
        paint(img, cv.ellipse(x, rng.uniform(0.35, 0.6) * h, 0.2 * w, 0.25 * h), color)
    return kind


# ---------------------------------------------------------------- the data set


def _world(name: str):
    """The identity-making and person-drawing functions of ``data.synth.world``."""
    if name == "readable":
        return synth_readable.make_identity, synth_readable.draw_person
    return _make_identity, _draw_person


def _visit(rng: np.random.Generator, cam: Camera, ident: Identity, cv: Canvas) -> dict:
    """What one camera sees of one identity (shared by its frames, like a tracklet)."""
    return {
        "view": VIEWS[int(rng.choice(3, p=cam.view_p))],
        "facing": 1 if rng.random() < 0.5 else -1,
        "scale": float(rng.uniform(0.74, 0.93)) * ident.height_factor,
        "cx": cv.w * float(0.5 + rng.normal(0, 0.06)),
        "foot": cv.h * float(rng.uniform(0.93, 0.99)),
        "seq": int(rng.integers(1, 7)),
    }


def _frame_pose(rng: np.random.Generator, visit: dict, cv: Canvas) -> dict:
    view = visit["view"]
    if rng.random() < 0.2:  # the person turns
        view = VIEWS[int(rng.integers(3))]
    return {
        "view": view, "facing": visit["facing"] if rng.random() < 0.85 else -visit["facing"],
        "phase": float(rng.uniform(0, 2 * math.pi)), "stride": float(rng.uniform(0.2, 0.55)),
        "s": cv.h * min(visit["scale"] * float(rng.uniform(0.95, 1.05)), 1.0),
        "cx": visit["cx"] + cv.w * float(rng.normal(0, 0.03)),
        "foot": visit["foot"] + cv.h * float(rng.normal(0, 0.01)),
    }


def _person_attrs(ident: Identity) -> dict:
    return {
        "top_color": ident.top, "top_texture": ident.texture, "top2_color": ident.top2,
        "sleeves": ident.sleeves, "bottom_color": ident.bottom, "bottom_type": ident.bottom_type,
        "shoe_color": ident.shoe, "hair_color": ident.hair, "hair_long": int(ident.hair_long),
        "skin_tone": ident.skin, "bag": ident.bag, "bag_color": ident.bag_color if ident.bag != "none" else "",
        "height_factor": f"{ident.height_factor:.4f}", "width_factor": f"{ident.width_factor:.4f}",
    }


class _Writer:
    """Renders images, names them Market-style and records their attributes."""

    def __init__(self, root: Path, cfg: SynthConfig, rng: np.random.Generator):
        self.root, self.cfg, self.rng = root, cfg, rng
        self.cv = Canvas(cfg.height, cfg.width)
        self.palette = PALETTES[cfg.style]
        self.make_identity, self.draw_person = _world(cfg.world)
        self.cameras = [_make_camera(cfg.style, c) for c in range(cfg.cameras)]
        self.frames = [int(rng.integers(0, 500)) for _ in range(cfg.cameras)]
        self.rows: list[dict] = []
        for folder in SPLIT_FOLDERS.values():
            (root / folder).mkdir(parents=True)

    def render(self, cam: int, ident: Identity | None, pose: dict | None) -> tuple[bytes, dict]:
        rng, camera = self.rng, self.cameras[cam]
        img = _background(self.cv, camera, rng, self.palette)
        attrs: dict = {"kind": "background"}
        if ident is not None and pose is not None:
            self.draw_person(img, self.cv, ident, pose)
            attrs = {"kind": pose.get("kind", "person"), "view": pose["view"], "facing": pose["facing"],
                     "phase": f"{pose['phase']:.4f}", "scale": f"{pose['s'] / self.cv.h:.4f}",
                     **_person_attrs(ident)}
        attrs["occluder"] = _occlude(img, self.cv, rng, self.palette)
        img, brightness, blurred = _illuminate(img, self.cv, camera, rng)
        attrs["brightness"] = f"{brightness:.4f}"
        attrs["blurred"] = int(blurred)
        buf = _io.BytesIO()
        Image.fromarray((img * 255 + 0.5).astype(np.uint8)).save(buf, "JPEG", quality=JPEG_QUALITY)
        return buf.getvalue(), attrs

    def name(self, pid: int, cam: int, seq: int) -> str:
        self.frames[cam] += int(self.rng.integers(1, 60))
        bbox = int(self.rng.integers(1, 9))
        head = "-1" if pid < 0 else f"{pid:04d}"
        return f"{head}_c{cam + 1}s{seq}_{self.frames[cam]:06d}_{bbox:02d}.jpg"

    def save(self, split: str, name: str, pid: int, cam: int, data: bytes, attrs: dict) -> None:
        rel = f"{SPLIT_FOLDERS[split]}/{name}"
        (self.root / rel).write_bytes(data)
        self.rows.append({"split": split, "file": rel, "pid": pid, "camid": cam, **attrs})

    def frame(self, split: str, pid: int, cam: int, ident: Identity, visit: dict) -> tuple[str, bytes, dict]:
        data, attrs = self.render(cam, ident, _frame_pose(self.rng, visit, self.cv))
        name = self.name(pid, cam, visit["seq"])
        self.save(split, name, pid, cam, data, attrs)
        return name, data, attrs


def _counts(rows: list[dict], split: str) -> dict:
    sel = [r for r in rows if r["split"] == split]
    return {"ids": len({r["pid"] for r in sel}), "images": len(sel)}


def write_synthetic(out: str | Path, cfg: SynthConfig, overwrite: bool = False) -> dict:
    """Write the synthetic pedestrians to ``out`` (Market-1501 layout + ``attributes.csv``).

    The tree is built in a temporary folder beside ``out`` and renamed into
    place. An existing ``out`` is an error unless ``overwrite`` (then it is
    replaced). Returns ``{"train"|"query"|"gallery"|"gt_bbox": {"ids", "images"},
    "style", "seed", "height", "width", "cameras"}``.
    """
    out = Path(out)
    if cfg.train_ids + cfg.test_ids > 9999:
        raise UserError(f"synthetic set: train_ids + test_ids must be <= 9999 (4-digit pids), "
                        f"got {cfg.train_ids + cfg.test_ids}")
    if out.exists() and not overwrite:
        raise UserError(f"{out}: already exists; remove it or pass overwrite (--force)")
    if out.exists() and not (out / "attributes.csv").is_file() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not a synthetic data set (no attributes.csv); "
                        f"refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        rows = _generate(tmp, cfg)
        with open(tmp / "attributes.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, restval="")
            writer.writeheader()
            writer.writerows(rows)
        tmp.chmod(0o777 & ~io.umask())  # mkdtemp makes 0700; a data set is an ordinary folder
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    summary = {split: _counts(rows, split) for split in SPLIT_FOLDERS}
    summary.update(style=cfg.style, seed=cfg.seed, height=cfg.height, width=cfg.width, cameras=cfg.cameras)
    return summary


def _generate(root: Path, cfg: SynthConfig) -> list[dict]:
    rng = np.random.default_rng(cfg.seed)
    n = cfg.train_ids + cfg.test_ids
    pids = rng.permutation(np.arange(1, n + 1))
    train_pids = sorted(int(p) for p in pids[: cfg.train_ids])
    test_pids = sorted(int(p) for p in pids[cfg.train_ids:])
    w = _Writer(root, cfg, rng)
    identities: dict[int, Identity] = {}
    made: list[Identity] = []
    for pid in sorted(train_pids + test_pids):
        identities[pid] = w.make_identity(rng, w.palette, made)
        made.append(identities[pid])

    def cameras_of() -> list[int]:
        k = int(rng.integers(2, cfg.cameras + 1))
        return sorted(int(c) for c in rng.choice(cfg.cameras, k, replace=False))

    for pid in train_pids:
        ident = identities[pid]
        for cam in cameras_of():
            visit = _visit(rng, w.cameras[cam], ident, w.cv)
            for _ in range(cfg.images_per_camera):
                w.frame("train", pid, cam, ident, visit)

    visits: dict[int, list[tuple[int, dict]]] = {}
    for pid in test_pids:
        ident = identities[pid]
        cams = cameras_of()
        query_cams = [c for c in cams if rng.random() < 0.6] or [cams[int(rng.integers(len(cams)))]]
        visits[pid] = []
        for cam in cams:
            visit = _visit(rng, w.cameras[cam], ident, w.cv)
            visits[pid].append((cam, visit))
            for _ in range(cfg.images_per_camera):
                w.frame("gallery", pid, cam, ident, visit)
            if cam in query_cams:  # the query, and its gt_bbox frames for multi-query
                name, data, attrs = w.frame("query", pid, cam, ident, visit)
                w.save("gt_bbox", name, pid, cam, data, attrs)
                for _ in range(MULTI_QUERY_EXTRA):
                    w.frame("gt_bbox", pid, cam, ident, visit)

    for _ in range(cfg.distractors):  # pid 0000: strangers or empty background
        cam = int(rng.integers(cfg.cameras))
        if rng.random() < 0.5:
            stranger = w.make_identity(rng, w.palette, [])
            pose = _frame_pose(rng, _visit(rng, w.cameras[cam], stranger, w.cv), w.cv)
            data, attrs = w.render(cam, stranger, pose)
        else:
            data, attrs = w.render(cam, None, None)
        w.save("gallery", w.name(0, cam, int(rng.integers(1, 7))), 0, cam, data, attrs)

    for _ in range(cfg.junk):  # pid -1: badly framed detections of test ids
        pid = test_pids[int(rng.integers(len(test_pids)))]
        cam, visit = visits[pid][int(rng.integers(len(visits[pid])))]
        pose = _frame_pose(rng, visit, w.cv)
        pose["s"] = w.cv.h * float(rng.uniform(1.3, 2.2))
        pose["foot"] = w.cv.h * float(rng.uniform(0.9, 1.9))
        pose["cx"] = w.cv.w * float(rng.uniform(0.0, 1.0))
        pose["kind"] = "partial"
        data, attrs = w.render(cam, identities[pid], pose)
        w.save("gallery", w.name(-1, cam, visit["seq"]), -1, cam, data, attrs)
    return w.rows


# ---------------------------------------------------------------- example grid


def save_example_grid(root: str | Path, out_png: str | Path, rows: int = 4, cols: int = 8,
                      layout: str = "synthetic", cuhk03_subset: str = "labeled") -> None:
    """A PNG grid of training images: each row one identity, its images spread over cameras."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = load_layout(layout, root, cuhk03_subset).train
    by_pid: dict[int, list] = {}
    for s in train:
        by_pid.setdefault(s.pid, []).append(s)
    # identities seen by the most cameras first, then by pid
    pids = sorted(by_pid, key=lambda p: (-len({s.camid for s in by_pid[p]}), p))[:rows]
    fig, axes = plt.subplots(len(pids), cols, figsize=(cols * 0.85, len(pids) * 1.75), squeeze=False)
    for r, pid in enumerate(pids):
        per_cam: dict[int, list] = {}
        for s in by_pid[pid]:
            per_cam.setdefault(s.camid, []).append(s)
        order = []  # round-robin over cameras
        while len(order) < cols and any(per_cam.values()):
            for cam in sorted(per_cam):
                if per_cam[cam] and len(order) < cols:
                    order.append(per_cam[cam].pop(0))
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(order):
                with Image.open(order[c].path) as im:
                    ax.imshow(np.asarray(im.convert("RGB")))
                ax.set_title(f"c{order[c].camid + 1}", fontsize=7, pad=2)
            if c == 0:
                ax.set_ylabel(f"id {pid:04d}", fontsize=7)
    name = "synthetic pedestrians" if layout == "synthetic" else layout
    fig.suptitle(f"{name} ({Path(root).name}): one identity per row", fontsize=8)
    fig.tight_layout()
    io.save_figure(fig, out_png, dpi=110)


__all__ = ["PALETTES", "write_synthetic", "save_example_grid"]
