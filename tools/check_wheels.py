"""Release check: every package builds, installs alone from its wheel, and passes its tests.

For each ``packages/<folder>``:

1. build the wheel and the sdist (hatchling, no build isolation: run inside ``hatch run wheels:check``);
2. check the wheel holds every file of ``src/`` (and no ``kexue/__init__.py``: PEP 420), and the
   sdist holds the sources, tests, README and CHANGELOG;
3. statically check that every ``kexue.<x>`` import in the package (sources and tests) is the package
   itself or a declared dependency;
4. create a fresh virtual environment that sees nothing but a shared base of torch, numpy and the test
   tools, install the wheel there with its ``test`` extra when it declares one, and run the
   package's tests, copied out of the source tree, against the installed wheel.

kexue distributions are on no public index, so they never come from one: the wheel and every kexue
distribution it needs (runtime siblings and the ``test`` extra's, e.g. kexue-testing, transitively)
are installed with ``--no-index --find-links <the wheels just built> --no-deps``; only then are the
third-party requirements of that set installed, by name, from the index (see
:func:`install_commands`). A same-named package on a public index can never be picked.

Torch: if the interpreter running this script already has torch (a GPU box), the base reuses it
instead of installing one; otherwise the base installs torch under the CPU constraint
(``constraints/cpu.txt``, or ``$KEXUE_PIP_CONSTRAINT``).

Usage: ``python tools/check_wheels.py [--packages gan-losses ...] [--keep] [--pytest-args "-x"]``.
Exit status 0 only if every package passes every step.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ROOT / "packages"
WORK = ROOT / "build" / "check-wheels"
TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100", "numpy"]
IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".hypothesis"}


@dataclass
class Package:
    folder: Path
    name: str
    import_name: str
    dependencies: list[str]
    test_dependencies: list[str]
    problems: list[str] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.folder.name


def log(msg: str) -> None:
    print(f"[check_wheels] {msg}", flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=False, **kw)


def requirement_name(req: str) -> str:
    name = req
    for sep in ("[", "<", ">", "=", "!", "~", ";", " ", "@"):
        name = name.split(sep, 1)[0]
    return name.strip().lower().replace("_", "-")


def load_package(folder: Path) -> Package:
    meta = tomllib.loads((folder / "pyproject.toml").read_text())
    project = meta["project"]
    name = project["name"]
    if not name.startswith("kexue-"):
        raise SystemExit(f"{folder}: distribution name {name!r} must start with 'kexue-'")
    extras = project.get("optional-dependencies", {})
    return Package(
        folder=folder,
        name=name,
        import_name=name.removeprefix("kexue-").replace("-", "_"),
        dependencies=list(project.get("dependencies", [])),
        test_dependencies=list(extras.get("test", [])),
    )


def discover(selected: list[str] | None) -> list[Package]:
    folders = sorted(p.parent for p in PACKAGES.glob("*/pyproject.toml"))
    if selected:
        folders = [f for f in folders if f.name in selected]
        missing = set(selected) - {f.name for f in folders}
        if missing:
            raise SystemExit(f"unknown packages: {sorted(missing)}")
    return [load_package(f) for f in folders]


def required_siblings(selected: list[Package], available: list[Package]) -> list[Package]:
    """Workspace packages that ``selected`` need but that were not selected themselves.

    Follows kexue requirements by name: runtime and ``test`` requirements of the selected
    packages, runtime requirements of the siblings found (transitively). These are built into the
    wheelhouse so that ``--packages vae`` can install kexue-gan-losses (and kexue-testing) from
    local wheels; they are not tested.
    """
    by_name = {canonicalize_name(p.name): p for p in available}
    chosen = {canonicalize_name(p.name) for p in selected}
    todo = [(p, [*p.dependencies, *p.test_dependencies]) for p in selected]
    extra: list[Package] = []
    while todo:
        _, requirements = todo.pop()
        for raw in requirements:
            name = canonicalize_name(Requirement(raw).name)
            if name.startswith("kexue-") and name in by_name and name not in chosen:
                chosen.add(name)
                sibling = by_name[name]
                extra.append(sibling)
                todo.append((sibling, list(sibling.dependencies)))
    return extra


def source_files(pkg: Package) -> list[str]:
    """Files under src/ that the wheel must contain, relative to src/."""
    src = pkg.folder / "src"
    out = []
    for path in src.rglob("*"):
        if path.is_file() and not (IGNORED_PARTS & set(path.parts)) and path.suffix != ".pyc":
            out.append(path.relative_to(src).as_posix())
    return sorted(out)


def check_layout(pkg: Package) -> None:
    src = pkg.folder / "src" / "kexue"
    if (src / "__init__.py").exists():
        pkg.problems.append("src/kexue/__init__.py exists: kexue must be a PEP 420 namespace")
    mod = src / pkg.import_name
    for required in ("__init__.py", "py.typed"):
        if not (mod / required).exists():
            pkg.problems.append(f"missing src/kexue/{pkg.import_name}/{required}")
    for required in ("README.md", "CHANGELOG.md", "tests"):
        if not (pkg.folder / required).exists():
            pkg.problems.append(f"missing {required}")


def kexue_imports(path: Path) -> set[str]:
    """Names ``x`` of every ``kexue.x`` imported by a Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "kexue":
                names = [f"kexue.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "kexue" and len(parts) > 1:
                found.add(parts[1])
    return found


def check_sibling_imports(pkg: Package) -> None:
    runtime = {requirement_name(d) for d in pkg.dependencies}
    testing = runtime | {requirement_name(d) for d in pkg.test_dependencies}
    for sub, allowed in (("src", runtime), ("tests", testing)):
        for path in sorted((pkg.folder / sub).rglob("*.py")):
            for imported in kexue_imports(path):
                if imported == pkg.import_name:
                    continue
                dist = "kexue-" + imported.replace("_", "-")
                if dist not in allowed:
                    rel = path.relative_to(pkg.folder)
                    pkg.problems.append(
                        f"{rel} imports kexue.{imported} but {pkg.name} does not declare {dist}"
                        + (" as a runtime dependency" if sub == "src" else " (runtime or [test])")
                    )


def build(pkg: Package, outdir: Path) -> tuple[Path, Path] | None:
    outdir.mkdir(parents=True, exist_ok=True)
    res = run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--wheel",
            "--sdist",
            "--outdir",
            str(outdir),
        ],
        cwd=pkg.folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if res.returncode != 0:
        print(res.stdout)
        pkg.problems.append("build failed")
        return None
    wheels = sorted(outdir.glob("*.whl"))
    sdists = sorted(outdir.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        pkg.problems.append(f"expected one wheel and one sdist, got {wheels + sdists}")
        return None
    return wheels[0], sdists[0]


def check_archives(pkg: Package, wheel: Path, sdist: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        wheel_files = {n for n in zf.namelist() if ".dist-info/" not in n}
    missing = [f for f in source_files(pkg) if f not in wheel_files]
    if missing:
        pkg.problems.append(f"wheel {wheel.name} leaves out: {missing}")
    if "kexue/__init__.py" in wheel_files:
        pkg.problems.append(f"wheel {wheel.name} ships kexue/__init__.py (breaks the namespace)")
    stray = sorted(f for f in wheel_files if not f.startswith(f"kexue/{pkg.import_name}/"))
    if stray:
        pkg.problems.append(
            f"wheel {wheel.name} ships files outside kexue/{pkg.import_name}: {stray}"
        )
    with tarfile.open(sdist) as tf:
        sdist_files = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    wanted = ["pyproject.toml", "README.md", "CHANGELOG.md"]
    wanted += [f"src/{f}" for f in source_files(pkg)]
    wanted += [
        p.relative_to(pkg.folder).as_posix()
        for p in (pkg.folder / "tests").rglob("*.py")
        if not (IGNORED_PARTS & set(p.parts))
    ]
    missing = [f for f in wanted if f not in sdist_files]
    if missing:
        pkg.problems.append(f"sdist {sdist.name} leaves out: {missing}")


def venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def site_packages(python: Path) -> list[str]:
    code = "import site, sys; print('\\n'.join(site.getsitepackages()))"
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line]


def default_constraint() -> str:
    """The CPU pin, or, when this interpreter already has torch, a pin to that very torch."""
    if importlib.util.find_spec("torch") is None:
        return str(ROOT / "constraints" / "cpu.txt")
    from importlib.metadata import version

    pin = WORK / "constraint-local-torch.txt"
    pin.parent.mkdir(parents=True, exist_ok=True)
    pin.write_text(f"torch=={version('torch')}\n")
    return str(pin)


def pip_env() -> dict[str, str]:
    env = dict(os.environ)
    constraint = os.environ.get("KEXUE_PIP_CONSTRAINT", default_constraint())
    if constraint:
        env["PIP_CONSTRAINT"] = constraint
    else:
        env.pop("PIP_CONSTRAINT", None)
    env.pop("PYTHONPATH", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def make_base() -> list[str]:
    """A venv with torch (or a link to the running interpreter's torch), numpy and test tools.

    Returns the site-packages directories a package venv must see (written into a .pth file).
    """
    base = WORK / "base"
    python = venv_python(base)
    reuse_torch = importlib.util.find_spec("torch") is not None
    reqs = [*TEST_TOOLS] if reuse_torch else [*TEST_TOOLS, "torch"]
    # The base is kept between runs (build/ is ignored) and rebuilt when what it must hold changes.
    marker = base / ".kexue-base-ok"
    wanted = "\n".join([sys.version, pip_env().get("PIP_CONSTRAINT", ""), *reqs]) + "\n"
    if not marker.exists() or marker.read_text() != wanted:
        shutil.rmtree(base, ignore_errors=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(base)
        if reuse_torch:
            log("the running interpreter has torch: the base reuses it")
        res = run([str(python), "-m", "pip", "install", "-q", *reqs], env=pip_env())
        if res.returncode != 0:
            raise SystemExit("could not create the base environment")
        marker.write_text(wanted)
    dirs = site_packages(python)
    if reuse_torch:
        import torch

        dirs.append(str(Path(torch.__file__).resolve().parents[1]))
    return dirs


def installed_kexue(python: Path) -> list[str]:
    code = (
        "import importlib.metadata as m\n"
        "print('\\n'.join(sorted({d.metadata['Name'] for d in m.distributions()"
        " if (d.metadata['Name'] or '').lower().startswith('kexue')})))"
    )
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line]


def wheel_requires(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` entries of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        text = zf.read(meta).decode("utf-8")
    head = text.split("\n\n", 1)[0]
    return [
        line.split(":", 1)[1].strip()
        for line in head.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def _applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in (extras or {""}))


def kexue_closure(pkg: Package, wheel: Path, wheelhouse: Path) -> tuple[dict[str, Path], list[str]]:
    """Every kexue distribution the installed wheel needs, and the third-party requirements of all.

    Starts from the wheel with its ``test`` extra (when declared) and follows kexue requirements
    (with their extras) through the wheels in ``wheelhouse``. Returns ``{normalised name: wheel}``
    for the kexue set (the package itself included) and the third-party requirement strings,
    markers resolved, in first-seen order. Raises :class:`LookupError` when a kexue requirement has
    no wheel in ``wheelhouse``.
    """
    local = {canonicalize_name(w.name.split("-", 1)[0]): w for w in wheelhouse.glob("*.whl")}
    local[canonicalize_name(pkg.name)] = wheel
    found: dict[str, Path] = {}
    third_party: list[str] = []
    todo = [(canonicalize_name(pkg.name), {"test"} if pkg.test_dependencies else set())]
    seen_extras: dict[str, set[str]] = {}
    while todo:
        name, extras = todo.pop()
        if name in seen_extras and extras <= seen_extras[name]:
            continue
        seen_extras[name] = seen_extras.get(name, set()) | extras
        if name not in local:
            raise LookupError(f"{name} is required but no local wheel provides it")
        found[name] = local[name]
        for raw in wheel_requires(local[name]):
            req = Requirement(raw)
            if not _applies(req, extras):
                continue
            dep = canonicalize_name(req.name)
            if dep.startswith("kexue-"):
                todo.append((dep, set(req.extras)))
            else:
                req.marker = None
                if str(req) not in third_party:
                    third_party.append(str(req))
    return found, third_party


def install_commands(python: Path, pkg: Package, wheel: Path, wheelhouse: Path) -> list[list[str]]:
    """The pip commands that install ``wheel`` (and its ``test`` extra) into ``python``'s venv.

    1. every kexue distribution, from the local wheels only: ``--no-index --find-links wheelhouse
       --no-deps``, the wheel files named explicitly (kexue is on no public index, and a same-named
       package there must never be picked);
    2. the third-party requirements of that set, by name, from the index (PIP_CONSTRAINT applies);
       no kexue name is ever passed to this command.
    """
    kexue, third_party = kexue_closure(pkg, wheel, wheelhouse)
    pip = [str(python), "-m", "pip", "install", "-q"]
    local_only = ["--no-index", "--find-links", str(wheelhouse), "--no-deps"]
    commands = [[*pip, *local_only, *(str(w) for w in kexue.values())]]
    if third_party:
        commands.append([*pip, *third_party])
    return commands


def install_and_test(
    pkg: Package, wheel: Path, wheelhouse: Path, base_dirs: list[str], pytest_args: list[str]
) -> None:
    env_dir = WORK / "envs" / pkg.short
    shutil.rmtree(env_dir, ignore_errors=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = venv_python(env_dir)
    own_site = site_packages(python)[0]
    Path(own_site, "_kexue_check_base.pth").write_text("\n".join(base_dirs) + "\n")
    # The wheel with its `test` extra (what the suite compares against or reads, e.g. a corpus, and
    # the kexue-testing plugin); kexue names from the local wheels only, the rest from the index.
    try:
        commands = install_commands(python, pkg, wheel, wheelhouse)
    except LookupError as exc:
        pkg.problems.append(str(exc))
        return
    for cmd in commands:
        res = run(cmd, env=pip_env())
        if res.returncode != 0:
            pkg.problems.append("wheel does not install into a fresh environment")
            return
    declared = set(kexue_closure(pkg, wheel, wheelhouse)[0])
    seen = installed_kexue(python)
    unexpected = [d for d in seen if canonicalize_name(d) not in declared]
    if unexpected:
        pkg.problems.append(f"the test environment also sees {unexpected}; isolation is broken")
        return
    probe = (
        f"import kexue.{pkg.import_name} as m, pathlib; p = pathlib.Path(m.__file__).resolve(); "
        f"assert {str(pkg.folder)!r} not in str(p), p; print(p)"
    )
    res = run([str(python), "-c", probe], env=pip_env(), cwd=tempfile.gettempdir())
    if res.returncode != 0:
        pkg.problems.append(
            "the installed package does not import, or imports from the source tree"
        )
        return
    with tempfile.TemporaryDirectory(prefix=f"kexue-{pkg.short}-tests-") as tmp:
        tests = Path(tmp) / "tests"
        shutil.copytree(
            pkg.folder / "tests", tests, ignore=shutil.ignore_patterns(*IGNORED_PARTS, "*.pyc")
        )
        # the README ships in the sdist; tests that run its examples read it beside tests/
        shutil.copy2(pkg.folder / "README.md", Path(tmp) / "README.md")
        ini = Path(tmp) / "pytest.ini"
        ini.write_text(
            "[pytest]\n"
            "addopts = --import-mode=importlib -p no:cacheprovider -ra --strict-markers\n"
            "markers =\n    slow: slow tests\n    gpu: needs CUDA\n"
        )
        res = run(
            [
                str(python),
                "-m",
                "pytest",
                "-c",
                str(ini),
                "--rootdir",
                tmp,
                str(tests),
                *pytest_args,
            ],
            cwd=tmp,
            env=pip_env(),
        )
    if res.returncode == 5:
        pkg.problems.append("pytest collected no tests")
    elif res.returncode != 0:
        pkg.problems.append(
            f"tests failed against the installed wheel (pytest exit {res.returncode})"
        )


def main(argv: list[str] | None = None) -> int:
    global WORK
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", nargs="*", help="package folders to check (default: all)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder's envs afterwards")
    ap.add_argument(
        "--work",
        type=Path,
        default=WORK,
        help="work folder for wheels and environments (default build/check-wheels); give each "
        "concurrent check its own",
    )
    ap.add_argument("--pytest-args", default="-q", help="extra pytest arguments (one string)")
    args = ap.parse_args(argv)
    WORK = args.work.resolve()

    packages = discover(args.packages)
    if not packages:
        raise SystemExit("no packages found under packages/")
    siblings = required_siblings(packages, discover(None)) if args.packages else []
    shutil.rmtree(WORK / "dist", ignore_errors=True)
    shutil.rmtree(WORK / "envs", ignore_errors=True)
    wheelhouse = WORK / "dist" / "all"
    wheelhouse.mkdir(parents=True)

    started = time.perf_counter()
    built: dict[str, Path] = {}
    for pkg in packages:
        log(f"== {pkg.name}: layout, imports, build")
        check_layout(pkg)
        check_sibling_imports(pkg)
        result = build(pkg, WORK / "dist" / pkg.short)
        if result is not None:
            wheel, sdist = result
            check_archives(pkg, wheel, sdist)
            shutil.copy2(wheel, wheelhouse)
            built[pkg.name] = wheel
    for sibling in siblings:
        log(f"== {sibling.name}: build only (a kexue requirement of the selected packages)")
        result = build(sibling, WORK / "dist" / sibling.short)
        if result is not None:
            shutil.copy2(result[0], wheelhouse)

    base_dirs = make_base()
    for pkg in packages:
        if pkg.name in built and not pkg.problems:
            log(f"== {pkg.name}: install alone and test")
            install_and_test(pkg, built[pkg.name], wheelhouse, base_dirs, args.pytest_args.split())

    print("\npackage              result")
    print("-------------------  ------")
    for pkg in packages:
        print(f"{pkg.name:<20} {'ok' if not pkg.problems else 'FAIL'}")
        for problem in pkg.problems:
            print(f"    - {problem}")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    if not args.keep:
        shutil.rmtree(WORK / "envs", ignore_errors=True)
    return 1 if any(p.problems for p in packages) else 0


if __name__ == "__main__":
    sys.exit(main())
