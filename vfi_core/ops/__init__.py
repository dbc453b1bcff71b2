"""Differentiable building blocks shared by the interpolators (warping, splatting, flow)."""
from .warp import average_splat, backward_warp, fill_holes, forward_splat, pixel_grid, softmax_splat

__all__ = ["average_splat", "backward_warp", "fill_holes", "forward_splat", "pixel_grid", "softmax_splat"]
