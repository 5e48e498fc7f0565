"""The `memwm` command line: one subcommand per job, each a function whose typed arguments tyro reads.

A subcommand is added by writing its function in agents/commands/ and naming it in `_commands()`.
A command raises ValueError (or FileNotFoundError) for input it cannot use; `main` prints that as one
line and exits with status 2, as it does for a flag it cannot parse.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import io
import os
import re
import sys
from collections.abc import Callable

import tyro

__version__ = "0.1.0"


def version(check: bool = False) -> None:
    """Print memwm's version and the versions of the libraries it runs on.

    Args:
        check: also run the fused triton kernels beside the torch backend on every visible CUDA device
            (on the CPU only under TRITON_INTERPRET=1) and print the largest errors.
    """
    import torch

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:  # triton is optional on machines without a GPU
        triton_version = "not installed"
    print(f"memwm {__version__} (torch {torch.__version__}, triton {triton_version}, python {sys.version.split()[0]})")
    if check:
        _check_kernels(triton_version != "not installed")


def _check_kernels(have_triton: bool) -> None:
    """`memwm version --check`: the kernel check of every visible device, one line each, exit 1 if one fails."""
    import os

    import torch

    from kernels import check

    devices = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if not devices:
        print("no CUDA device visible: the fused kernels run only on CUDA", end="")
        if os.environ.get("TRITON_INTERPRET") != "1":
            print(" (TRITON_INTERPRET=1 memwm version --check runs them on the CPU under triton's interpreter)")
            return
        print("; running them on the CPU under TRITON_INTERPRET=1")
        devices = [torch.device("cpu")]
    if not have_triton:
        print("triton is not installed: scans on CUDA use the torch backend; nothing to check")
        return
    failed = False
    for device in devices:
        report = check.self_check(device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "triton interpreter"
        print(f"{device} ({name}): {'ok' if report['ok'] else 'MISMATCH'}, {report['summary']}")
        for part, error in report["errors"].items():
            print(f"    {part:<40} {error:.1e}")
        failed |= not report["ok"]
    if failed:
        raise SystemExit(1)


def _commands() -> dict[str, Callable[..., object]]:
    import envs
    from agents.commands.collect import collect
    from agents.commands.compare import compare
    from agents.commands.eval import eval_command
    from agents.commands.imagine import imagine
    from agents.commands.inspect import inspect
    from agents.commands.train import train_command

    return {
        "version": version,
        "compare": compare,
        "imagine": imagine,
        "envs": envs.cli_envs,
        "collect": collect,
        "train": train_command,
        "eval": eval_command,
        "inspect": inspect,
    }


def _deferred(command: Callable[..., object]) -> Callable[..., Callable[[], object]]:
    """`command` with the same signature for tyro, but returning the call instead of making it (parse first, run after)."""

    @functools.wraps(command)
    def parse_only(*args, **kwargs):
        return functools.partial(command, *args, **kwargs)

    return parse_only


def _flags(commands: dict[str, Callable[..., object]], sub: str | None) -> list[str]:
    """The flags tyro accepts for subcommand `sub` (read from its --help), or the subcommand names."""
    if sub is None:
        return [name for name in commands]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), contextlib.suppress(SystemExit):
        tyro.extras.subcommand_cli_from_dict(commands, args=[sub, "--help"], prog="memwm")
    return sorted(set(re.findall(r"--[a-z][a-z0-9._-]*", out.getvalue())) - {"--help"})


def one_line_error(box: str, prog: str, valid: list[str]) -> str:
    """tyro's boxed parse error as one line, naming the closest valid flag (or subcommand) for each unknown one.

    box: what tyro printed, e.g. "╭─ Unrecognized options ─╮ │ Unrecognized options: --stepz, 4 │ ...";
    valid: the flags (or subcommand names) that would have been accepted.
    """
    lines = [re.sub(r"^[\s│╭╰─]+|[\s│╮╯─]+$", "", line) for line in box.splitlines()]  # a unicode or an ASCII box
    is_rule = lambda line: not line.strip("- ") or set(line.strip()) <= set("─-")  # noqa: E731
    part = []  # the message: the first run of lines between rules after the title (a unicode box has no rule under it)
    for line in lines[1:]:
        if is_rule(line):
            if part:
                break
            continue
        part.append(line.strip())
    lines = [line for line in lines if not is_rule(line)][1:]
    message = lines[0] if lines else "could not parse the arguments"
    if message.endswith(":") and len(lines) > 1:  # "Missing from memwm eval:" then "--run STR"
        message = f"{message} {lines[1]}"
    elif len(part) > 1:  # one sentence wrapped over several lines: "... Expected one of" / "('a', 'b')."
        message = " ".join(part)
    message = re.sub(r"^Error parsing [\w.-]*__tyro[\w.-]*: ", "", message)  # a config's own check, as it said it
    unknown = re.match(r"Unrecognized options: (.*)", message)
    if unknown:
        names = [a.strip() for a in unknown.group(1).split(",")]
        flags = [a for a in names if a.startswith("-")] or names[:1]
        hints = []
        for flag in flags:
            close = difflib.get_close_matches(flag.split("=")[0].replace("_", "-"), valid, n=1, cutoff=0.75)
            hints.append(f"{flag} (closest: {close[0]})" if close else flag)
        what = "option" if flags[0].startswith("-") else "command"
        message = f"unknown {what}{'s' if len(hints) > 1 else ''} {', '.join(hints)}"
    return f"{prog}: error: {message.rstrip('.')}; see {prog} --help"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `memwm` console script.

    tyro parses the arguments with its error output captured, so that a bad flag is one line
    (`memwm train: error: unknown option --stepz (closest: --steps); see memwm train --help`, exit 2);
    the chosen command then runs with the terminal's stderr (its progress bar and messages).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    commands = {name: _deferred(command) for name, command in _commands().items()}
    nproc, args = _take_nproc(args)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            call = tyro.extras.subcommand_cli_from_dict(commands, args=args, prog="memwm", description=__doc__.splitlines()[0])
    except SystemExit as exit_info:
        if exit_info.code in (0, None):  # --help
            sys.stderr.write(captured.getvalue())
            raise
        sub = next((a for a in args if a in commands), None)
        print(one_line_error(captured.getvalue(), f"memwm {sub}" if sub else "memwm", _flags(commands, sub)), file=sys.stderr)
        raise SystemExit(2) from None
    sys.stderr.write(captured.getvalue())
    sub = next((a for a in args if a in commands), "")
    if sub == "train":  # typed flags win over task, preset and saved values: say which were typed
        from agents.config import typed_fields

        call = functools.partial(call, typed=typed_fields(args[args.index(sub) + 1 :]))
    if nproc > 1:  # parsed here once; the workers run the same arguments
        from agents.launch import launch

        raise SystemExit(launch(nproc, args))
    try:
        call()
    except (ValueError, FileNotFoundError) as e:  # the user's input: what was wrong, in one line
        print(f"memwm {sub}: error: {_first_line(e)}", file=sys.stderr)
        raise SystemExit(2) from None
    except (FloatingPointError, OSError, RuntimeError) as e:  # a run that could not go on (a NaN loss, a full disk)
        print(f"memwm {sub}: error: {_first_line(e)}", file=sys.stderr)
        raise SystemExit(1) from None


def _take_nproc(args: list[str]) -> tuple[int, list[str]]:
    """`--nproc-per-node N` of `memwm train` and `memwm compare` taken out of `args`: (N, 1 without it; the rest).

    N > 1 starts N processes of the same command under torch's elastic launcher (agents/launch.py).
    """
    sub = next((a for a in args if not a.startswith("-")), None)
    for i, arg in enumerate(args):
        if arg == "--nproc-per-node" or arg.startswith("--nproc-per-node="):
            value = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            rest = args[:i] + args[i + (1 if "=" in arg else 2) :]
            break
    else:
        return 1, args
    prog = f"memwm {sub}" if sub else "memwm"
    if sub not in ("train", "compare"):
        _exit_one_line(f"{prog}: error: --nproc-per-node applies to memwm train and memwm compare; see {prog} --help")
    if not value.isdigit() or int(value) < 1:
        _exit_one_line(f"{prog}: error: --nproc-per-node takes a number of processes >= 1, got {value!r}")
    if int(value) > 1 and "WORLD_SIZE" in os.environ:
        _exit_one_line(f"{prog}: error: --nproc-per-node starts its own processes; under torchrun leave it out")
    return int(value), rest


def _exit_one_line(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    main()
