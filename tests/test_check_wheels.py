"""The release check itself must catch what it promises: undeclared siblings and files left out."""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import check_wheels


def _fake_package(tmp_path: Path, deps: list[str], source: str) -> check_wheels.Package:
    folder = tmp_path / "demo-pkg"
    mod = folder / "src" / "kexue" / "demo_pkg"
    mod.mkdir(parents=True)
    (mod / "__init__.py").write_text(source)
    (mod / "py.typed").write_text("")
    (mod / "data.json").write_text("{}")
    (folder / "tests").mkdir()
    (folder / "tests" / "test_x.py").write_text("import kexue.demo_pkg\n")
    (folder / "README.md").write_text("x")
    (folder / "CHANGELOG.md").write_text("x")
    dep_list = ", ".join(f'"{d}"' for d in deps)
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "kexue-demo-pkg"\ndependencies = [{dep_list}]\n'
    )
    return check_wheels.load_package(folder)


def test_undeclared_sibling_import_is_reported(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path, ["torch>=2.4"], "from kexue.vq import nearest_code\n")
    check_wheels.check_sibling_imports(pkg)
    assert len(pkg.problems) == 1 and "kexue-vq" in pkg.problems[0]


def test_declared_sibling_and_self_imports_pass(tmp_path: Path) -> None:
    source = "import kexue.demo_pkg\nfrom kexue import gan_losses\nimport kexue.gan_losses.losses\n"
    pkg = _fake_package(tmp_path, ["torch>=2.4", "kexue-gan-losses>=0.1"], source)
    check_wheels.check_sibling_imports(pkg)
    assert pkg.problems == []


def test_from_kexue_import_form_is_seen(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path, ["torch>=2.4"], "from kexue import flows\n")
    check_wheels.check_sibling_imports(pkg)
    assert any("kexue-flows" in p for p in pkg.problems)


def _archives(tmp_path: Path, wheel_files: list[str], sdist_files: list[str]) -> tuple[Path, Path]:
    wheel = tmp_path / "kexue_demo_pkg-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in wheel_files:
            zf.writestr(name, "")
        zf.writestr("kexue_demo_pkg-0.1.0.dist-info/METADATA", "")
    sdist = tmp_path / "kexue_demo_pkg-0.1.0.tar.gz"
    src = tmp_path / "sdist-src"
    for name in sdist_files:
        path = src / "kexue_demo_pkg-0.1.0" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    with tarfile.open(sdist, "w:gz") as tf:
        tf.add(src / "kexue_demo_pkg-0.1.0", arcname="kexue_demo_pkg-0.1.0")
    return wheel, sdist


FULL_WHEEL = ["kexue/demo_pkg/__init__.py", "kexue/demo_pkg/py.typed", "kexue/demo_pkg/data.json"]
FULL_SDIST = [
    "pyproject.toml",
    "README.md",
    "CHANGELOG.md",
    "src/kexue/demo_pkg/__init__.py",
    "src/kexue/demo_pkg/py.typed",
    "src/kexue/demo_pkg/data.json",
    "tests/test_x.py",
]


def test_complete_archives_pass(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path, ["torch>=2.4"], "")
    check_wheels.check_archives(pkg, *_archives(tmp_path, FULL_WHEEL, FULL_SDIST))
    assert pkg.problems == []


@pytest.mark.parametrize(
    ("wheel_files", "sdist_files", "expected"),
    [
        (FULL_WHEEL[:2], FULL_SDIST, "leaves out: ['kexue/demo_pkg/data.json']"),
        ([*FULL_WHEEL, "kexue/__init__.py"], FULL_SDIST, "namespace"),
        (FULL_WHEEL, FULL_SDIST[:-1], "leaves out: ['tests/test_x.py']"),
    ],
)
def test_incomplete_archives_are_reported(
    tmp_path: Path, wheel_files: list[str], sdist_files: list[str], expected: str
) -> None:
    pkg = _fake_package(tmp_path, ["torch>=2.4"], "")
    check_wheels.check_archives(pkg, *_archives(tmp_path, wheel_files, sdist_files))
    assert any(expected in p for p in pkg.problems), pkg.problems


def test_layout_rejects_namespace_init(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path, ["torch>=2.4"], "")
    (pkg.folder / "src" / "kexue" / "__init__.py").write_text("")
    check_wheels.check_layout(pkg)
    assert any("PEP 420" in p for p in pkg.problems)
