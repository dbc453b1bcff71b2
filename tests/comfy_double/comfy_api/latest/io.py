"""Test double of ``comfy_api.latest.io``: the schema classes the pack uses (see ../../README.md)."""
from collections import Counter
from dataclasses import dataclass


class Input:
    def __init__(self, id, display_name=None, optional=False, tooltip=None, default=None, **options):
        self.id, self.display_name, self.optional, self.tooltip = id, display_name, optional, tooltip
        self.default = default
        for name, value in options.items():  # min, max, step, options...
            setattr(self, name, value)


class Output:
    def __init__(self, id=None, display_name=None, tooltip=None):
        self.id, self.display_name, self.tooltip = id, display_name, tooltip


def _comfy_type(io_type):
    class ComfyType:
        class Input(Input):
            pass

        class Output(Output):
            pass

    ComfyType.io_type = ComfyType.Input.io_type = ComfyType.Output.io_type = io_type
    return ComfyType


def Custom(io_type):  # noqa: N802 (ComfyUI's name)
    return _comfy_type(io_type)


Boolean, Int, Float, String = (_comfy_type(t) for t in ("BOOLEAN", "INT", "FLOAT", "STRING"))
Image, Mask, Video = (_comfy_type(t) for t in ("IMAGE", "MASK", "VIDEO"))


class Combo(_comfy_type("COMBO")):
    class Input(Input):
        io_type = "COMBO"

        def __init__(self, id, options=None, **kwargs):
            super().__init__(id, options=options, **kwargs)


@dataclass
class Schema:
    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list = None
    outputs: list = None
    description: str = ""

    def validate(self):
        """ComfyUI's check: input ids unique, output ids unique, no id both an input and an output."""
        inputs = [i.id for i in self.inputs or []]
        outputs = [o.id for o in self.outputs or []]
        issues = [f"{kind} ids must be unique: {[i for i, n in Counter(ids).items() if n > 1]}"
                  for kind, ids in (("Input", inputs), ("Output", outputs)) if len(set(ids)) != len(ids)]
        if set(inputs) & set(outputs):
            issues.append(f"ids both input and output: {set(inputs) & set(outputs)}")
        if issues:
            raise ValueError("\n".join(issues))


class ComfyNode:
    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs):
        raise NotImplementedError


class NodeOutput:
    def __init__(self, *args, ui=None):
        self.args, self.ui = args, ui

    def __getitem__(self, index):
        return self.args[index]
