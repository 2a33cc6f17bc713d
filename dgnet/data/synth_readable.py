"""The ``readable`` synthetic world (``data.synth.world: readable``): people told apart by more than colour.

The same kinds of people as the classic world (``dgnet/data/synth.py``: the
same attributes, values and frequencies, a quarter of the identities colour
twins of another), drawn so that the cues besides clothing colour survive
the network's 64x32 input: hair in five well-separated colours, framing the
face or covering the back when long; big bags in a colour that stands out
from the clothes, the backpack showing beside the torso from the front too;
thick arms, so that bare forearms show; textures with a period of about a
seventh of the body and a second colour that contrasts with the first, drawn
as stripes, a grid or dots over a dominant top colour, on the sleeves too,
and a side view wide enough to show them; shoes from a palette of their own;
a wider range of body heights and widths. Cameras, poses,
backgrounds, illumination and the data-set layout are the classic world's.
"""

from __future__ import annotations

import math

import numpy as np

from dgnet.data.synth_draw import BAGS, SKIN, TEXTURE_P, TEXTURES, Canvas, Identity, jitter, paint

HAIR = (("black", (18, 16, 14)), ("brown", (105, 62, 28)), ("blond", (240, 210, 120)),
        ("grey", (196, 196, 202)), ("auburn", (200, 62, 20)))
SHOES = (("black", (20, 20, 22)), ("white", (238, 238, 232)), ("red", (205, 30, 30)),
         ("blue", (35, 75, 205)), ("brown", (115, 72, 35)), ("yellow", (238, 205, 40)))
CONTRAST = 120.0  # least RGB distance (0-255) of a texture's or a bag's colour from the clothes'


def _pick(rng: np.random.Generator, options) -> tuple[str, np.ndarray]:
    i = int(rng.integers(len(options)))
    return options[i][0], jitter(rng, options[i][1])


def _contrasting(rng: np.random.Generator, palette, against: list[str]) -> tuple[str, np.ndarray]:
    """A palette colour at least CONTRAST away from every colour named in ``against``."""
    rgb = dict(palette)
    far = [(n, c) for n, c in palette
           if all(np.linalg.norm(np.subtract(c, rgb[a], dtype=np.float32)) >= CONTRAST for a in against)]
    return _pick(rng, far or palette)


def make_identity(rng: np.random.Generator, palette, previous: list[Identity]) -> Identity:
    top, top_rgb = _pick(rng, palette)
    bottom, bottom_rgb = _pick(rng, palette)
    if previous and rng.random() < 0.25:  # a colour twin: same top and bottom colours
        twin = previous[int(rng.integers(len(previous)))]
        top, top_rgb, bottom, bottom_rgb = twin.top, twin.top_rgb, twin.bottom, twin.bottom_rgb
    top2, top2_rgb = _contrasting(rng, palette, [top])
    shoe, shoe_rgb = _pick(rng, SHOES)
    hair, hair_rgb = _pick(rng, HAIR)
    bag = BAGS[int(rng.choice(3, p=(0.5, 0.3, 0.2)))]
    bag_color, bag_rgb = _contrasting(rng, palette, [top, bottom])
    return Identity(
        top=top, top_rgb=top_rgb, top2=top2, top2_rgb=top2_rgb,
        texture=TEXTURES[int(rng.choice(4, p=TEXTURE_P))],
        tex_period=float(rng.uniform(0.13, 0.16)),
        sleeves="long" if rng.random() < 0.6 else "short",
        bottom=bottom, bottom_rgb=bottom_rgb,
        bottom_type="trousers" if rng.random() < 0.75 else "shorts",
        shoe=shoe, shoe_rgb=shoe_rgb, hair=hair, hair_rgb=hair_rgb,
        hair_long=bool(rng.random() < 0.35), skin=int(rng.integers(len(SKIN))),
        height_factor=float(rng.uniform(0.82, 1.06)), width_factor=float(rng.uniform(0.75, 1.3)),
        bag=bag, bag_color=bag_color, bag_rgb=bag_rgb,
    )


def _band(t: np.ndarray, duty: float, period_px: float) -> np.ndarray:
    """Soft periodic bands: 1 on a ``duty`` fraction of each period of ``t`` (in periods)."""
    d = np.abs((t % 1.0) - 0.5)  # 0 at the band's centre
    return np.clip((duty / 2 - d) * period_px + 0.5, 0, 1)


def _top_colors(cv: Canvas, ident: Identity, cx: float, y0: float, s: float):
    """The top's per-pixel colour: the top colour dominates, the second colour draws the pattern."""
    if ident.texture == "solid":
        return ident.top_rgb
    period = ident.tex_period * s
    u, v = (cv.xx - cx) / period, (cv.yy - y0) / period
    if ident.texture == "stripes":
        m = _band(v, 0.45, period)
    elif ident.texture == "checks":  # a grid
        m = np.maximum(_band(u, 0.3, period), _band(v, 0.3, period))
    else:  # dots
        d = np.hypot((u % 1.0) - 0.5, (v % 1.0) - 0.5)
        m = np.clip((0.26 - d) * period + 0.5, 0, 1)
    return ident.top_rgb + (ident.top2_rgb - ident.top_rgb) * m[..., None]


class _Person:
    """One pedestrian's geometry in pixels; ``draw`` paints it onto the image."""

    def __init__(self, img: np.ndarray, cv: Canvas, ident: Identity, pose: dict):
        self.img, self.cv, self.ident = img, cv, ident
        s = self.s = pose["s"]
        self.cx, self.foot, self.phase, self.f = pose["cx"], pose["foot"], pose["phase"], pose["facing"]
        self.view, self.side = pose["view"], pose["view"] == "side"
        self.stride = pose["stride"]
        wf = ident.width_factor
        self.top = self.foot - s
        self.y_sh, self.y_hip = self.top + 0.185 * s, self.top + 0.52 * s
        self.y_knee, self.y_ank = self.top + 0.745 * s, self.top + 0.965 * s
        self.hw_sh = (0.11 if self.side else 0.135) * s * wf  # side: wide enough for a texture period
        self.hw_hip = (0.1 if self.side else 0.11) * s * wf
        self.r_leg, self.r_arm = 0.05 * s * (0.85 + 0.15 * wf), 0.045 * s
        self.skin = np.asarray(SKIN[ident.skin], np.float32) / 255
        self.fill = _top_colors(cv, ident, self.cx, self.y_sh, s)  # the top's colour per pixel

    def paint(self, mask, color) -> None:
        paint(self.img, mask, color)

    def leg(self, hip_x: float, theta: float, bend: float, shade: float, lift: float = 0.0) -> None:
        s, f, ident = self.s, self.f, self.ident
        knee = (hip_x + f * math.sin(theta) * (self.y_knee - self.y_hip),
                self.y_hip + math.cos(theta) * (self.y_knee - self.y_hip))
        a = theta - bend
        ank = (knee[0] + f * math.sin(a) * (self.y_ank - self.y_knee),
               knee[1] + math.cos(a) * (self.y_ank - self.y_knee) - lift)
        shin = self.skin if ident.bottom_type == "shorts" else ident.bottom_rgb
        self.paint(self.cv.capsule((hip_x, self.y_hip), knee, self.r_leg), ident.bottom_rgb * shade)
        self.paint(self.cv.capsule(knee, ank, self.r_leg * 0.9), shin * shade)
        off = f * 0.03 * s if self.side else 0.0
        self.paint(self.cv.ellipse(ank[0] + off, ank[1] + 0.015 * s, (0.065 if self.side else 0.045) * s, 0.03 * s),
                   ident.shoe_rgb * shade)

    def arm(self, sh_x: float, alpha: float, bend: float, sign: float, shade: float) -> tuple[float, float]:
        """Sleeves wear the top's texture (``self.fill``)."""
        s, ident = self.s, self.ident
        shoulder = (sh_x, self.y_sh + 0.02 * s)
        elbow = (sh_x + sign * math.sin(alpha) * 0.165 * s, shoulder[1] + math.cos(alpha) * 0.165 * s)
        b = alpha + bend
        hand = (elbow[0] + sign * math.sin(b) * 0.15 * s, elbow[1] + math.cos(b) * 0.15 * s)
        sleeve_end = elbow if ident.sleeves == "long" else (
            (shoulder[0] + elbow[0]) / 2, (shoulder[1] + elbow[1]) / 2)  # short: bare from mid upper arm
        self.paint(self.cv.capsule(shoulder, elbow, self.r_arm), self.skin * shade)
        self.paint(self.cv.capsule(elbow, hand, self.r_arm * 0.9),
                   (self.fill if ident.sleeves == "long" else self.skin) * shade)
        self.paint(self.cv.capsule(shoulder, sleeve_end, self.r_arm * 1.05), self.fill * shade)
        self.paint(self.cv.ellipse(hand[0], hand[1], 0.03 * s, 0.032 * s), self.skin * shade)
        return hand

    def handbag(self, hand: tuple[float, float]) -> None:
        if self.ident.bag == "handbag":
            s = self.s
            self.paint(self.cv.box(hand[0] - 0.075 * s, hand[0] + 0.075 * s, hand[1] - 0.01 * s, hand[1] + 0.15 * s),
                       self.ident.bag_rgb)

    def backpack_behind(self) -> None:
        """Drawn before the torso: from the front or back it shows on both sides, from the side behind."""
        if self.ident.bag != "backpack":
            return
        s, cx = self.s, self.cx
        y0, y1 = self.y_sh + 0.01 * s, self.y_sh + 0.3 * s
        if self.side:
            x_in, x_out = cx - self.f * 0.4 * self.hw_sh, cx - self.f * (self.hw_sh + 0.14 * s)
            self.paint(self.cv.box(min(x_in, x_out), max(x_in, x_out), y0, y1), self.ident.bag_rgb)
        else:  # wider than the shoulders and above them, so that the arms do not hide it
            half = self.hw_sh + 0.07 * s
            self.paint(self.cv.box(cx - half, cx + half, self.y_sh - 0.04 * s, y1), self.ident.bag_rgb)

    def backpack_front(self) -> None:
        """Drawn over the torso: the pack itself seen from the back, thick straps from the front."""
        if self.ident.bag != "backpack" or self.side:
            return
        s, cx, hw = self.s, self.cx, self.hw_sh
        if self.view == "back":  # the top's texture still shows around it
            self.paint(self.cv.box(cx - 0.6 * hw, cx + 0.6 * hw, self.y_sh + 0.04 * s, self.y_sh + 0.26 * s),
                       self.ident.bag_rgb)
        else:
            for sx in (-0.55 * hw, 0.55 * hw):
                self.paint(self.cv.capsule((cx + sx, self.y_sh), (cx + sx * 1.05, self.y_sh + 0.24 * s), 0.028 * s),
                           self.ident.bag_rgb)

    def head(self) -> None:
        s, f, ident, cv = self.s, self.f, self.ident, self.cv
        hx = self.cx + (f * 0.02 * s if self.side else 0.0)
        hy, rx, ry = self.top + 0.08 * s, 0.066 * s, 0.078 * s
        hair = ident.hair_rgb
        if self.view == "back":
            if ident.hair_long:  # covers the upper back
                self.paint(cv.capsule((hx, hy), (hx, self.y_sh + 0.14 * s), 0.075 * s), hair)
            self.paint(cv.ellipse(hx, hy, rx * 1.12, ry * 1.08), hair)
            return
        if ident.hair_long and self.side:  # falls behind the head to the shoulder
            self.paint(cv.capsule((hx - f * 0.03 * s, hy), (hx - f * 0.045 * s, self.y_sh + 0.1 * s), 0.06 * s), hair)
        elif ident.hair_long:  # frames the face down to the shoulders
            for sx in (-1.0, 1.0):
                self.paint(cv.capsule((hx + sx * rx * 0.9, hy - 0.02 * s), (hx + sx * rx * 1.0, self.y_sh + 0.09 * s),
                                      0.035 * s), hair)
        self.paint(cv.ellipse(hx, hy, rx, ry), self.skin)
        if self.side:
            cap = cv.ellipse(hx - f * 0.02 * s, hy - 0.025 * s, rx * 1.12, ry * 0.85)
            self.paint(cap * (cv.xx * f < (hx + f * 0.03 * s) * f), hair)
        else:
            self.paint(cv.ellipse(hx, hy - 0.04 * s, rx * 1.15, ry * 0.7), hair)
            for ex in (-0.024 * s, 0.024 * s):
                self.paint(cv.ellipse(hx + ex, hy + 0.01 * s, 0.01 * s, 0.008 * s) * 0.7, np.zeros(3, np.float32))

    def draw(self) -> None:
        s, cx, f, phase = self.s, self.cx, self.f, self.phase
        cv, ident = self.cv, self.ident
        self.paint(cv.ellipse(cx, self.foot, 0.22 * s, 0.03 * s) * 0.45, np.zeros(3, np.float32))  # shadow
        torso = cv.trapezoid(cx, self.y_sh, self.y_hip + 0.02 * s, self.hw_sh, self.hw_hip)
        shoulders = cv.capsule((cx - self.hw_sh + 0.035 * s, self.y_sh + 0.035 * s),
                               (cx + self.hw_sh - 0.035 * s, self.y_sh + 0.035 * s), 0.035 * s)
        fill = self.fill
        amp = self.stride
        self.backpack_behind()
        if self.side:
            th = amp * math.sin(phase)

            def bend(ph: float) -> float:
                return 0.6 * amp * (1 + math.cos(ph)) / 2 + 0.05

            self.leg(cx, -th, bend(phase + math.pi), 0.75)  # far leg
            self.arm(cx, 0.8 * amp * math.sin(phase), 0.35, f, 0.75)  # far arm
            self.paint(torso, fill)
            self.paint(shoulders * 0.8, fill)
            self.leg(cx, th, bend(phase), 1.0)  # near leg
            self.head()
            self.handbag(self.arm(cx, -0.8 * amp * math.sin(phase), 0.35, f, 1.0))
            return
        for k, sign in enumerate((-1.0, 1.0)):
            lift = 0.12 * s * amp * max(0.0, math.sin(phase + k * math.pi))  # the swing is in depth
            self.leg(cx + sign * 0.055 * s * ident.width_factor, sign * 0.05 * f, 0.0, 1.0, lift)
        self.paint(torso, fill)
        self.paint(shoulders, fill)
        self.backpack_front()
        hands = [self.arm(cx + sign * (self.hw_sh - 0.02 * s), 0.12 + 0.12 * amp * math.sin(phase + k * math.pi),
                          -0.05, sign, 0.92) for k, sign in enumerate((-1.0, 1.0))]
        self.head()
        self.handbag(hands[0] if f < 0 else hands[1])


def draw_person(img: np.ndarray, cv: Canvas, ident: Identity, pose: dict) -> None:
    """Draw one pedestrian of the readable world (``pose`` as in the classic world)."""
    _Person(img, cv, ident, pose).draw()
