"""Workspace invariants: layout, namespace, versions, and that every package is wired everywhere."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))
# Development-only distributions: never a runtime dependency, no demo section, not published.
DEV_ONLY = {"testing": {"pytest"}}  # folder -> the runtime dependencies it may add
# Runtime dependencies beyond torch / numpy / sentencepiece that one package needs (the design's
# rule 7): textkit loads BERT checkpoints (safetensors) and tokenises WordPiece (tokenizers).
EXTRA_RUNTIME = {"textkit": {"safetensors", "tokenizers"}}


def _project(folder: str) -> dict:
    return tomllib.loads((ROOT / "packages" / folder / "pyproject.toml").read_text())


def test_there_are_packages() -> None:
    assert "gan-losses" in FOLDERS


def test_no_namespace_init_anywhere() -> None:
    offenders = [p for p in ROOT.glob("packages/*/src/kexue/__init__.py")]
    assert offenders == []


@pytest.mark.parametrize("folder", FOLDERS)
def test_package_layout_and_naming(folder: str) -> None:
    meta = _project(folder)
    name = meta["project"]["name"]
    assert name == f"kexue-{folder}"
    import_name = folder.replace("-", "_")
    pkg_dir = ROOT / "packages" / folder / "src" / "kexue" / import_name
    for required in ("__init__.py", "__about__.py", "py.typed"):
        assert (pkg_dir / required).is_file(), required
    for required in ("README.md", "CHANGELOG.md"):
        assert (ROOT / "packages" / folder / required).is_file(), required
    assert meta["project"]["dynamic"] == ["version"]
    assert meta["tool"]["hatch"]["version"]["path"] == f"src/kexue/{import_name}/__about__.py"
    assert meta["build-system"]["build-backend"] == "hatchling.build"


@pytest.mark.parametrize("folder", FOLDERS)
def test_runtime_dependencies_are_minimal_and_floor_only(folder: str) -> None:
    deps = _project(folder)["project"]["dependencies"]
    allowed = {"torch", "numpy", "sentencepiece"} | DEV_ONLY.get(folder, set())
    allowed |= EXTRA_RUNTIME.get(folder, set())
    for dep in deps:
        name = re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0].lower()
        assert name in allowed or name.startswith("kexue-"), dep
        if name == "torch":
            # A floor, never a pin: the CPU pin lives in constraints/cpu.txt for dev and CI only.
            assert "==" not in dep and "<" not in dep, dep


@pytest.mark.parametrize("folder", FOLDERS)
def test_version_single_source_and_changelog(folder: str) -> None:
    import_name = folder.replace("-", "_")
    module = importlib.import_module(f"kexue.{import_name}")
    about = (
        ROOT / "packages" / folder / "src" / "kexue" / import_name / "__about__.py"
    ).read_text()
    (version,) = re.findall(r'__version__ = "([^"]+)"', about)
    assert module.__version__ == version
    changelog = (ROOT / "packages" / folder / "CHANGELOG.md").read_text()
    assert f"## {version}" in changelog


@pytest.mark.parametrize("folder", FOLDERS)
def test_public_api_is_declared_and_documented(folder: str) -> None:
    module = importlib.import_module(f"kexue.{folder.replace('-', '_')}")
    names = module.__all__
    assert len(names) == len(set(names)), "duplicate names in __all__"
    for name in names:
        obj = getattr(module, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring"


def test_every_package_is_wired_into_hatch_readme_and_demo() -> None:
    hatch = tomllib.loads((ROOT / "hatch.toml").read_text())
    matrix = hatch["envs"]["pkg"]["matrix"][0]["package"]
    assert sorted(matrix) == FOLDERS
    readme = (ROOT / "README.md").read_text()
    for folder in sorted(set(FOLDERS) - set(DEV_ONLY)):
        assert f"packages/{folder}/README.md" in readme
        assert f"pip install kexue-{folder}" in readme
    from tools.demos import SECTIONS

    for folder in sorted(set(FOLDERS) - set(DEV_ONLY)):
        assert folder.replace("-", "_") in SECTIONS, f"no demo section for {folder}"


@pytest.mark.parametrize("folder", sorted(set(FOLDERS) - set(DEV_ONLY)))
def test_dev_only_packages_are_test_extras_never_runtime(folder: str) -> None:
    project = _project(folder)["project"]
    runtime = [re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0] for d in project["dependencies"]]
    test = [
        re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0] for d in project["optional-dependencies"]["test"]
    ]
    for dev in DEV_ONLY:
        assert f"kexue-{dev}" not in runtime
        assert f"kexue-{dev}" in test, f"kexue-{folder}[test] must declare kexue-{dev}"


def test_readme_has_exactly_one_marked_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.findall(r"<!-- test-command -->(.*?)<!-- /test-command -->", readme, flags=re.S)
    assert len(block) == 1
    commands = [line[2:] for line in block[0].splitlines() if line.startswith("$ ")]
    assert len(commands) == 1
    assert "hatch run test" in commands[0], commands


def test_no_duplicate_test_module_names_break_collection() -> None:
    # importlib import mode makes equal basenames safe; make sure it stays configured.
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "--import-mode=importlib" in root["tool"]["pytest"]["ini_options"]["addopts"]
    for folder in FOLDERS:
        assert not (ROOT / "packages" / folder / "tests" / "__init__.py").exists()


def test_internal_runtime_dependencies_resolve_inside_the_workspace() -> None:
    """A kexue-* runtime requirement names a workspace folder whose version satisfies it, and the
    per-package hatch environment takes it from that folder (never from an index)."""
    from packaging.requirements import Requirement

    pkg_env = tomllib.loads((ROOT / "hatch.toml").read_text())["envs"]["pkg"]
    sources = pkg_env["sources"]
    extra = pkg_env["overrides"]["matrix"]["package"]["extra-dependencies"]
    internal: dict[str, list[str]] = {}
    for folder in FOLDERS:
        for dep in _project(folder)["project"]["dependencies"]:
            req = Requirement(dep)
            if not req.name.startswith("kexue-"):
                continue
            sibling = req.name.removeprefix("kexue-")
            assert sibling in FOLDERS, f"{folder} requires {req.name}, which is not in packages/"
            about = ROOT / "packages" / sibling / "src" / "kexue" / sibling.replace("-", "_")
            (version,) = re.findall(
                r'__version__ = "([^"]+)"', (about / "__about__.py").read_text()
            )
            assert req.specifier.contains(version), f"{folder}: {dep} vs {sibling} {version}"
            assert sources.get(req.name, {}).get("path") == f"packages/{sibling}", req.name
            assert any(e["value"] == req.name and folder in e["if"] for e in extra), req.name
            internal.setdefault(folder, []).append(req.name)
    # the workspace's first package built on another one: kexue-vae uses kexue-gan-losses (IMLE)
    assert internal.get("vae") == ["kexue-gan-losses"]
    import torch

    vae = importlib.import_module("kexue.vae")
    gan = importlib.import_module("kexue.gan_losses")
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    assert float(vae.imle_loss_pooled(real, fake)) == float(gan.imle_loss(real, fake))
