"""The import graph of ``src/r1track`` runs one way: no cycles, nothing imports from a layer above its own.

Read from the source with :mod:`ast` (nothing is imported), so it is fast and sees every import:

* every ``import`` / ``from ... import`` statement counts, wherever it stands: at module level, inside a
  function (a lazy import is still a dependency, and a cycle through one still runs), under
  ``if TYPE_CHECKING:`` or in a ``try``;
* ``from package import name`` is an arrow to ``package.name`` when that is a module, else to ``package``;
* a string naming a module (``"r1track.backends.ncc:NCCBackend"``, ``"r1track.commands.eval"``) is an arrow
  too: registries (:data:`r1track.backends.BACKENDS`, ``r1track.cli.COMMAND_MODULES``) import by name at run
  time, and the layers hold for them as for any import (a logger's name, ``logging.getLogger("r1track.x")``, is
  not an import);
* importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``; those arrows are not drawn, so a
  package's ``__init__`` may import only modules of its own package (checked below), which keeps every
  hidden arrow inside one layer.

``LAYERS`` below is the architecture, lowest first. A module may import modules of its own layer or of a
lower one; within a layer (and everywhere) there must be no cycle. A new module must be placed in a layer
(the test names the ones that are not). Run ``python tests/test_import_graph.py`` for the layer table and
every arrow that breaks a rule, with file and line.
"""

from __future__ import annotations

import ast
import fnmatch
import sys
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "r1track"

LAYERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("foundation", "no r1track knowledge: version, atomic files, secrets redaction, progress bars, Ctrl-C and worker processes, the HTTP "
     "client and the sync face of its event loops, the vocabulary of data problems, the exit statuses, the "
     "optional extras",
     ("r1track", "r1track.exitcodes", "r1track.fsutil", "r1track.redact", "r1track.progress", "r1track.httpclient",
      "r1track.callerloop", "r1track.reasons", "r1track.extras", "r1track.interrupts")),
    ("conventions", "what a model and its data agree on: boxes, Qwen sizes, prompts, answer parsing, model "
     "families, published checkpoints, rewards, metrics",
     ("r1track.boxes", "r1track.qwen", "r1track.prompts", "r1track.parse", "r1track.models", "r1track.checkpoints",
      "r1track.reward", "r1track.metrics")),
    ("images", "pixels: image files and their headers, decoding, crops, motion models, the search-window policy",
     ("r1track.images", "r1track.decoding", "r1track.crop", "r1track.motion", "r1track.window")),
    ("data", "datasets in, training sets and result files out: readers, checks, the builder, synthetic "
     "sequences, videos, result files, plots",
     ("r1track.data", "r1track.data.*", "r1track.synthetic", "r1track.video", "r1track.results", "r1track.plots")),
    ("backends", "who answers a frame request: the request interface, the backend registry and every backend",
     ("r1track.backends", "r1track.backends.*")),
    ("tracker", "one target through a sequence: settings, frame outcomes, answer checks, the memory frame, the "
     "frame loop, fault policy, presets",
     ("r1track.tracker_params", "r1track.frame_outcome", "r1track.answer_checks", "r1track.memory",
      "r1track.tracker", "r1track.faults", "r1track.presets")),
    ("training sets", "the training-set builder: it plans what the tracker asks (the replay profile follows the "
     "tracker's perfect path, with the tracker's settings and answer checks), so it sits above the tracker",
     ("r1track.data.build", "r1track.data.replay")),
    ("runs", "many sequences: evaluation runs and their folders, scoring, packing, the demo",
     ("r1track.evalrun", "r1track.evalfolder", "r1track.runname", "r1track.evalloop", "r1track.evalpool", "r1track.evaluate",
      "r1track.scoring", "r1track.pack", "r1track.demo")),
    ("integrations", "what upstream frameworks load: PyTracking, EasyR1, verl",
     ("r1track.integrations", "r1track.integrations.*")),
    ("install", "putting the plugin files into upstream checkouts (standard library only)",
     ("r1track.installer", "r1track.installer.*", "r1track.install")),
    ("commands", "the sub-commands of the command line",
     ("r1track.commands", "r1track.commands.*")),
    ("entry", "the command line itself, and test helpers no library module may use",
     ("r1track.cli", "r1track.__main__", "r1track.testing", "r1track.testing.*")),
)
"""(name, what it holds, module patterns), lowest layer first. A pattern is a module name or ``prefix.*``."""


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    path: Path
    line: int
    how: str  # "import", "lazy import" (inside a function) or "by name" (a string)

    def where(self) -> str:
        try:
            rel = self.path.relative_to(SRC.parent)
        except ValueError:
            rel = self.path
        return f"{rel}:{self.line}"


def module_files(src: Path = SRC) -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (file, is a package ``__init__``)."""
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def _logger_names(tree: ast.AST) -> set[int]:
    """ids of the string constants that name a logger (``logging.getLogger("r1track.x")``, or
    ``r1track.redact.get_logger``, which r1track's modules use): names, not imports."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("getLogger", "get_logger"):
            out.update(id(a) for a in node.args if isinstance(a, ast.Constant))
    return out


def _lazy_lines(tree: ast.AST) -> set[int]:
    """Line numbers of import statements inside a function body."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    lines.add(inner.lineno)
    return lines


def arrows(src: Path = SRC) -> list[Arrow]:
    """Every arrow between two modules of the package (see the module docstring)."""
    modules = module_files(src)
    out: list[Arrow] = []
    for name, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        lazy = _lazy_lines(tree)
        logger_names = _logger_names(tree)
        package = name if is_pkg else name.rpartition(".")[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in logger_names:
                text = node.value.partition(":")[0]
                if text in modules and text.startswith(PACKAGE + "."):
                    out.append(Arrow(name, text, path, node.lineno, "by name"))
                continue
            else:
                continue
            how = "lazy import" if node.lineno in lazy else "import"
            for target in dict.fromkeys(targets):
                if target in modules and target != name:
                    out.append(Arrow(name, target, path, node.lineno, how))
    return out


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of the layer holding ``module`` (None: in no layer). A module named exactly in a
    layer belongs there, whatever ``prefix.*`` pattern of another layer also matches it."""
    for i, (_, _, patterns) in enumerate(LAYERS):
        if module in patterns:
            return i
    for i, (_, _, patterns) in enumerate(LAYERS):
        if any(p.endswith(".*") and fnmatch.fnmatchcase(module, p) for p in patterns):
            return i
    return None


def cycles(edges: list[Arrow]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for a in edges:
        graph.setdefault(a.source, set()).add(a.target)
        graph.setdefault(a.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _fmt(a: Arrow) -> str:
    return f"{a.where()}: {a.source} -> {a.target} ({a.how})"


def unplaced_modules(src: Path = SRC) -> list[str]:
    return [m for m in module_files(src) if layer_of(m) is None]


def upward_arrows(edges: list[Arrow]) -> list[str]:
    bad = []
    for a in edges:
        ls, lt = layer_of(a.source), layer_of(a.target)
        if ls is not None and lt is not None and lt > ls:
            bad.append(f"{_fmt(a)}: layer {LAYERS[ls][0]} imports from the higher layer {LAYERS[lt][0]}")
    return bad


def cycle_arrows(edges: list[Arrow]) -> list[str]:
    out = []
    for comp in cycles(edges):
        members = set(comp)
        out.append("cycle " + " <-> ".join(comp) + ":\n" + "\n".join(
            "    " + _fmt(a) for a in edges if a.source in members and a.target in members))
    return out


def package_init_arrows(edges: list[Arrow]) -> list[str]:
    modules = module_files()
    bad = []
    for a in edges:
        if modules[a.source][1] and not a.target.startswith(a.source + "."):
            bad.append(f"{_fmt(a)}: a package __init__ imports only its own package's modules (its importers "
                       "run it without naming it)")
    return bad


# ---------------------------------------------------------------------------------------------------- tests
def test_every_module_is_in_a_layer():
    assert unplaced_modules() == [], "place these modules in a layer of LAYERS (tests/test_import_graph.py)"


def test_no_layer_pattern_is_stale():
    modules = module_files()
    stale = [p for _, _, patterns in LAYERS for p in patterns
             if not any(m == p or (p.endswith(".*") and fnmatch.fnmatchcase(m, p)) for m in modules)]
    assert stale == [], f"LAYERS names modules that do not exist: {stale}"


def test_no_import_cycle():
    found = cycle_arrows(arrows())
    assert not found, "import cycles:\n" + "\n".join(found)


def test_no_upward_import():
    bad = upward_arrows(arrows())
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


def test_package_inits_import_only_their_own_package():
    bad = package_init_arrows(arrows())
    assert not bad, "\n".join(bad)


def test_the_checker_sees_lazy_imports_cycles_and_names(tmp_path):
    """The checker itself: a lazy import, a cycle through it and an upward arrow by name are all found."""
    pkg = tmp_path / PACKAGE
    (pkg / "commands").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "commands" / "__init__.py").write_text("")
    (pkg / "boxes.py").write_text("def f():\n    from .crop import g\n")
    (pkg / "crop.py").write_text("from . import boxes\nTARGET = 'r1track.commands.x:run'\n"
                                 "log = logging.getLogger('r1track.commands.x')\n")
    (pkg / "commands" / "x.py").write_text("")
    edges = arrows(tmp_path)
    seen = {(a.source, a.target, a.how, a.line) for a in edges}
    assert ("r1track.boxes", "r1track.crop", "lazy import", 2) in seen
    assert ("r1track.crop", "r1track.boxes", "import", 1) in seen
    assert ("r1track.crop", "r1track.commands.x", "by name", 2) in seen
    assert cycles(edges) == [["r1track.boxes", "r1track.crop"]]
    assert any("boxes.py:2" in c for c in cycle_arrows(edges))
    up = upward_arrows(edges)
    assert len(up) == 2 and any("crop.py:2: r1track.crop -> r1track.commands.x" in u for u in up)


def main() -> int:
    edges = arrows()
    modules = module_files()
    print(f"{len(modules)} modules, {len({(a.source, a.target) for a in edges})} import arrows\n")
    for i, (name, what, patterns) in enumerate(LAYERS):
        members = sorted(m for m in modules if layer_of(m) == i)
        print(f"{i:2d} {name}: {what}\n     {', '.join(m.removeprefix(PACKAGE + '.') for m in members)}")
    problems = (cycle_arrows(edges) + upward_arrows(edges) + package_init_arrows(edges)
                + [f"{m}: in no layer" for m in unplaced_modules()])
    print("\n" + ("\n".join(problems) if problems else "no cycle, no upward import"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
