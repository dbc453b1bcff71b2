"""Test double of ComfyUI's comfy_api package (see ../README.md)."""
