"""Test double of ``comfy_api.latest``: ComfyExtension, io, InputImpl, Types (see ../../README.md)."""
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction

from . import io


class ComfyExtension(ABC):
    @abstractmethod
    async def get_node_list(self) -> list: ...


@dataclass
class VideoComponents:
    images: object
    frame_rate: Fraction
    audio: object = None
    metadata: dict | None = None


class VideoFromFile:
    def __init__(self, file):
        self.file = file

    def get_stream_source(self):
        return self.file


class VideoFromComponents:
    def __init__(self, components: VideoComponents):
        self.components = components

    def get_components(self) -> VideoComponents:
        return self.components


class InputImpl:
    VideoFromFile = VideoFromFile
    VideoFromComponents = VideoFromComponents


class Types:
    VideoComponents = VideoComponents
