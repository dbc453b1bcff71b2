"""Write the UI-form twin of every API-form workflow (``api/X.json`` -> ``X.json``), into this folder
and into ``example_workflows/`` (what ComfyUI's template browser lists).

The API forms sit in ``api/`` because ComfyUI lists every ``*.json`` directly in a pack's
``workflows/`` folder as a template too, and an API-form file is no template.

The API form (what ``/prompt`` takes) is the source; the UI form (what the frontend loads, saves and
accepts by drag and drop) adds node positions, links and the widgets' values in the order the
nodes declare their inputs, which comes from a running ComfyUI's ``/object_info``:

    python workflows/build_ui_workflows.py http://127.0.0.1:8188

Every widget is also listed in the node's ``inputs`` (with ``"widget": {"name": ...}``), as the
current frontend saves them, so a UI file alone says which value belongs to which input.
tests/test_comfy_nodes.py checks that each UI file converts back to its API twin.
"""
from __future__ import annotations

import json
import shutil
import sys
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "example_workflows"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
COLUMN_WIDTH, ROW_HEIGHT = 380, 260


def is_widget(spec: list) -> bool:
    """Whether an /object_info input spec is a widget (a value) rather than a socket only."""
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def depth_of(graph: dict) -> dict[str, int]:
    """Each node's distance from the graph's sources, for a left-to-right layout."""
    depth: dict[str, int] = {}

    def visit(node_id: str) -> int:
        if node_id not in depth:
            links = [v for v in graph[node_id]["inputs"].values() if isinstance(v, list)]
            depth[node_id] = 1 + max((visit(link[0]) for link in links), default=-1)
        return depth[node_id]

    for node_id in graph:
        visit(node_id)
    return depth


def ui_workflow(graph: dict, object_info: dict, workflow_id: str) -> dict:
    depth = depth_of(graph)
    order = sorted(graph, key=lambda n: (depth[n], int(n)))
    links, outputs = [], {n: {} for n in graph}
    for target in order:
        for slot, (name, value) in enumerate(graph[target]["inputs"].items()):
            if isinstance(value, list):
                link_id = len(links) + 1
                source, source_slot = value
                link_type = object_info[graph[source]["class_type"]]["output"][source_slot]
                links.append([link_id, int(source), source_slot, int(target), name, link_type])
                outputs[source].setdefault(source_slot, []).append(link_id)
    rows_at_depth: dict[int, int] = {}
    nodes = []
    for index, node_id in enumerate(order):
        node = graph[node_id]
        info = object_info[node["class_type"]]
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        names = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        inputs, widgets_values = [], []
        for name in names:
            spec = specs[name]
            value = node["inputs"].get(name)
            link = next((link[0] for link in links if link[3] == int(node_id) and link[4] == name), None)
            entry = {"name": name, "type": "COMBO" if isinstance(spec[0], list) else spec[0], "link": link}
            if is_widget(spec):
                entry["widget"] = {"name": name}
                widgets_values.append(value if link is None else spec[1].get("default"))
            inputs.append(entry)
        row = rows_at_depth.get(depth[node_id], 0)
        rows_at_depth[depth[node_id]] = row + 1
        nodes.append({
            "id": int(node_id), "type": node["class_type"],
            "pos": [40 + COLUMN_WIDTH * depth[node_id], 40 + ROW_HEIGHT * row], "size": [340, 200],
            "flags": {}, "order": index, "mode": 0, "inputs": inputs,
            "outputs": [{"name": out_name, "type": out_type, "links": outputs[node_id].get(slot, []),
                         "slot_index": slot}
                        for slot, (out_name, out_type) in enumerate(zip(info["output_name"], info["output"]))],
            "title": node.get("_meta", {}).get("title", info["display_name"]),
            "properties": {"Node name for S&R": node["class_type"]},
            "widgets_values": widgets_values,
        })
    ui_links = []
    for link_id, source, source_slot, target, name, link_type in links:
        target_node = next(n for n in nodes if n["id"] == target)
        target_slot = next(i for i, entry in enumerate(target_node["inputs"]) if entry["name"] == name)
        ui_links.append([link_id, source, source_slot, target, target_slot, link_type])
    return {"id": workflow_id, "revision": 0, "last_node_id": max(int(n) for n in graph),
            "last_link_id": len(links), "nodes": nodes, "links": ui_links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4}


def main(server: str) -> None:
    with urllib.request.urlopen(server.rstrip("/") + "/object_info", timeout=60) as response:
        object_info = json.loads(response.read())
    EXAMPLES.mkdir(exist_ok=True)
    for api_path in sorted((HERE / "api").glob("*.json")):
        ui_path = HERE / api_path.name
        previous = json.loads(ui_path.read_text()) if ui_path.exists() else {}
        workflow_id = previous.get("id") or str(uuid.uuid4())  # a workflow keeps its id across rebuilds
        ui = ui_workflow(json.loads(api_path.read_text()), object_info, workflow_id)
        ui_path.write_text(json.dumps(ui, indent=1) + "\n")
        shutil.copyfile(ui_path, EXAMPLES / ui_path.name)
        print(f"{ui_path.relative_to(HERE.parent)} and example_workflows/{ui_path.name}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
