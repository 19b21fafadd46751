"""Each submission's kernel in its own bubblewrap sandbox (README: "Grading you can trust").

The notebook's kernel (the process that runs the student's code) is started by
`SandboxKernelManager`, a jupyter_client `KernelManager` whose kernel command is

    python -m minilm.grading.sandbox launch [limits] -- python -m ipykernel_launcher -f CONN

That launcher runs outside the sandbox (it is ours, not the student's). It starts
[bubblewrap](https://github.com/containers/bubblewrap) with

- every namespace new (`--unshare-all`): no network (only a loopback of its own), its own PID
  namespace (every process the student starts dies with the sandbox: nothing outlives the
  kernel), no further user namespaces;
- a read-only view of the system (`/usr`, the libraries, a few files of `/etc`) and of the Python
  environment (its prefixes, site-packages, the minilm package), and nothing else: not the
  course directory (no `solutions/`, `source/`, `submitted/`, `autograded/`, `feedback/`,
  gradebook or config), not the grader's home, not other students' work;
- private writable space only in size-capped tmpfs mounts (`/tmp`, which is also `$HOME`);
- a clean environment (an allowlist of variables: no tokens or passwords of the instructor's);
- resource limits (rlimits, inherited by every process inside): address space, processes,
  file size, open files, no core dumps; and a wall-time budget after which the launcher kills
  the whole sandbox.

The kernel talks to the grader over ZeroMQ's `ipc` transport: its sockets are files in a small
tmpfs inside the sandbox, which the grader reaches through `/proc/PID/root` (a symlink the
launcher makes once it knows the sandbox's PID). The sandbox has no other way out.

Interrupts are sent as messages (`interrupt_mode: message`), since signals cannot cross the PID
namespace; a kernel that ignores them is killed and restarted by `ResilientExecute`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

SANDBOX_UID = 65534  # the student's code runs as "nobody" inside (mapped to the grader's user)
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd",
             "group", "nsswitch.conf", "hosts", "mime.types", "os-release", "fonts",
             "alternatives")  # what Python, NumPy, Numba and Jupyter read of /etc
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ENV_KEPT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONHASHSEED", "MPLBACKEND",
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE", "NUMBA_NUM_THREADS", "NUMBA_ENABLE_CUDASIM",
            "NUMBA_THREADING_LAYER", "NUMBA_OPT", "NUMBA_DISABLE_JIT")
INSIDE_TMP = "/tmp"  # the sandbox's private, size-capped writable space (and $HOME)
MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one submission may use. The defaults fit a 2-core laptop grading 2 at a time."""
    memory_mib: int = 4096  # address space of each process (RLIMIT_AS)
    processes: int = 128  # processes and threads the sandbox may add (RLIMIT_NPROC)
    disk_mib: int = 512  # size of the writable tmpfs, and of any one file (RLIMIT_FSIZE)
    wall_seconds: float = 1800.0  # the kernel is killed after this long, whatever it does
    open_files: int = 1024  # RLIMIT_NOFILE

    def __post_init__(self):
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"sandbox limit {item.name} must be a number > 0, got {value!r}")

    def arguments(self) -> list[str]:
        """The launcher's command-line flags for these limits."""
        return [f"--{item.name.replace('_', '-')}={getattr(self, item.name)}"
                for item in fields(self)]


# -- is there a sandbox here? ---------------------------------------------------------------------

_PROBLEM: list[str | None] = []  # cached answer of sandbox_problem()


def sandbox_problem() -> str | None:
    """None when bubblewrap can sandbox a kernel on this machine, else why not (one line)."""
    if not _PROBLEM:
        _PROBLEM.append(_find_problem())
    return _PROBLEM[0]


def _find_problem() -> str | None:
    if not sys.platform.startswith("linux"):
        return (f"the grading sandbox needs Linux (bubblewrap); this is {sys.platform}: grade on "
                "a Linux machine, or pass --unsafe to run submissions without a sandbox")
    if shutil.which("bwrap") is None:
        return ("bubblewrap (bwrap) is not installed: `sudo apt-get install bubblewrap` "
                "(Debian/Ubuntu), `sudo dnf install bubblewrap` (Fedora), or pass --unsafe to "
                "run submissions without a sandbox")
    try:
        probe = subprocess.run(bwrap_argv(Limits(), Path(tempfile.gettempdir()), [])
                               + [sys.executable, "-c", "pass"],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap does not start here ({error}); pass --unsafe to grade without it"
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"])[-1]
        return (f"bubblewrap cannot make a sandbox here ({why}): user namespaces may be "
                "disabled (sysctl kernel.unprivileged_userns_clone); pass --unsafe to grade "
                "without a sandbox")
    return None


# -- what the sandbox sees ------------------------------------------------------------------------

def visible_paths() -> list[Path]:
    """The folders the sandbox sees read-only besides the system: the Python environment (its
    prefixes and site-packages) and the minilm package (an editable install lives elsewhere)."""
    import site

    import minilm

    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  *site.getsitepackages(), site.getusersitepackages(),
                  Path(minilm.__file__).parent]
    found = []  # as Python names them (a venv's bin/python is found by that name), not resolved
    for path in sorted({Path(p).absolute() for p in candidates}, key=lambda p: len(p.parts)):
        if path.is_dir() and not any(path.is_relative_to(outer) for outer in found):
            found.append(path)
    return found


def bwrap_argv(limits: Limits, socket_dir: Path, hidden, paths=None) -> list[str]:
    """The bubblewrap command (up to and including `--`) for one sandbox. `socket_dir` is the
    tmpfs for the kernel's sockets; `hidden` are folders that must stay invisible (the course
    directory) even where they lie inside a visible one."""
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--hostname", "sandbox", "--uid", str(SANDBOX_UID),
            "--gid", str(SANDBOX_UID), "--proc", "/proc", "--dev", "/dev"]
    for name in SYSTEM_DIRS:
        if os.path.islink(name):
            argv += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            argv += ["--ro-bind", name, name]
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            argv += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    mounts = [(path, ["--ro-bind", str(path), str(path)])
              for path in (visible_paths() if paths is None else paths)]
    mounts += [(Path(path), ["--tmpfs", str(path)]) for path in hidden
               if any(Path(path).is_relative_to(p) for p, _ in mounts)]
    for _, mount in sorted(mounts, key=lambda m: (len(m[0].parts), m[1][0] != "--tmpfs")):
        argv += mount
    size = str(limits.disk_mib * MIB)
    argv += ["--size", size, "--tmpfs", INSIDE_TMP, "--size", str(MIB), "--tmpfs", str(socket_dir),
             "--chdir", INSIDE_TMP, "--clearenv"]
    for name in ENV_KEPT:
        if name in os.environ:
            argv += ["--setenv", name, os.environ[name]]
    argv += ["--setenv", "HOME", INSIDE_TMP, "--setenv", "USER", "student",
             "--setenv", "JUPYTER_PLATFORM_DIRS", "1",
             "--setenv", "NUMBA_CACHE_DIR", f"{INSIDE_TMP}/numba-cache"]
    return argv + ["--"]


# -- the launcher (outside the sandbox) ------------------------------------------------------------

INSIDE_CONNECTION_FILE = "/run/kernel.json"


def _process_count(uid: int) -> int:
    """How many processes (threads counted) user `uid` runs now: RLIMIT_NPROC counts them all."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                status = Path(entry.path, "status").read_text()
            except OSError:
                continue
            fields_ = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if int(fields_.get("Uid", "-1").split()[0]) == uid:
                count += int(fields_.get("Threads", "1"))
    return count


def _limit_resources(limits: Limits):
    """A preexec function that caps what bubblewrap and everything inside it may use."""
    import resource

    processes = _process_count(os.getuid()) + limits.processes
    size = limits.disk_mib * MIB
    caps = [(resource.RLIMIT_AS, limits.memory_mib * MIB), (resource.RLIMIT_NPROC, processes),
            (resource.RLIMIT_FSIZE, size), (resource.RLIMIT_NOFILE, limits.open_files),
            (resource.RLIMIT_CORE, 0)]

    def apply():
        for which, value in caps:
            resource.setrlimit(which, (value, value))
    return apply


def _read_json(fd: int) -> dict:
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        data += chunk
        try:
            return json.loads(data)
        except ValueError:
            if not chunk:
                raise RuntimeError(f"bubblewrap said nothing about its sandbox: {data!r}") from None


def _die_with_parent() -> None:
    """End this launcher (and with it the sandbox: `--die-with-parent`) when the grader that
    started it dies, even by SIGKILL."""
    import ctypes

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the call
        os._exit(1)


def _keep_tail(stream, tail: list, limit: int = 4096) -> None:
    """Read `stream` to its end keeping only its last `limit` bytes in `tail[0]`."""
    for chunk in iter(lambda: stream.read1(limit), b""):
        tail[0] = (tail[0] + chunk)[-limit:]


def launch(argv: list[str]) -> int:
    """`python -m minilm.grading.sandbox launch ...`: run a kernel command in a sandbox, point
    the socket link at it, and wait (killing it all after the wall-time budget). The kernel's
    own stdout and stderr (not the notebook's output, which goes over its sockets) are not passed
    on: the last 4 KiB of stderr are shown when the sandbox fails."""
    import threading

    _die_with_parent()
    parser = argparse.ArgumentParser(prog="python -m minilm.grading.sandbox launch")
    parser.add_argument("--socket-dir", required=True, type=Path)
    parser.add_argument("--connection-file", required=True)
    parser.add_argument("--hidden", action="append", default=[])
    for item in fields(Limits):
        parser.add_argument(f"--{item.name.replace('_', '-')}", default=item.default,
                            type=float if item.type == "float" else int)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    command = [INSIDE_CONNECTION_FILE if part == args.connection_file else part
               for part in command]
    limits = Limits(**{item.name: getattr(args, item.name) for item in fields(Limits)})
    link = args.socket_dir  # host side: a symlink into the sandbox's socket tmpfs
    info_read, info_write = os.pipe()
    data_read, data_write = os.pipe()
    os.write(data_write, Path(args.connection_file).read_bytes())
    os.close(data_write)
    argv_ = bwrap_argv(limits, link, args.hidden)[:-1] + [
        "--info-fd", str(info_write), "--perms", "0444",
        "--ro-bind-data", str(data_read), INSIDE_CONNECTION_FILE, "--"] + command
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts reach the kernel as messages
    process = subprocess.Popen(argv_, pass_fds=(info_write, data_read),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               preexec_fn=_limit_resources(limits))
    os.close(info_write)
    os.close(data_read)
    signal.signal(signal.SIGTERM, lambda *_: process.kill())
    tail = [b""]
    reader = threading.Thread(target=_keep_tail, args=(process.stderr, tail), daemon=True)
    reader.start()
    try:
        pid = _read_json(info_read)["child-pid"]
        temporary = link.with_name(link.name + ".new")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(f"/proc/{pid}/root{link}")
        os.replace(temporary, link)
        code = process.wait(timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        print(f"minilm sandbox: killed after its {limits.wall_seconds:g} s budget",
              file=sys.stderr)
        return 124
    except RuntimeError as error:  # bubblewrap did not start: say why
        process.wait()
        reader.join(5)
        print(f"minilm sandbox: {error}\n{tail[0].decode(errors='replace')}", file=sys.stderr)
        return 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if code not in (0, -signal.SIGKILL, -signal.SIGTERM):
        reader.join(5)
        print(f"minilm sandbox: the kernel ended with code {code}; its last words:\n"
              f"{tail[0].decode(errors='replace')}", file=sys.stderr)
    return code


# -- the kernel manager (in the grader) ------------------------------------------------------------

def _kernel_manager_class():
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Dict, List, Unicode

    class SandboxKernelManager(AsyncKernelManager):
        """An (async) KernelManager whose kernel runs in a bubblewrap sandbox (see the module)."""

        limits = Dict(help="Limits fields (memory_mib, processes, disk_mib, wall_seconds, "
                           "open_files) that differ from the defaults").tag(config=True)
        hidden = List(Unicode(), help="Folders the sandbox must never see, besides the "
                                      "course directory (CourseDirectory.root, else the "
                                      "current one)").tag(config=True)

        def __init__(self, **kwargs):
            self._folder = Path(tempfile.mkdtemp(prefix="minilm-sandbox-"))
            kwargs.update(transport="ipc", ip=str(self._folder / "sock" / "k"))
            super().__init__(**kwargs)
            Limits(**self.limits)  # a bad setting fails here, with the field's name

        @property
        def kernel_spec(self):
            launcher = [sys.executable, "-m", "minilm.grading.sandbox", "launch",
                        f"--socket-dir={self._folder / 'sock'}",
                        "--connection-file={connection_file}",
                        *Limits(**self.limits).arguments(),
                        *(f"--hidden={path}" for path in self._hidden())]
            kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
            return KernelSpec(argv=[*launcher, "--", *kernel], language="python",
                              display_name="Python 3 (minilm grading sandbox)",
                              interrupt_mode="message")

        def _hidden(self) -> list[Path]:
            course = self.config.get("CourseDirectory", {}).get("root") or os.getcwd()
            paths = [Path(path).absolute() for path in [course, *self.hidden]]
            return sorted({*paths, *(path.resolve() for path in paths)})

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart)
            if not restart:
                shutil.rmtree(self._folder, ignore_errors=True)

        cleanup_resources = _async_cleanup_resources

    return SandboxKernelManager


def __getattr__(name):  # SandboxKernelManager is built on first use: jupyter_client is heavy
    if name == "SandboxKernelManager":
        value = _kernel_manager_class()
        globals()[name] = value
        return value
    raise AttributeError(name)


if __name__ == "__main__":
    if sys.argv[1:2] != ["launch"]:
        sys.exit("usage: python -m minilm.grading.sandbox launch --socket-dir DIR "
                 "--connection-file FILE [limits] -- COMMAND")
    sys.exit(launch(sys.argv[2:]))
