"""`Example`: one sample a pipeline runs on (inputs, expected answer, provenance). The engine's unit of
data; loaders in workbench.tasks.datasets make them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """One sample: the pipeline's keyword inputs, the expected answer, and provenance in meta."""

    id: str
    input: dict[str, str]
    target: str
    meta: dict[str, Any] = field(default_factory=dict)

    # Frozen for safety, but the dicts make field hashing impossible; identity is the id.
    def __hash__(self) -> int:
        return hash(self.id)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, for run folders and exports."""
        return {"id": self.id, "input": dict(self.input), "target": self.target, "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Example:
        return cls(id=str(data["id"]), input=dict(data["input"]), target=str(data["target"]),
                   meta=dict(data.get("meta") or {}))
