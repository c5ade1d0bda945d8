"""knowledge/ is a library that stands alone: it imports nothing from bot/ or actions/."""

from __future__ import annotations

import json
import pkgutil
from pathlib import Path

import knowledge
from tests.helpers.probe import run_python

_PROBE = """
import importlib, json, pkgutil, sys
import knowledge
names = sorted(
    "knowledge." + info.name
    for info in pkgutil.iter_modules(knowledge.__path__)
)
for name in names:
    importlib.import_module(name)
for name in knowledge.__all__:
    getattr(knowledge, name)
loaded = sorted(
    m for m in sys.modules if m.split(".")[0] in ("bot", "actions")
)
print(json.dumps({"imported": names, "forbidden": loaded}))
"""


def test_every_knowledge_module_imports_without_bot_or_actions() -> None:
    result = run_python(_PROBE)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    expected = sorted(f"knowledge.{m.name}" for m in pkgutil.iter_modules(knowledge.__path__))
    assert report["imported"] == expected
    assert {"knowledge.answering", "knowledge.editor", "knowledge.encoder"} <= set(expected)
    assert report["forbidden"] == []


def test_no_knowledge_source_file_names_bot_or_actions_in_an_import() -> None:
    offenders = []
    for path in Path(knowledge.__path__[0]).glob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")) and stripped.split()[1].split(".")[0] in (
                "bot",
                "actions",
            ):
                offenders.append(f"{path.name}:{number}: {stripped}")
    assert offenders == []
