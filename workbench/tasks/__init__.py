"""Tasks and data: named pipelines with their data and eval function (registry), dataset loaders
(datasets), and the ready pipelines (pipelines/)."""
from .registry import Task, get_task, task_names

__all__ = ["Task", "get_task", "task_names"]
