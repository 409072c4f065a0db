"""Code named by a run directory's config runs only if it is the very code the run trained with.

A config may name custom layers by import path (``./layers.py:Residual``,
``mypkg.layers:Residual``), and building the model imports them: it runs
their code. A config that the user wrote is theirs to run. A run directory's
``config.yaml`` is not: ``trainkit eval RUN`` and ``trainkit train --resume
RUN`` read it from a folder that may have been copied from anywhere, and an
edited one could name any file or module (``./evil.py:X``, ``antigravity:X``).

So when a run starts, :func:`record_code` writes into ``run.json`` each custom
module's resolved file and its SHA-256, signed with a key kept in the user's
trainkit folder (:func:`key_path`; created on first use, mode 0600), so that a
record forged in a copied run directory does not verify. Before ``eval`` or
``--resume`` build anything, :func:`check_code` requires, for every import
path in ``config.yaml``:

* a record of it, with a valid signature (the record was written by this user's trainkit);
* that the path resolves, without importing anything, to the recorded file: a
  ``./file.py`` path to that file, a module name through ``sys.path`` (which
  holds the current folder) to that same file, never to another one that
  shadows it;
* that the file is not inside the run directory itself, still exists, and has
  the recorded SHA-256.

Otherwise the command is refused (exit 2) before any code runs, unless the user
passes ``--trust-code``. Only the named module's own file is hashed: modules it
imports in turn are the user's installed code.
"""
from __future__ import annotations

import hashlib
import hmac
import importlib.machinery
import json
import os
import re
import sys
from pathlib import Path

from trainkit.config.layers import is_import_path
from trainkit.errors import TrainkitError

__all__ = ["CodeTrustError", "record_code", "check_code", "custom_types", "key_path", "locate"]

_IMPORT = re.compile(r"^(?P<mod>[^:]+):(?P<cls>[A-Za-z_][A-Za-z0-9_]*)$")
_HINT = ("pass --trust-code to run it anyway, once you have read that code and trust it")


class CodeTrustError(TrainkitError):
    """A run directory's config names code that is not the code the run was trained with."""


def key_path() -> Path:
    """The per-user key that signs code records: ``$TRAINKIT_HOME/code.key``, else
    ``$XDG_CONFIG_HOME/trainkit/code.key``, else ``~/.config/trainkit/code.key``."""
    home = os.environ.get("TRAINKIT_HOME")
    if home:
        return Path(home) / "code.key"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "trainkit" / "code.key"


def _key(create: bool) -> bytes | None:
    path = key_path()
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        if not create:
            return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(os.urandom(32).hex() + "\n")
    except FileExistsError:  # another process created it just now
        pass
    except OSError:
        return None  # an unwritable home: records stay unsigned and need --trust-code later
    return _key(create=False)


def _signature(key: bytes, modules: list[dict]) -> str:
    text = json.dumps(modules, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, text.encode("ascii"), hashlib.sha256).hexdigest()


def custom_types(config_data: dict) -> list[str]:
    """The distinct import-path layer types (``module:Class``, ``file.py:Class``) of a config's model."""
    from trainkit.config.model_spec import model_nodes

    model = config_data.get("model") if isinstance(config_data, dict) else None
    if not isinstance(model, dict):
        return []
    out: list[str] = []
    for node in model_nodes(model):
        if is_import_path(node.type) and node.type.strip() not in out:
            out.append(node.type.strip())
    return out


def _is_file_form(mod: str) -> bool:
    return mod.endswith(".py") or "/" in mod or "\\" in mod


def locate(type_name: str, base_dir: Path) -> Path | None:
    """The file ``type_name``'s module resolves to, found without importing (or running) anything.

    A file path is taken relative to ``base_dir``. A module name already imported is
    the file it was imported from; otherwise it is searched on ``sys.path`` one package
    level at a time, as ``import`` would, but without executing any package ``__init__``.
    """
    m = _IMPORT.match(type_name.strip())
    if not m:
        return None
    mod = m.group("mod")
    if _is_file_form(mod):
        path = Path(mod).expanduser()
        return (path if path.is_absolute() else Path(base_dir) / path).resolve()
    loaded = sys.modules.get(mod)
    if loaded is not None:
        origin = getattr(loaded, "__file__", None)
        return Path(origin).resolve() if origin else None
    search = None
    spec = None
    parts = mod.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        parent = sys.modules.get(name)
        if parent is not None and i < len(parts) - 1 and getattr(parent, "__path__", None) is not None:
            search = list(parent.__path__)
            continue
        spec = importlib.machinery.PathFinder.find_spec(name, search)
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or [])
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        return None
    return Path(spec.origin).resolve()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_code(config_data: dict, base_dir: Path) -> dict | None:
    """The signed record of the custom modules a run trains with (None: the model names none).

    Called after the model was built, so every named module has been imported and resolves.
    """
    types = custom_types(config_data)
    if not types:
        return None
    modules = []
    for type_name in types:
        path = locate(type_name, base_dir)
        if path is None or not path.is_file():
            continue
        modules.append({"type": type_name, "path": str(path), "sha256": _sha256(path)})
    key = _key(create=True)
    return {"modules": modules, "signature": _signature(key, modules) if key is not None else None}


def check_code(config_data: dict, record, run_dir: Path, config_path: Path) -> None:
    """Refuse a run directory's config whose custom code is not what the run recorded (see the module docstring).

    Raises:
        CodeTrustError: naming the layer type and what is wrong, with the ``--trust-code`` hint.
    """
    types = custom_types(config_data)
    if not types:
        return
    where = f"{config_path}: layer type '{types[0]}'"

    def refuse(what: str) -> CodeTrustError:
        return CodeTrustError(f"{what}; a run directory's config runs no code it was not trained with. {_HINT}")

    modules = record.get("modules") if isinstance(record, dict) else None
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise refuse(f"{where} names custom code, and {run_dir / 'run.json'} records none (a run trained "
                     "elsewhere, by an older trainkit, or edited)")
    key = _key(create=False)
    signature = record.get("signature")
    if key is None or not isinstance(signature, str) or not hmac.compare_digest(signature, _signature(key, modules)):
        raise refuse(f"{where}: the record of the run's code in {run_dir / 'run.json'} was not written by "
                     f"trainkit for this user ({key_path()}); the run directory was copied or edited")
    by_type = {m.get("type"): m for m in modules}
    run_root = Path(run_dir).resolve()
    for type_name in types:
        where = f"{config_path}: layer type '{type_name}'"
        entry = by_type.get(type_name)
        if entry is None:
            raise refuse(f"{where} is not among the custom layers the run was trained with")
        path = locate(type_name, Path(config_path).resolve().parent)
        recorded = Path(str(entry.get("path")))
        if path is None:
            raise refuse(f"{where} resolves to no file now (the run trained with {recorded})")
        if path != recorded:
            raise refuse(f"{where} resolves to {path}, not to {recorded}, the file the run trained with")
        if path == run_root or run_root in path.parents:
            raise refuse(f"{where} resolves to {path}, inside the run directory itself")
        try:
            digest = _sha256(path)
        except OSError as exc:
            raise refuse(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
        if digest != entry.get("sha256"):
            raise refuse(f"{where}: {path} has changed since the run trained with it (SHA-256 differs)")
