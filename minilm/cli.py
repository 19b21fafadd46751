"""The `minilm` command: info, generate, bench, train, baselines, models, quantize,
scaling, check, grade, exercises, course.

Every subcommand has `--help`; a bad argument prints one line `minilm: error: ...` and exits 2.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .grading.cli import add_grading_parsers
from .kbit.cli import add_quantize_parser
from .scaling_cli import add_scaling_parser
from .train_cli import add_baselines_parser, add_models_parser, add_train_parser


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    """argparse type: an int >= 1 (also used by the grading commands)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def cmd_info(args) -> int:
    """Versions, threads, and what the GPU backend can use."""
    import numba
    import numpy as np

    import minilm

    from .kernels.threads import n_threads

    print(f"minilm {minilm.__version__}  ({Path(minilm.__file__).parent})")
    print(f"python {platform.python_version()}  numpy {np.__version__}  numba {numba.__version__}")
    print(f"cpu threads: numba {n_threads()} ({numba.config.THREADING_LAYER} layer)")
    gpu, cuda_backend = _cuda_status()
    print(f"gpu: {gpu}")
    print(f"cuda simulator: {_simulator_status()}")
    print(f"cuda backend: {cuda_backend}")
    models = minilm.available_models()
    print(f"shipped models: {', '.join(models) if models else 'none yet'}")
    return 0


def _cuda_status() -> tuple[str, str]:
    """(the GPU numba.cuda sees, what backend="cuda" runs on in this process: the GPU, the
    simulator, or nothing, with how to enable the simulator)."""
    try:
        from .kernels.cuda.device import describe, gpu_name

        return gpu_name() or "none visible to numba.cuda", describe()
    except Exception as error:  # a broken CUDA install must not break `minilm info`
        broken = f"numba.cuda unusable ({type(error).__name__}: {error})"
        return broken, broken


SIMULATOR_PROBE = """
from numba import cuda
import numpy as np
@cuda.jit
def add_one(a):
    i = cuda.grid(1)
    if i < a.size:
        a[i] += 1
a = np.zeros(4)
add_one[1, 4](a)
assert (a == 1).all()
"""


def _simulator_status() -> str:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    probe = subprocess.run([sys.executable, "-c", SIMULATOR_PROBE], env=env,
                           capture_output=True, text=True, timeout=120)
    if probe.returncode == 0:
        return "works (set NUMBA_ENABLE_CUDASIM=1 before starting Python to use it)"
    last = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
    return f"not working: {last}"


def default_model():
    """The largest shipped checkpoint (it writes the best text), or a seeded random model while
    none ships."""
    import minilm

    names = minilm.available_models()
    if names:
        return minilm.load(names[-1])
    print("minilm: no trained checkpoint ships yet; using a random 'small' model "
          "(seed 0): expect gibberish", file=sys.stderr)
    return minilm.MiniLM.init(minilm.ModelConfig.preset("small"), seed=0)


def cmd_generate(args) -> int:
    """Stream generated text to stdout."""
    import minilm

    started = time.perf_counter()
    model = minilm.load(args.model) if args.model else default_model()
    pieces = minilm.generate_stream(model, args.prompt, max_new_tokens=args.max_new_tokens,
                                    temperature=args.temperature, top_k=args.top_k,
                                    seed=args.seed, backend=args.backend)
    sys.stdout.write(args.prompt)
    sys.stdout.flush()
    first = None
    for piece in pieces:
        if first is None:
            first = time.perf_counter() - started
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    if args.timing and first is not None:
        print(f"[first token after {first:.2f} s, total {time.perf_counter() - started:.2f} s]",
              file=sys.stderr)
    return 0


def cmd_bench(args) -> int:
    """Check every fast kernel against its reference, then time it."""
    from . import bench

    bench.run(args.case or None, quick=args.quick, backend=args.backend)
    return 0


def course_dir() -> Path:
    """The course/ folder of the repository minilm was installed from (editable install)."""
    folder = Path(__file__).resolve().parent.parent / "course"
    if not folder.is_dir():
        raise FileNotFoundError(f"no course/ folder next to the package ({folder}); clone the "
                                "repository and install it with `pip install -e .`")
    return folder


def cmd_course(args) -> int:
    """Start JupyterLab on the course folder, opening chapter 0."""
    folder = course_dir()
    welcome = sorted(folder.glob("00_*.ipynb"))
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}",
               f"--port={args.port}"]
    if args.no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI run as root
        command.append("--allow-root")
    if welcome:
        command.append(str(welcome[0]))
    print("starting:", " ".join(command), flush=True)
    os.chdir(folder.parent)  # the repository root, where nbgrader_config.py lives
    os.execv(sys.executable, command)  # JupyterLab replaces this process (and gets Ctrl-C)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="minilm", description="minilm: a small Transformer LM course package.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    info = sub.add_parser("info", help="versions, threads, GPU and CUDA simulator status")
    info.set_defaults(run=cmd_info)

    gen = sub.add_parser("generate", help="continue a prompt with a model")
    gen.add_argument("prompt", help="the text to continue")
    gen.add_argument("--model", help="shipped model name or .npz path "
                     "(default: the largest shipped model)")
    gen.add_argument("--max-new-tokens", type=_non_negative_int, default=100, metavar="N")
    gen.add_argument("--temperature", type=_non_negative_float, default=0.8,
                     help="0 = greedy (default 0.8)")
    gen.add_argument("--top-k", type=positive_int, default=None, metavar="K")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--backend", choices=("reference", "cpu", "cuda"), default="cpu")
    gen.add_argument("--timing", action="store_true", help="print time to first token")
    gen.set_defaults(run=cmd_generate)

    bench = sub.add_parser("bench", help="check, then time, the kernels against NumPy")
    bench.add_argument("case", nargs="*", help="cases to run (default: all)")
    bench.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    bench.add_argument("--backend", choices=("cpu", "cuda"), default="cpu")
    bench.set_defaults(run=cmd_bench)

    add_train_parser(sub)
    add_baselines_parser(sub)
    add_models_parser(sub)
    add_quantize_parser(sub)
    add_scaling_parser(sub)
    add_grading_parsers(sub)

    course = sub.add_parser("course", help="open the course in JupyterLab")
    course.add_argument("--port", type=positive_int, default=8888)
    course.add_argument("--no-browser", action="store_true")
    course.set_defaults(run=cmd_course)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, FileNotFoundError, NotImplementedError) as error:
        print(f"minilm: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
