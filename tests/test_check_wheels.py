"""The release check itself must catch what it promises: undeclared siblings and files left out."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import pytest

from tools import check_wheels


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


def _fake_wheel(wheelhouse: Path, name: str, requires: list[str]) -> Path:
    """A wheel holding only its METADATA (what install_commands reads), as built by hatchling."""
    dist = name.replace("-", "_")
    wheel = wheelhouse / f"{dist}-0.1.0-py3-none-any.whl"
    meta = f"Metadata-Version: 2.4\nName: {name}\nVersion: 0.1.0\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires) + "\nlong description\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{dist}-0.1.0.dist-info/METADATA", meta)
    return wheel


def _names_kexue(arg: str) -> bool:
    """Whether a pip argument asks for a kexue distribution (a requirement or a wheel file)."""
    base = Path(arg).name if arg.endswith(".whl") else arg
    return check_wheels.requirement_name(base.replace("_", "-")).startswith("kexue-")


def test_kexue_distributions_come_only_from_the_local_wheels(tmp_path: Path) -> None:
    """Every pip command that names a kexue distribution is --no-index --find-links <wheelhouse>:
    a same-named package on a public index can never be picked, for the package, its siblings,
    or its test extra's kexue-testing (transitively)."""
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    pkg = _fake_package(tmp_path, ["torch>=2.4", "kexue-vq>=0.1"], "")
    pkg.test_dependencies = ["kexue-testing>=0.1", "snownlp>=0.12"]
    wheel = _fake_wheel(
        wheelhouse,
        "kexue-demo-pkg",
        [
            "torch>=2.4",
            "kexue-vq>=0.1",
            'kexue-testing>=0.1; extra == "test"',
            'snownlp>=0.12; extra == "test"',
        ],
    )
    _fake_wheel(wheelhouse, "kexue-vq", ["torch>=2.4", 'triton>=3.0; extra == "triton"'])
    _fake_wheel(wheelhouse, "kexue-testing", ["torch>=2.4", "pytest>=8", "kexue-gan-losses"])
    _fake_wheel(wheelhouse, "kexue-gan-losses", ["torch>=2.4"])
    _fake_wheel(wheelhouse, "kexue-flows", ["torch>=2.4"])  # in the wheelhouse, not needed

    commands = check_wheels.install_commands(Path("venv/bin/python"), pkg, wheel, wheelhouse)

    asked = [arg for cmd in commands for arg in cmd[5:] if _names_kexue(arg)]
    assert sorted(Path(a).name.split("-")[0] for a in asked) == [
        "kexue_demo_pkg", "kexue_gan_losses", "kexue_testing", "kexue_vq"
    ]  # fmt: skip
    for cmd in commands:
        if any(_names_kexue(arg) for arg in cmd[5:]):
            assert "--no-index" in cmd, cmd
            i = cmd.index("--find-links")
            assert cmd[i + 1] == str(wheelhouse), cmd
            assert all(Path(a).parent == wheelhouse for a in cmd[5:] if a.endswith(".whl")), cmd
    index_cmds = [cmd for cmd in commands if "--no-index" not in cmd]
    assert len(index_cmds) == 1
    assert not any(_names_kexue(a) for a in index_cmds[0][5:])
    assert set(index_cmds[0][5:]) == {"torch>=2.4", "snownlp>=0.12", "pytest>=8"}


def test_a_package_without_a_test_extra_installs_alone(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    pkg = _fake_package(tmp_path, ["torch>=2.4"], "")
    wheel = _fake_wheel(wheelhouse, "kexue-demo-pkg", ["torch>=2.4"])
    _fake_wheel(wheelhouse, "kexue-testing", ["torch>=2.4", "pytest>=8"])
    commands = check_wheels.install_commands(Path("python"), pkg, wheel, wheelhouse)
    assert commands[0][5:] == [
        "--no-index",
        "--find-links",
        str(wheelhouse),
        "--no-deps",
        str(wheel),
    ]
    assert commands[1][5:] == ["torch>=2.4"]


def test_a_kexue_requirement_without_a_local_wheel_is_an_error(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    pkg = _fake_package(tmp_path, ["torch>=2.4", "kexue-vq"], "")
    wheel = _fake_wheel(wheelhouse, "kexue-demo-pkg", ["torch>=2.4", "kexue-vq"])
    with pytest.raises(LookupError, match="kexue-vq"):
        check_wheels.install_commands(Path("python"), pkg, wheel, wheelhouse)


def test_selected_packages_pull_their_kexue_requirements_into_the_build(tmp_path: Path) -> None:
    """``--packages vae`` must also build kexue-gan-losses (runtime) and kexue-testing ([test]),
    so that both install from local wheels; unrelated packages are not built."""

    def pkg(name: str, deps: list[str], test: list[str]) -> check_wheels.Package:
        return check_wheels.Package(tmp_path / name, f"kexue-{name}", name, deps, test)

    vae = pkg("vae", ["torch>=2.4", "kexue-gan-losses>=0.2"], ["kexue-testing>=0.1", "scipy"])
    gan = pkg("gan-losses", ["torch>=2.4", "kexue-base"], ["kexue-testing>=0.1", "kexue-vq"])
    base = pkg("base", ["torch>=2.4"], [])
    testing = pkg("testing", ["pytest>=8"], [])
    vq = pkg("vq", ["torch>=2.4"], ["kexue-testing>=0.1"])
    extra = check_wheels.required_siblings([vae], [vae, gan, base, testing, vq])
    assert sorted(p.name for p in extra) == ["kexue-base", "kexue-gan-losses", "kexue-testing"]
    assert (
        check_wheels.required_siblings([vae, gan, base, testing], [vae, gan, base, testing]) == []
    )
