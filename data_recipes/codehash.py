"""The one code-fingerprint policy, shared by data builds and pipeline stages.

A step's code version hashes the source of every module it can run: the entry module's transitive
imports inside the given packages (module-level and function-level ``import`` statements and module
names spelled as strings, read from the source with ``ast``; the parent packages' ``__init__`` files, which run on import, count too), the files
next to a module that its source names (``chat_template.jinja``, ``_guard.py``: read at run time), and
the versions of the third-party libraries named. So editing ``stages/base.py``, ``rewards/*`` or
``inference/budget.py`` reruns the stages that use them, and nothing else. Lives in ``data_recipes``,
the lowest layer, so that both layers use it without ``data_recipes`` importing ``posttrain``.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


@functools.lru_cache(maxsize=8)
def module_files(packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of ``packages``: dotted name -> source file (packages map to their ``__init__``)."""
    out: dict[str, Path] = {}
    for pkg in packages:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"codehash: {pkg} is not an importable package")
        base = Path(next(iter(spec.submodule_search_locations)))
        for path in base.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(base).with_suffix("").parts
            out[".".join((pkg, *rel)).removesuffix(".__init__")] = path
    return out


def _owner(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


@functools.lru_cache(maxsize=4096)
def _scan(path: Path, mtime_ns: int, size: int) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(imported names, short string constants, those that name a file next to the module)."""
    names: list[str] = []
    strings: set[str] = set()
    data: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and 0 < len(node.value) < 100:
            strings.add(node.value)
            if "/" not in node.value and "." in node.value and (path.parent / node.value).is_file():
                data.add(node.value)
    return tuple(names), tuple(sorted(strings)), tuple(sorted(data))


def _scanned(path: Path) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    st = path.stat()
    return _scan(path, st.st_mtime_ns, st.st_size)


def data_files(path: Path) -> list[Path]:
    """The files next to ``path`` that its source names (read at run time, so part of its code)."""
    return [path.parent / n for n in _scanned(path)[2]]


def imports_of(path: Path, mods: dict[str, Path], *, by_name: bool = False) -> set[str]:
    """The modules of ``mods`` that the source at ``path`` imports (absolute imports, at any depth).
    ``by_name`` adds string constants that spell a module's full name: ``importlib.import_module``
    tables such as ``data_recipes.domains.DOMAINS``, or the modules whose source the built-in tokenizer
    is trained on. Fingerprints count those; the dependency graph does not (a name in a message or a
    ``python -m`` command line is not an import)."""
    names, strings, _ = _scanned(path)
    found = {o for t in names if (o := _owner(t, mods))}
    return found | {s for s in strings if s in mods} if by_name else found


def import_graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the package modules it imports, leaving out its own parent packages (Python imports
    those anyway, so they are not a dependency direction)."""
    mods = module_files(packages)
    return {
        m: {d for d in imports_of(p, mods) if d != m and not m.startswith(d + ".")} for m, p in mods.items()
    }


def closure(entries: tuple[str, ...], packages: tuple[str, ...]) -> list[str]:
    """The entry modules, everything they import transitively (by name too), and their parent packages."""
    mods = module_files(packages)
    seen: set[str] = set()
    todo = [e for e in entries if e in mods]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")
        todo.extend(p for i in range(1, len(parts)) if (p := ".".join(parts[:i])) in mods)
        todo.extend(imports_of(mods[m], mods, by_name=True) - seen)
    return sorted(seen)


def lib_versions(libs: tuple[str, ...]) -> list[str]:
    out = []
    for lib in libs:
        try:
            out.append(f"{lib}=={version(lib)}")
        except PackageNotFoundError:
            out.append(f"{lib}==none")
    return out


def code_version(entries: tuple[str, ...], packages: tuple[str, ...], libs: tuple[str, ...] = ()) -> str:
    """sha256 (16 hex) over the closure's module names and sources, then the library versions."""
    mods = module_files(packages)
    h = hashlib.sha256()
    for m in closure(entries, packages):
        for f in (mods[m], *data_files(mods[m])):
            h.update(f"{m}:{f.name}\n".encode())
            h.update(f.read_bytes())
            h.update(b"\0")
    for v in lib_versions(libs):
        h.update(v.encode() + b"\0")
    return h.hexdigest()[:16]
