"""Differentiable building blocks shared by the interpolators (warping, splatting, flow, filtering)."""
from .filters import gaussian_blur
from .warp import average_splat, backward_warp, fill_holes, forward_splat, pixel_grid, softmax_splat

__all__ = ["average_splat", "backward_warp", "fill_holes", "forward_splat", "gaussian_blur", "pixel_grid",
           "softmax_splat"]
