"""``keyframe-peft``: a frozen video diffusion network adapted to interpolation by a small trainable
module (after Jin et al., "A study of video frame interpolation based on pre-trained video diffusion
models using parameter-efficient fine-tuning").

The base is the shipped ``mivid`` denoiser (:class:`~vfi_core.models.mivid.MiVIDNet`), loaded from
its own weight file and frozen: this model's weight file holds only what it trains, and its model
card names the base file and its sha256, which must match at load. Two trainable parts, both
starting as the identity (their last projections are zero), so an untrained module computes
exactly what the base does:

- **Condition encoder** (ControlNet): a trainable copy of the base's encoder and middle (input
  convolution, encoder blocks, bottleneck with its temporal attention), initialised from the base.
  It reads the base's own input plus, through a zero-initialised convolution, the condition ``c``:
  the clip with only its first and last frames kept (zeros between) and the keyframe mask ``m``
  (1 on those two frames) concatenated along the channels. Its features at each level pass
  zero-initialised 1x1 convolutions and are added to the frozen decoder's skip connections and to
  the bottleneck's output.
- **Keyframe attention** (the paper's eq. 2) at the start of the base's blocks: queries from every
  frame ``z_i``, keys and values from the first and last frames ``[z_1, z_n]``. The *spatial* form
  concatenates the two keyframes' features along the channels, as the paper, and attends over the
  positions of the frame; the *temporal* form attends, at each position, over the two keyframes as
  two tokens carrying their frame-time encodings (so each frame can weigh the nearer keyframe).
  Spatial attention costs the product of the positions and the keyframes' positions, so its keys
  and values are average-pooled (``kv_pool``, as spatial-reduction attention) and by default it runs
  at the quarter level only (``spatial_levels``); the temporal form runs at the half and quarter
  levels (``temporal_levels``; at full size it would cost as much as the base network).

Training (:mod:`.recipe`, ``vfi train keyframe-peft``): the noise-prediction loss on 7-frame clips,
first and last frames given, the five between them generated, as the paper.

Inference is :class:`~vfi_core.models.mivid.MiVID`'s (the same guide, working size, DDIM/DDPM
sampling, ``strength`` and window mode) with this network in place of the base.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ModelConfig
from ...errors import InputError, WeightsError
from ...files import file_sha256
from ...registry import WEIGHTS_DIR, ModelDescriptor, register
from ..mivid import masking
from ..mivid import model as mivid

LEVELS = (0, 1, 2)   # full, 1/2 and 1/4 of the working size


@dataclass(frozen=True)
class KeyframePEFTConfig(ModelConfig):
    """Architecture of :class:`KeyframePEFTNet` (saved in the model card as ``architecture.config``).

    Args:
        base_weights: the frozen base's weight file: a file name looked up where the model's weights
            are (``--weight-dir`` folders, then the shipped weights), or a path.
        base_sha256: sha256 of that file. Empty when building a new module: it is filled in from the
            file found, and a weight file's card carries it, so a module never runs on another base.
        base_config: the base's architecture (filled in from its model card; what the diffusion
            settings below come from).
        heads: attention heads of the keyframe attention (divides every block's width).
        spatial_levels, temporal_levels: the levels (0 full, 1 half, 2 quarter of the working size)
            whose blocks get spatial / temporal keyframe attention.
        kv_pool: the spatial form's keys and values are average-pooled by this factor.
    """

    config_name = "keyframe-peft"

    base_weights: str = "mivid.safetensors"
    base_sha256: str = ""
    base_config: dict = field(default_factory=dict)
    heads: int = 4
    spatial_levels: tuple[int, ...] = (2,)
    temporal_levels: tuple[int, ...] = (1, 2)
    kv_pool: int = 2

    def __post_init__(self):
        if self.heads < 1 or self.kv_pool < 1:
            raise InputError(f"keyframe-peft config: heads and kv_pool must be at least 1, got {self.heads}, "
                             f"{self.kv_pool}")
        for name in ("spatial_levels", "temporal_levels"):
            levels = tuple(getattr(self, name))
            if any(level not in LEVELS for level in levels) or len(set(levels)) != len(levels):
                raise InputError(f"keyframe-peft config: {name} lists distinct levels among {LEVELS}, got {levels}")

    # the diffusion settings shared code reads from a network's config are the frozen base's
    def _base(self) -> mivid.MiVIDConfig:
        return mivid.MiVIDConfig.coerce(dict(self.base_config))

    @property
    def schedule(self) -> str:
        return self._base().schedule

    @property
    def timesteps(self) -> int:
        return self._base().timesteps

    @property
    def prediction(self) -> str:
        return self._base().prediction

    @property
    def work_side(self) -> int:
        return self._base().work_side

    @property
    def base(self) -> str:
        """The base's estimate of the masked frames (``flow`` or ``linear``), as :class:`MiVIDConfig`."""
        return self._base().base


def find_base(name: str, search_dirs: tuple[Path, ...] = ()) -> Path:
    """The base weight file ``name``: a path to a file, or a file name in ``search_dirs`` then the
    shipped weights; :class:`WeightsError` when there is none."""
    given = Path(name)
    if given.is_file() and (given.is_absolute() or len(given.parts) > 1):
        return given
    for folder in (*search_dirs, WEIGHTS_DIR):
        path = Path(folder) / given.name
        if path.is_file():
            return path
    raise WeightsError(f"keyframe-peft needs its frozen base {given.name}, which is not in vfi_core/weights/ "
                       "(or the weight folders given)")


def load_base(config: KeyframePEFTConfig, search_dirs: tuple[Path, ...] = ()) \
        -> tuple[mivid.MiVIDNet, KeyframePEFTConfig]:
    """The frozen base network of ``config`` (float32, CPU, eval, no gradients) and the config with
    the base's sha256 and architecture filled in; :class:`WeightsError` when the file found is not
    the one the config names by sha256."""
    path = find_base(config.base_weights, search_dirs)
    digest = file_sha256(path)
    if config.base_sha256 and config.base_sha256 != digest:
        raise WeightsError(f"keyframe-peft was trained on another {Path(config.base_weights).name} (sha256 "
                           f"{config.base_sha256[:12]}..., found {digest[:12]}... at {path.name}): use the base it "
                           "was trained on, or train the module again on this one")
    base = mivid.load_network(path, torch.device("cpu"), torch.float32)
    return base, replace(config, base_sha256=digest, base_config=base.config.to_dict())


class KeyframeAttention(nn.Module):
    """Keyframe attention on the ``(B*T,C,h,w)`` features of clips of ``T`` frames: queries from each
    frame, keys and values from the first and last frames, added to the input through a
    zero-initialised output projection (module docstring).

    Args:
        channels: ``C``. heads: attention heads (divides ``C``). embed: width of the frame-time
            encodings (temporal form). mode: ``"spatial"`` or ``"temporal"``. pool: the spatial
            form's keys and values are average-pooled by this factor.
    """

    def __init__(self, channels: int, heads: int, embed: int, mode: str, pool: int = 1):
        super().__init__()
        if mode not in ("spatial", "temporal"):
            raise InputError(f"keyframe attention: mode is spatial or temporal, got {mode!r}")
        if channels % heads:
            raise InputError(f"keyframe attention: heads ({heads}) must divide the block width ({channels})")
        self.mode, self.heads, self.pool = mode, heads, pool
        self.norm = nn.GroupNorm(mivid._groups(channels), channels)
        self.q = nn.Linear(channels, channels)
        # spatial: K, V from the two keyframes concatenated along the channels (the paper's [z_1, z_n])
        self.kv = nn.Linear(2 * channels if mode == "spatial" else channels, 2 * channels)
        self.position = nn.Linear(embed, channels) if mode == "temporal" else None
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B*T,C,h,w)``, ``position`` ``(B,T,E)`` frame-time encodings; returns ``x``'s shape."""
        b, t = position.shape[:2]
        _, c, h, w = x.shape
        n, heads, d = h * w, self.heads, c // self.heads
        normed = self.norm(x).view(b, t, c, h, w)
        y = normed.view(b, t, c, n).transpose(2, 3)                                 # (B,T,n,C)
        if self.mode == "spatial":
            q = self.q(y).view(b, t, n, heads, d).transpose(2, 3)                   # (B,T,H,n,d)
            ends = torch.cat((normed[:, 0], normed[:, -1]), 1)                      # (B,2C,h,w)
            if self.pool > 1:
                ends = F.avg_pool2d(ends, self.pool, ceil_mode=True)
            m = ends.shape[-2] * ends.shape[-1]
            k, v = self.kv(ends.flatten(2).transpose(1, 2)).chunk(2, -1)           # (B,m,C) each
            k, v = (a.view(b, 1, m, heads, d).transpose(2, 3).expand(b, t, heads, m, d) for a in (k, v))
            out = F.scaled_dot_product_attention(q, k, v).transpose(2, 3).reshape(b, t, n, c)
        else:
            y = y + self.position(position)[:, :, None]                            # frame times
            q = self.q(y).permute(0, 2, 1, 3).reshape(b, n, t, heads, d).transpose(2, 3)   # (B,n,H,T,d)
            keys = torch.stack((y[:, 0], y[:, -1]), 2)                              # (B,n,2,C)
            k, v = (a.reshape(b, n, 2, heads, d).transpose(2, 3) for a in self.kv(keys).chunk(2, -1))
            out = F.scaled_dot_product_attention(q, k, v).transpose(2, 3).reshape(b, n, t, c).transpose(1, 2)
        out = self.out(out).transpose(2, 3).reshape(b * t, c, h, w)
        return x + out


class KeyframeBlock(nn.Module):
    """The keyframe attention placed before one block of the base: spatial, temporal, or both."""

    def __init__(self, channels: int, heads: int, embed: int, spatial: bool, temporal: bool, pool: int = 1):
        super().__init__()
        self.spatial = KeyframeAttention(channels, heads, embed, "spatial", pool) if spatial else None
        self.temporal = KeyframeAttention(channels, heads, embed, "temporal") if temporal else None

    def forward(self, x: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        if self.spatial is not None:
            x = self.spatial(x, position)
        if self.temporal is not None:
            x = self.temporal(x, position)
        return x


def _zero_conv(cin: int, cout: int, kernel: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, kernel, 1, kernel // 2)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class ConditionEncoder(nn.Module):
    """ControlNet's trainable copy of the base's encoder and middle, fed the base's input plus the
    keyframe condition; returns the residuals for the decoder's two skips and the bottleneck."""

    COPIED = ("time_mlp", "frame_mlp", "inp", "enc0", "down0", "enc1", "down1", "mid1", "attention", "mid2")

    def __init__(self, base: mivid.MiVIDNet):
        super().__init__()
        for name in self.COPIED:
            setattr(self, name, copy.deepcopy(getattr(base, name)).requires_grad_(True))
        w0, w1, w2 = base.config.widths
        self.condition = _zero_conv(4, w0, 3)   # c (3) + keyframe mask (1)
        self.zero = nn.ModuleList([_zero_conv(w, w) for w in (w0, w1, w2)])

    def forward(self, x: torch.Tensor, condition: torch.Tensor, steps: torch.Tensor, frames: torch.Tensor):
        """``x`` ``(B*T,10,h,w)`` the base's input, ``condition`` ``(B*T,4,h,w)``, ``steps`` ``(B,E)``
        and ``frames`` ``(B,T,E)`` the sinusoidal encodings; returns three ``(B*T,C_l,h_l,w_l)``."""
        position = self.frame_mlp(frames)
        emb = self.time_mlp(steps)[:, None] + position
        x = self.inp(x) + self.condition(condition)
        for block in self.enc0:
            x = block(x, emb)
        r0 = self.zero[0](x)
        x = self.down0(x)
        for block in self.enc1:
            x = block(x, emb)
        r1 = self.zero[1](x)
        x = self.mid2(self.attention(self.mid1(self.down1(x), emb), position), emb)
        return r0, r1, self.zero[2](x)


class KeyframePEFTNet(nn.Module):
    """The frozen base with the trainable condition encoder and keyframe attention (module docstring).

    ``forward(z, visible, base, mask, tau, timestep)`` as :class:`~vfi_core.models.mivid.MiVIDNet`'s
    (``(B,3,T,H,W)`` in [-1, 1], ``mask`` ``(B,1,T,1,1)``, ``tau`` ``(B,T)``, ``timestep`` ``(B,)``);
    the first and last frames are the keyframes. The base is held outside the module tree: it is not in
    :meth:`state_dict` (the weight file holds only the trainable module) nor in :meth:`parameters`,
    and moves with the module (``.to``).

    Args:
        config: :class:`KeyframePEFTConfig` or its dict.
        base: the base network (tests, or a caller that loaded it); ``None`` loads
            ``config.base_weights`` (:func:`load_base`).
        search_dirs: folders searched for the base before the shipped weights.
    """

    def __init__(self, config: KeyframePEFTConfig | dict | None = None, base: mivid.MiVIDNet | None = None,
                 search_dirs: tuple[Path, ...] = ()):
        super().__init__()
        config = KeyframePEFTConfig.coerce(config)
        if base is None:
            base, config = load_base(config, search_dirs)
        else:
            config = replace(config, base_config=base.config.to_dict())
        self.config = config
        self._frozen = [base.requires_grad_(False).eval()]   # a list: not a submodule
        w0, w1, w2 = base.config.widths
        e = base.config.embed
        self.control = ConditionEncoder(base)
        places = {f"enc0_{i}": (0, w0) for i in range(len(base.enc0))}
        places.update({f"enc1_{i}": (1, w0 if i == 0 else w1) for i in range(len(base.enc1))})
        places.update({"mid1": (2, w1), "mid2": (2, w2), "dec1": (1, 2 * w1), "dec0": (0, 2 * w0)})
        self.keyframe = nn.ModuleDict({
            name: KeyframeBlock(width, config.heads, e, level in config.spatial_levels,
                                level in config.temporal_levels, config.kv_pool)
            for name, (level, width) in places.items()
            if level in config.spatial_levels or level in config.temporal_levels})

    @property
    def base(self) -> mivid.MiVIDNet:
        """The frozen base network."""
        return self._frozen[0]

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self._frozen[0]._apply(fn, recurse)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        self._frozen[0].eval()
        return self

    def _attend(self, name: str, x: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        block = self.keyframe[name] if name in self.keyframe else None
        return x if block is None else block(x, position)

    def forward(self, z, visible, base, mask, tau, timestep) -> torch.Tensor:
        """The base's forward with the keyframe attention before its blocks and the condition encoder's
        residuals on its skips and bottleneck (:meth:`MiVIDNet.forward`'s ``attend`` and ``control``)."""
        self.base.check_inputs(z, visible, base, mask, tau, timestep)
        b, _, t, h, w = z.shape
        if t < 3:
            raise InputError(f"keyframe-peft: clips need two keyframes and a frame between, got {t} frames")
        ends = torch.zeros(1, 1, t, 1, 1, device=z.device, dtype=z.dtype)
        ends[:, :, [0, -1]] = 1
        condition = torch.cat((visible * ends, ends.expand(b, 1, t, h, w)), 1).transpose(1, 2).reshape(b * t, 4, h, w)

        def control(x_in, steps, frames):
            return self.control(x_in, condition, steps, frames)

        return self.base(z, visible, base, mask, tau, timestep, attend=self._attend, control=control)


def load_network(weights: Path, device: torch.device, dtype: torch.dtype,
                 search_dirs: tuple[Path, ...] = ()) -> KeyframePEFTNet:
    """The module of a weight file and its model card, on the base the card names (checked by sha256)."""
    from ...weights import load_state_dict, read_model_card, state_dict_mismatch

    arch = read_model_card(weights).get("architecture", {})
    if arch.get("class") != KeyframePEFTNet.__name__ or "config" not in arch:
        raise WeightsError(f"{weights}: its model card (the .json beside it) does not describe the "
                           "KeyframePEFTNet architecture; export weights with `vfi export`")
    config = KeyframePEFTConfig.from_dict(arch["config"])
    if not config.base_sha256:
        raise WeightsError(f"{Path(weights).name}: its model card does not name the base's sha256")
    net = KeyframePEFTNet(config, search_dirs=search_dirs)
    state = load_state_dict(weights)
    mismatch = state_dict_mismatch(net.state_dict(), state)
    if mismatch:
        raise WeightsError(f"{Path(weights).name} does not match the KeyframePEFTNet its model card describes: "
                           f"{mismatch}")
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.to(device=device, dtype=dtype).eval()


# The paper's protocol, in training and per-clip adaptation: the ends given, every frame between them
# generated (as mivid's hybrid masking: the curriculum at rate 1 with the ends kept)
KEYFRAME_MASKING = {"random": False, "motion": False, "curriculum": True, "p_min": 1.0, "p_max": 1.0,
                    "keep_ends": True}


class KeyframePEFT(mivid.MiVID):
    descriptor = ModelDescriptor(
        name="keyframe-peft",
        summary="Keyframe-attention PEFT: the frozen mivid diffusion network with a trained condition encoder "
                "(ControlNet) and keyframe attention to the first and last frames; sampled like mivid.",
        arbitrary_t=True,
        size_multiple=1,
        supports_half=False,
        weight_file="keyframe-peft.safetensors",
        recipe="vfi_core.models.keyframe_peft.recipe:KeyframePEFTRecipe",
        gives_confidence=False,
        adaptable=True,
        # one CPU core (854x480): 1.8x mivid's time, the two timed alternately in one process
        seconds_per_megapixel={"cpu": 11.0},
        params=tuple(p for p in mivid.MiVID.descriptor.params if p.group != "adapt"),
    )

    def _load_network(self) -> KeyframePEFTNet:
        return load_network(self.weights, self.device, self.dtype, self.weight_dirs)

    # adaptation (mivid's, on clips of the clip's own windows): low-rank adapters on the keyframe
    # attention and the condition encoder's zero projections, the frames between the ends generated
    adapter_targets = ("keyframe", "control.zero")

    def _adaptation_masking(self) -> masking.MaskingConfig:
        return masking.MaskingConfig.from_dict(KEYFRAME_MASKING)


register(KeyframePEFT.descriptor, KeyframePEFT)
