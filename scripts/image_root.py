#!/usr/bin/env python3
"""The service image's whole root file system, built in the Dockerfile's build stage (issue 14: an arm64
image of at most 350 MB).

The runtime stage is ``FROM scratch`` plus this one folder, so the image holds only what serving needs:
- the Python interpreter and the parts of its standard library a server can use (no test suite, IDLE,
  Tk, ensurepip, lib2to3, pydoc's data, the static library and build files);
- the shared libraries that the interpreter, its extension modules and the virtual environment's
  extension modules load, found with ``ldd`` (the C library, libstdc++, libffi, liblzma, ...), and the
  loader's cache;
- the virtual environment, less what serving never loads: pip, setuptools and wheel; test suites, C
  headers and type stubs; ONNX Runtime's C-API library (its Python module carries its own copy of the
  runtime), model tools, quantisation and transformer optimisers; uvicorn's optional parsers, loop and
  reloader that the server does not use (it runs h11 on asyncio); Swagger UI's files other than the two
  the docs page serves; the bytecode, which the Dockerfile compiles afterwards;
- /etc/passwd and /etc/group with the service user (uid 10001), and /tmp.
Licence and notice files are kept wherever they are.

    python3 scripts/image_root.py slim --venv /opt/edgescribe               # in place, then check it loads
    python3 scripts/image_root.py root --venv /opt/edgescribe --out /rootfs  # then compile its bytecode

Run it with the interpreter the virtual environment was made from. Prints the size of each part.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# Standard-library folders a server never imports.
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data", "__pycache__",
               "site-packages", "dist-packages"}
STDLIB_SKIP_PREFIX = ("config-",)  # config-3.11-<arch>: the static library, Makefile, build scripts
# Packages in the virtual environment that serving never imports (uvicorn's optional extras: the server
# names its h11 protocol, and it never reloads), with their metadata.
VENV_DROP_PACKAGES = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "wheel", "httptools", "uvloop",
                      "watchfiles")
# Inside packages (paths relative to site-packages; globs).
VENV_DROP_GLOBS = (
    "onnxruntime/capi/libonnxruntime.so*",  # the C API; onnxruntime_pybind11_state links its own runtime
    "onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/tools", "onnxruntime/datasets",
    "numpy/f2py", "numpy/distutils", "numpy/_pyinstaller", "numpy/_core/include", "numpy/_core/lib",
    "numpy/random/_examples", "numpy/doc",
    "distutils-precedence.pth",
)
DOCS_KEEP = {"swagger-ui-bundle.js", "swagger-ui.css"}  # what service/routes/docs.py serves
LICENCE = re.compile(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS|ThirdPartyNotices)", re.IGNORECASE)
ELF_MAGIC = b"\x7fELF"


def size_of(path: Path) -> int:
    """Bytes of the files under ``path``, links counted as links (never followed)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(os.lstat(os.path.join(d, f)).st_size for d, dirs, files in os.walk(path) for f in files + [
        x for x in dirs if os.path.islink(os.path.join(d, x))])


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if len(found) != 1:
        raise SystemExit(f"no single site-packages under {venv}: {found}")
    return found[0]


def slim_venv(venv: Path) -> None:
    site = site_packages(venv)
    for name in VENV_DROP_PACKAGES:
        remove(site / name)
        for meta in site.glob(f"{name}-*.dist-info"):
            remove(meta)
    for name in ("pip", "pip3", "pip3.11", "wheel", "uvloop"):
        remove(venv / "bin" / name)
    for pattern in VENV_DROP_GLOBS:
        for p in site.glob(pattern):
            remove(p)
    for p in sorted(site.rglob("*"), reverse=True):  # deepest first
        if p.is_dir() and not p.is_symlink():
            if p.name in ("tests", "test", "__pycache__") and (site / "model") not in p.parents:
                remove(p)
        elif p.suffix in (".pyi", ".pxd", ".pyx", ".h", ".c", ".cpp") and not LICENCE.search(p.name):
            p.unlink()
    for bundle in site.glob("swagger_ui_bundle/vendor/*"):
        for p in bundle.iterdir():
            if p.name not in DOCS_KEEP and not LICENCE.search(p.name):
                remove(p)


def copy_into(src: Path, root: Path) -> None:
    """``src`` at the same path under ``root``; a symlink stays a link, and what it points to comes too."""
    dst = root / src.relative_to("/")
    if dst.exists() or dst.is_symlink():
        return
    # Through the root's own top-level links (lib64 -> usr/lib64 may not lead anywhere yet).
    os.makedirs(os.path.realpath(dst.parent), exist_ok=True)
    if src.is_symlink():
        target = os.readlink(src)
        os.symlink(target, dst)
        copy_into(Path(os.path.normpath(Path(os.path.realpath(src.parent)) / target)), root)
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst)


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


def needed_libraries(files: list[Path]) -> set[Path]:
    """Every shared library the ELF ``files`` load, by ldd (which follows their RPATHs and dependencies)."""
    libs: set[Path] = set()
    for f in files:
        out = subprocess.run(["ldd", str(f)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
            if m:
                libs.add(Path(m.group(1)))
            elif "not found" in line:
                print(f"warning: {f}: {line.strip()}", file=sys.stderr)
    return libs


def build_root(venv: Path, root: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    root.mkdir(parents=True, exist_ok=True)
    # The top-level links of a merged-/usr system (/lib -> usr/lib, ...), so every path stays valid.
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        top = Path("/") / name
        if top.is_symlink():
            os.symlink(os.readlink(top), root / name)
    # The virtual environment as slimmed, and the interpreter its links lead to.
    copy_into(venv, root)
    for link in (venv / "bin").iterdir():
        if link.is_symlink():
            target = Path(os.readlink(link))
            target = target if target.is_absolute() else Path(os.path.normpath(link.parent / target))
            if venv not in target.parents:
                copy_into(target, root)
    sizes["virtual environment"] = size_of(root / venv.relative_to("/"))
    # The standard library (pure and compiled), less what a server never imports.
    paths = sysconfig.get_paths()
    stdlib_dirs = sorted({Path(paths["stdlib"]), Path(paths["platstdlib"])})
    for d in stdlib_dirs:
        for p in d.iterdir():
            if p.name not in STDLIB_SKIP and not p.name.startswith(STDLIB_SKIP_PREFIX):
                copy_into(p, root)
    dynload = Path(sysconfig.get_config_var("DESTSHARED") or "/nonexistent")
    if dynload.is_dir():
        copy_into(dynload, root)
    for d in stdlib_dirs:
        for cache in list((root / d.relative_to("/")).rglob("__pycache__")):
            shutil.rmtree(cache)
    sizes["standard library"] = sum(size_of(root / d.relative_to("/")) for d in stdlib_dirs)
    # Shared libraries of every ELF file there (the interpreter's among them), and the loader's cache.
    before = size_of(root)
    elves = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p)]
    for lib in sorted(needed_libraries(elves)):
        if Path(os.path.realpath(lib)).is_relative_to(os.path.realpath(root)):
            continue  # bundled with a package (numpy.libs, av.libs), found through its RPATH
        copy_into(lib, root)
        if lib.resolve() != lib:
            copy_into(lib.resolve(), root)
    for extra in ("/etc/ld.so.cache", "/etc/ld.so.conf"):
        if Path(extra).exists():
            copy_into(Path(extra), root)
    sizes["shared libraries"] = size_of(root) - before
    # The service user, and /tmp.
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/sbin/nologin\n"
                                "edgescribe:x:10001:10001:EdgeScribe:/nonexistent:/sbin/nologin\n")
    (etc / "group").write_text("root:x:0:\nedgescribe:x:10001:\n")
    (root / "tmp").mkdir(exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    return sizes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=["slim", "root"], help="slim: the venv in place; root: the root file system")
    p.add_argument("--venv", type=Path, required=True)
    p.add_argument("--out", type=Path, help="(root) where the root file system is made: an empty folder")
    args = p.parse_args()
    if args.step == "slim":
        before = size_of(args.venv)
        slim_venv(args.venv)
        print(f"virtual environment: {before / 1e6:.1f} MB -> {size_of(args.venv) / 1e6:.1f} MB (no bytecode)")
        return 0
    if args.out is None or (args.out.exists() and any(args.out.iterdir())):
        raise SystemExit("root: --out must name an empty or new folder")
    for part, n in build_root(args.venv, args.out).items():
        print(f"{part}: {n / 1e6:.1f} MB")
    print(f"root file system: {size_of(args.out) / 1e6:.1f} MB (no bytecode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
