"""Synthetic motion with exact ground truth: frames at any ``t``, true flows and visibility.

A scene is a moving background plus ``n_layers`` textured foreground layers (textures cropped from
supplied images, or procedural), each cut out by an alpha shape (ellipse, polygon or blob) and
composited back to front. Every layer has a forward map from its texture coordinates ``q`` to frame
pixels at time ``t``::

    F(t)(q) = c0 + V t + a t (t - 1) + s0 exp(sigma t) R(theta0 + omega t) (q + t N(q) - qc)

translation (with curvature ``a``, so the path between frames is not straight), rotation and scale,
plus a smooth non-rigid displacement ``N`` (a few low-frequency sinusoids, Lipschitz constant
of ``t N`` at most 0.25 for ``|t| <= 1.5``, so ``q + t N(q)`` stays invertible). A frame at time ``t`` is rendered by backward
mapping each pixel through ``F(t)^-1`` (the affine part inverted in closed form, the non-rigid part
by a contracting fixed-point iteration), so it is exact at any ``t``; the flow from time ``t`` to
time ``s`` at pixel ``p`` is ``F(s)(F(t)^-1(p)) - p`` for the layer that owns ``p``, consistent
with the renders by construction. The background moves the same way (camera pan, zoom, a little
roll).

Optional nuisances: a global brightness gain linear in ``t`` and motion blur (averaging renders
over an exposure interval around each time; flows stay those of the centre time).

Use :class:`SyntheticMotion` directly, or the datasets :class:`SyntheticTripletDataset` and
:class:`SyntheticWindowDataset`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import InputError
from ..ops.warp import backward_warp

__all__ = ["SyntheticMotion", "SyntheticTripletDataset", "SyntheticWindowDataset", "procedural_texture"]

_NONRIGID_LIPSCHITZ = 0.25  # of t N for |t| <= 1.5, so the fixed-point inversion contracts
_INVERSE_ITERATIONS = 7  # contraction <= 0.25 / 1.5 for t in [0, 1]: error < 4e-6 of the amplitude


def procedural_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random ``(height, width, 3)`` float32 texture in [0, 1]: multi-scale coloured noise,
    a grating and a few hard-edged shapes, so that every region has structure to track."""
    texture = np.zeros((height, width, 3), np.float32)
    for octave, cell in enumerate((64, 24, 8, 3)):
        grid = rng.random((max(2, height // cell + 2), max(2, width // cell + 2), 3)).astype(np.float32)
        texture += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) / (octave + 1)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle, period = rng.uniform(0, math.pi), rng.uniform(4, 24)
    grating = np.sin((xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / period) + rng.uniform(0, 6.3))
    texture += grating[:, :, None] * rng.uniform(-0.6, 0.6, 3).astype(np.float32)
    for _ in range(rng.integers(3, 9)):
        colour = tuple(float(c) for c in rng.uniform(-0.5, 2.0, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        size = int(rng.integers(2, max(3, min(height, width) // 4)))
        if rng.random() < 0.5:
            cv2.circle(texture, centre, size, colour, -1, cv2.LINE_AA)
        else:
            corner = (centre[0] + size, centre[1] + int(rng.integers(2, size + 3)))
            cv2.rectangle(texture, centre, corner, colour, -1, cv2.LINE_AA)
    lo, hi = texture.min(axis=(0, 1)), texture.max(axis=(0, 1))
    texture = 0.05 + 0.9 * (texture - lo) / np.maximum(hi - lo, 1e-6)
    # a touch of blur keeps detail near the pixel scale, where bilinear resampling would alias
    return cv2.GaussianBlur(texture, (0, 0), 0.6)


def _image_texture(rng: np.random.Generator, image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A random crop of ``image`` (HWC uint8 RGB) at a random scale, resized to the texture size."""
    ih, iw = image.shape[:2]
    zoom = rng.uniform(0.5, 1.0)  # <1: the crop covers more image than texture pixels (downscale)
    ch, cw = min(ih, max(2, round(height / zoom))), min(iw, max(2, round(width / zoom)))
    y0, x0 = int(rng.integers(0, ih - ch + 1)), int(rng.integers(0, iw - cw + 1))
    crop = image[y0:y0 + ch, x0:x0 + cw]
    crop = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if ch >= height else cv2.INTER_LINEAR)
    return crop.astype(np.float32) / 255.0


def _shape_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An anti-aliased alpha shape (ellipse, polygon or blob) filling most of the texture, with a
    2-pixel transparent margin so samples beyond the texture (zero-padded) are transparent too."""
    mask = np.zeros((height, width), np.uint8)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    rx, ry = width / 2 - 2.5, height / 2 - 2.5
    kind = rng.integers(0, 3)
    if kind == 0:
        cv2.ellipse(mask, (round(cx * 16), round(cy * 16)), (round(rx * 16), round(ry * 16)), 0, 0, 360, 255,
                    -1, cv2.LINE_AA, shift=4)
        return mask.astype(np.float32) / 255.0
    if kind == 1:
        angles = np.sort(rng.uniform(0, 2 * math.pi, int(rng.integers(3, 8))))
        radii = rng.uniform(0.6, 1.0, angles.size)
    else:
        angles = np.linspace(0, 2 * math.pi, 72, endpoint=False)
        radii = np.ones_like(angles)
        for k in (2, 3, 5):
            radii += rng.uniform(0, 0.25 / k * 2) * np.sin(k * angles + rng.uniform(0, 6.3))
        radii /= radii.max()
    points = np.stack((cx + rx * radii * np.cos(angles), cy + ry * radii * np.sin(angles)), 1)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def _apply_affine(linear: np.ndarray, offset: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``linear @ v + offset`` for points ``v`` ``(..., 2)`` float32, written out elementwise
    (numpy's matmul is slow for a (N,2)x(2,2) product)."""
    (a, b), (c, d) = linear.astype(np.float32)
    ox, oy = offset.astype(np.float32)
    x, y = v[..., 0], v[..., 1]
    return np.stack((a * x + b * y + ox, c * x + d * y + oy), -1)


@dataclass
class _Layer:
    """One layer: an RGBA texture and the parameters of its forward map (see the module docstring).

    Coordinate arithmetic is numpy float32: single-threaded and fast on these small arrays (torch's
    intra-op threads cost more than they save here on a busy CPU). Only texture sampling is torch.
    """

    texture: torch.Tensor  # (1,4,h,w): RGB and alpha in texture coordinates
    centre: np.ndarray  # c0 (2,) frame position of the texture centre at t=0
    velocity: np.ndarray  # V (2,)
    curvature: np.ndarray  # a (2,)
    scale0: float
    log_scale_rate: float  # sigma
    angle0: float
    angular_rate: float  # omega
    wave_vectors: np.ndarray  # (K,2) of N
    wave_phases: np.ndarray  # (K,)
    wave_amplitudes: np.ndarray  # (K,2)
    padding: str  # grid_sample padding: "border" for the background, "zeros" for cut-outs

    def _affine(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Linear part ``(2,2)`` and offset ``(2,)`` of the affine map at time ``t``."""
        theta = self.angle0 + self.angular_rate * t
        s = self.scale0 * math.exp(self.log_scale_rate * t)
        linear = s * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        offset = self.centre + self.velocity * t + self.curvature * (t * (t - 1))
        return linear, offset

    def _nonrigid(self, q: np.ndarray) -> np.ndarray:
        phase = q @ self.wave_vectors.T.astype(np.float32) + self.wave_phases.astype(np.float32)
        return np.sin(phase) @ self.wave_amplitudes.astype(np.float32)

    def texture_centre(self) -> np.ndarray:
        h, w = self.texture.shape[-2:]
        return np.array([(w - 1) / 2, (h - 1) / 2])

    def forward_map(self, q: np.ndarray, t: float) -> np.ndarray:
        """Frame positions at time ``t`` of texture points ``q`` ``(..., 2)``."""
        linear, offset = self._affine(t)
        shifted = (q + t * self._nonrigid(q) if t != 0 else q) - self.texture_centre().astype(np.float32)
        return _apply_affine(linear, offset, shifted)

    def inverse_map(self, p: np.ndarray, t: float) -> np.ndarray:
        """Texture points ``(..., 2)`` that land on frame positions ``p`` at time ``t``."""
        linear, offset = self._affine(t)
        inverse = np.linalg.inv(linear)
        r = _apply_affine(inverse, self.texture_centre() - inverse @ offset, p)
        q = r
        for _ in range(_INVERSE_ITERATIONS if t != 0 else 0):  # solve q + t N(q) = r; t N contracts
            q = r - t * self._nonrigid(q)
        return q

    def sample(self, q: np.ndarray) -> np.ndarray:
        """RGBA ``(4,H,W)`` of the texture at points ``q`` ``(H,W,2)`` (bilinear)."""
        h, w = self.texture.shape[-2:]
        grid = q * np.array([2.0 / (w - 1), 2.0 / (h - 1)], np.float32) - 1.0
        return F.grid_sample(self.texture, torch.from_numpy(grid)[None], mode="bilinear",
                             padding_mode=self.padding, align_corners=True)[0].numpy()


class SyntheticMotion:
    """Random layered scenes with exact frames at any time, true flows and visibility masks.

    Args:
        size: frame size ``(H, W)`` or an int for square frames (each at least 16).
        n_layers: foreground layers over the background (0 gives a pure camera motion).
        seed: seeds the generator's own random stream (used when :meth:`sample` gets no ``rng``).
        images: optional textures: a sequence of image paths or ``(H,W,3)`` uint8 RGB arrays; each
            layer crops one at random (paths are read when used). ``None``: procedural textures.
        max_displacement: largest translation of a layer between t=0 and t=1, as a fraction of
            ``min(H, W)`` (the background pans at most half of it).
        max_rotation: largest rotation between t=0 and t=1, radians.
        max_zoom: largest ``|log|`` of the scale change between t=0 and t=1.
        nonrigid: amplitude of the non-rigid displacement at t=1 in pixels, as a fraction of
            ``min(H, W)`` (limited further to keep the deformation invertible).
        brightness: largest ``|g|`` of the global gain ``1 + g t`` (0 disables it).
        blur_exposure: exposure interval for motion blur, in units of ``t`` (0 disables blur).
        blur_samples: renders averaged per frame when blurring.
    """

    def __init__(self, size: int | tuple[int, int] = 128, n_layers: int = 3, seed: int = 0,
                 images: Sequence[str | Path | np.ndarray] | None = None, max_displacement: float = 0.25,
                 max_rotation: float = 0.35, max_zoom: float = 0.2, nonrigid: float = 0.03,
                 brightness: float = 0.1, blur_exposure: float = 0.0, blur_samples: int = 5):
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        if min(height, width) < 16:
            raise InputError(f"synthetic frames must be at least 16x16, got {width}x{height}")
        if n_layers < 0:
            raise InputError(f"n_layers must be >= 0, got {n_layers}")
        if blur_exposure < 0 or blur_samples < 1:
            raise InputError(f"blur_exposure must be >= 0 and blur_samples >= 1, got {blur_exposure}, {blur_samples}")
        if images is not None:
            images = list(images)
            if not images:
                raise InputError("images is empty: pass None for procedural textures")
            for image in images:
                if not isinstance(image, np.ndarray) and not Path(image).is_file():
                    raise InputError(f"texture image not found: {image}")
        self.height, self.width = height, width
        self.n_layers = n_layers
        self.images = images
        self.max_displacement, self.max_rotation, self.max_zoom = max_displacement, max_rotation, max_zoom
        self.nonrigid, self.brightness = nonrigid, brightness
        self.blur_exposure, self.blur_samples = blur_exposure, blur_samples
        self.rng = np.random.default_rng(seed)

    # ----- scene construction -----------------------------------------------------------------
    def _texture(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        if self.images is None:
            return procedural_texture(rng, height, width)
        image = self.images[int(rng.integers(0, len(self.images)))]
        if not isinstance(image, np.ndarray):
            bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
            if bgr is None:
                raise InputError(f"cannot read texture image {image}")
            image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return _image_texture(rng, image, height, width)

    def _layer(self, rng: np.random.Generator, background: bool) -> _Layer:
        h, w = self.height, self.width
        side = min(h, w)
        direction = rng.uniform(0, 2 * math.pi)
        reach = self.max_displacement * side * (0.5 if background else 1.0)
        speed = reach * math.sqrt(rng.random())  # favours larger motions over a plain uniform draw
        velocity = np.array([math.cos(direction), math.sin(direction)]) * speed
        curvature = rng.normal(0, 0.25 * speed / 2, 2)
        rotation_scale = 0.15 if background else 1.0  # camera roll is small
        angular_rate = rng.uniform(-1, 1) * self.max_rotation * rotation_scale
        log_scale_rate = rng.uniform(-1, 1) * self.max_zoom * (0.5 if background else 1.0)
        if background:
            scale0, angle0 = 1.0, 0.0
            centre = np.array([(w - 1) / 2, (h - 1) / 2])
            # texture large enough to cover the frame over t in [-0.5, 1.5] (rotation included);
            # beyond it the border is replicated
            travel = 2.0 * speed + 2.0 * float(np.abs(curvature).max())
            shrink = math.exp(-2.0 * abs(log_scale_rate))
            extent = (math.hypot(h, w) + 2 * travel) / shrink + 8
            th = tw = int(math.ceil(extent))
            alpha = np.ones((th, tw), np.float32)
        else:
            scale0 = math.exp(rng.uniform(-0.2, 0.2))
            angle0 = rng.uniform(-math.pi, math.pi)
            centre = rng.uniform(0.1, 0.9, 2) * np.array([w, h])
            diameter = rng.uniform(0.25, 0.6) * side
            aspect = math.exp(rng.uniform(-0.5, 0.5))
            th = max(8, int(diameter * math.sqrt(aspect)))
            tw = max(8, int(diameter / math.sqrt(aspect)))
            alpha = _shape_mask(rng, th, tw)
        rgb = self._texture(rng, th, tw)
        texture = torch.from_numpy(np.concatenate((rgb, alpha[:, :, None]), 2)).permute(2, 0, 1)[None].contiguous()

        n_waves = 3
        wavelengths = rng.uniform(0.5, 1.5, n_waves) * (side if background else max(th, tw))
        wave_angles = rng.uniform(0, 2 * math.pi, n_waves)
        wave_vectors = np.stack((np.cos(wave_angles), np.sin(wave_angles)), 1) * (2 * math.pi / wavelengths)[:, None]
        amplitudes = rng.normal(0, 1, (n_waves, 2))
        amplitudes *= self.nonrigid * side * rng.random() / max(np.abs(amplitudes).sum(), 1e-6)
        # bound the Lipschitz constant of N so q + t N(q) is invertible by fixed-point iteration
        lipschitz = float((np.linalg.norm(amplitudes, axis=1) * np.linalg.norm(wave_vectors, axis=1)).sum())
        if 1.5 * lipschitz > _NONRIGID_LIPSCHITZ:
            amplitudes *= _NONRIGID_LIPSCHITZ / (1.5 * lipschitz)
        return _Layer(texture=texture, centre=centre, velocity=velocity, curvature=curvature,
                      scale0=scale0, log_scale_rate=log_scale_rate, angle0=angle0, angular_rate=angular_rate,
                      wave_vectors=wave_vectors, wave_phases=rng.uniform(0, 2 * math.pi, n_waves),
                      wave_amplitudes=amplitudes,
                      padding="border" if background else "zeros")

    # ----- rendering -------------------------------------------------------------------------------
    def _render(self, layers: list[_Layer], points: np.ndarray, t: float):
        """Colour ``(3,H,W)``, per-layer compositing weights ``(L,H,W)`` (back to front, summing to
        1) and per-layer texture coordinates ``(L,H,W,2)`` of the frame at time ``t`` (numpy)."""
        coords = np.stack([layer.inverse_map(points, t) for layer in layers])
        rgba = np.stack([layer.sample(q) for layer, q in zip(layers, coords)])  # (L,4,H,W)
        weights = np.empty_like(rgba[:, 3])
        remaining = np.ones_like(rgba[0, 3])
        for index in range(len(layers) - 1, -1, -1):  # front to back: what is left shows through
            alpha = rgba[index, 3] if index > 0 else np.ones_like(remaining)
            weights[index] = alpha * remaining
            remaining = remaining * (1 - alpha)
        colour = (weights[:, None] * rgba[:, :3]).sum(0)
        return colour, weights, coords

    def _render_blurred(self, layers: list[_Layer], points: np.ndarray, t: float) -> np.ndarray:
        offsets = np.linspace(-0.5, 0.5, self.blur_samples) * self.blur_exposure
        return np.mean([self._render(layers, points, t + float(o))[0] for o in offsets], axis=0)

    def sample(self, times: Sequence[float] = (0.0, 0.5, 1.0), rng: np.random.Generator | None = None) -> dict:
        """Draw a random scene and render it at ``times``.

        Args:
            times: times in [0, 1] (0 and 1 are the key frames the flows refer to).
            rng: random stream for the scene; the generator's own (seeded) stream by default.

        Returns a dict of float32 tensors (``T = len(times)``):
            ``frames`` (T,3,H,W) in [0,1]; ``times`` (T,);
            ``flow_to_0``, ``flow_to_1`` (T,2,H,W): backward flows from each frame to the frames at
            t=0 and t=1, in pixels, so ``backward_warp(frame_at_0, flow_to_0[i]) ~ frames[i]``;
            ``visible_in_0``, ``visible_in_1`` (T,1,H,W) in {0,1}: 1 where the content of pixel p of
            frame i is visible (not occluded, inside the frame) in frame 0 / frame 1;
            ``flow_01``, ``flow_10`` (2,H,W): flows between the key frames (``flow_01`` takes frame 0
            to frame 1 forward, i.e. the motion of frame 0's pixels; ``flow_10`` the reverse);
            ``visible_01``, ``visible_10`` (1,H,W): their visibility masks;
            ``gain`` (T,): brightness gain applied to each frame.
        """
        times = [float(t) for t in times]
        if not times or any(not (0.0 <= t <= 1.0) for t in times):
            raise InputError(f"times must be a non-empty list of values in [0, 1], got {times}")
        rng = self.rng if rng is None else rng
        layers = [self._layer(rng, background=True)] + [self._layer(rng, background=False)
                                                        for _ in range(self.n_layers)]
        gain_rate = rng.uniform(-1, 1) * self.brightness
        ys, xs = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        points = np.stack((xs, ys), -1)  # (H,W,2) x, y

        renders = {t: self._render(layers, points, t) for t in sorted(set(times) | {0.0, 1.0})}
        flows = {}

        def flow_between(t_from: float, t_to: float):
            if (t_from, t_to) not in flows:
                _, weights, coords = renders[t_from]
                flows[t_from, t_to] = self._flow_to(layers, coords, weights.argmax(0), points,
                                                    renders[t_to][1], t_to)
            return flows[t_from, t_to]

        result = {name: [] for name in ("frames", "flow_to_0", "flow_to_1", "visible_in_0", "visible_in_1")}
        for t in times:
            colour = self._render_blurred(layers, points, t) if self.blur_exposure > 0 else renders[t][0]
            result["frames"].append(np.clip(colour * (1 + gain_rate * t), 0, 1))
            for key in (0.0, 1.0):
                flow, visible = flow_between(t, key)
                result[f"flow_to_{int(key)}"].append(flow)
                result[f"visible_in_{int(key)}"].append(visible)
        out = {name: torch.from_numpy(np.stack(values)) for name, values in result.items()}
        out["times"] = torch.tensor(times, dtype=torch.float32)
        out["gain"] = 1 + gain_rate * out["times"]
        for name, t_from, t_to in (("01", 0.0, 1.0), ("10", 1.0, 0.0)):
            flow, visible = flow_between(t_from, t_to)
            out[f"flow_{name}"], out[f"visible_{name}"] = torch.from_numpy(flow), torch.from_numpy(visible)
        return out

    def _flow_to(self, layers, coords, owner, points, target_weights, target_time):
        """Flow ``(2,H,W)`` from a frame (texture coordinates ``coords``, ``owner``: the layer whose
        content each pixel shows) to the frame at ``target_time``, and the visibility ``(1,H,W)`` of each pixel's content there."""
        targets = np.stack([layer.forward_map(q, target_time) for layer, q in zip(layers, coords)])  # (L,H,W,2)
        landing = np.take_along_axis(targets, owner[None, :, :, None], 0)[0]  # (H,W,2)
        flow = np.ascontiguousarray((landing - points).transpose(2, 0, 1))
        # the owner's compositing weight where the content lands in the target frame
        landed = backward_warp(torch.from_numpy(target_weights)[None], torch.from_numpy(flow)[None],
                               padding_mode="zeros")[0].numpy()
        weight_there = np.take_along_axis(landed, owner[None], 0)
        inside = ((landing[..., 0] >= 0) & (landing[..., 0] <= self.width - 1)
                  & (landing[..., 1] >= 0) & (landing[..., 1] <= self.height - 1))
        visible = (weight_there > 0.5) & inside[None]
        return flow, visible.astype(np.float32)


class _SyntheticDataset(Dataset):
    def __init__(self, size, n_layers, seed, length, images, motion_options):
        if length < 1:
            raise InputError(f"a synthetic dataset needs length >= 1, got {length}")
        self.generator = SyntheticMotion(size, n_layers, seed, images, **motion_options)
        self.seed, self.length = seed, length

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return np.random.default_rng([self.seed, index])  # item i is the same in any worker, any epoch


class SyntheticTripletDataset(_SyntheticDataset):
    """Synthetic triplets: ``length`` items, item ``i`` a fixed random scene (seeded by ``seed, i``).

    Each item is a dict: ``frame0``, ``frame1``, ``gt`` ``(3,H,W)`` float32 in [0,1], ``t`` 0-d
    (uniform in ``t_range``), and the ground truth ``flow_t0``, ``flow_t1`` ``(2,H,W)`` (backward
    flows from ``gt``), ``visible_t0``, ``visible_t1`` ``(1,H,W)``, ``flow_01``, ``flow_10``.
    Further keyword options go to :class:`SyntheticMotion`.
    """

    def __init__(self, size: int | tuple[int, int] = 128, length: int = 10000, seed: int = 0,
                 n_layers: int = 3, images: Sequence[str | Path | np.ndarray] | None = None,
                 t_range: tuple[float, float] = (0.05, 0.95), **motion_options):
        super().__init__(size, n_layers, seed, length, images, motion_options)
        self.t_range = t_range

    def __getitem__(self, index: int) -> dict:
        rng = self._rng(index)
        t = float(rng.uniform(*self.t_range))
        s = self.generator.sample((0.0, t, 1.0), rng)
        return {"frame0": s["frames"][0], "frame1": s["frames"][2], "gt": s["frames"][1],
                "t": torch.tensor(t, dtype=torch.float32),
                "flow_t0": s["flow_to_0"][1], "flow_t1": s["flow_to_1"][1],
                "visible_t0": s["visible_in_0"][1], "visible_t1": s["visible_in_1"][1],
                "flow_01": s["flow_01"], "flow_10": s["flow_10"]}


class SyntheticWindowDataset(_SyntheticDataset):
    """Synthetic windows of ``window`` frames evenly spaced over one scene's motion (t = 0 .. 1).

    Each item: ``frames`` ``(T,3,H,W)`` float32 in [0,1], ``times`` ``(T,)``, ``flow_to_0`` and
    ``flow_to_1`` ``(T,2,H,W)``, ``visible_in_0`` and ``visible_in_1`` ``(T,1,H,W)``.
    """

    def __init__(self, size: int | tuple[int, int] = 128, window: int = 9, length: int = 10000, seed: int = 0,
                 n_layers: int = 3, images: Sequence[str | Path | np.ndarray] | None = None, **motion_options):
        if window < 2:
            raise InputError(f"a window needs at least 2 frames, got {window}")
        super().__init__(size, n_layers, seed, length, images, motion_options)
        self.window = window

    def __getitem__(self, index: int) -> dict:
        s = self.generator.sample(np.linspace(0.0, 1.0, self.window).tolist(), self._rng(index))
        return {key: s[key] for key in ("frames", "times", "flow_to_0", "flow_to_1", "visible_in_0", "visible_in_1")}
