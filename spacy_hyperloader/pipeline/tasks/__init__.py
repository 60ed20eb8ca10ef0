"""The component's tasks, one class per annotation target (``ents``, ``spans``, ``tag``, ``pos``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import TASKS_USER_DATA_KEY, Task
from .ents import EntsTask
from .spans import SpansTask
from .tagging import PosTask, TagTask

TASK_TYPES: dict[str, type[Task]] = {"ents": EntsTask, "spans": SpansTask, "tag": TagTask, "pos": PosTask}


def parse_tasks(config: Mapping[str, Mapping[str, Any]]) -> list[Task]:
    """Tasks from the component's ``tasks`` table; two tasks may not write one attribute."""
    if not config or not isinstance(config, Mapping):
        raise ValueError(
            "The hyperloader component needs at least one task, e.g. "
            f'config={{"tasks": {{"ner": {{"target": "ents"}}}}}}; got {config!r}.'
        )
    tasks = [Task.from_config(name, cfg) for name, cfg in config.items()]
    owner: dict[str, str] = {}
    for task in tasks:
        for attribute in sorted(task.writes):
            if attribute in owner:
                hint = " Set map_pos = false on the tag task." if attribute == "token.pos" else ""
                raise ValueError(f"Tasks {owner[attribute]!r} and {task.name!r} both write {attribute}.{hint}")
            owner[attribute] = task.name
    return tasks


__all__ = ["TASKS_USER_DATA_KEY", "TASK_TYPES", "EntsTask", "PosTask", "SpansTask", "TagTask", "Task", "parse_tasks"]
