"""The `cnndsl` command: a thin click group over the compiler.

Only this module prints and exits. `compile`, `check`, `summary` and `list` never
import torch. No input makes the command print a traceback: the compiler's errors are
rendered as diagnostics, and anything else is reported as an internal error (set
CNNDSL_DEBUG=1 to see its traceback).
"""

from __future__ import annotations

import os
import sys

import click

from .diagnostics import CompileError
from .errors import CnndslError
from .options import NETWORK_OPTION, SET_OPTION, SPEC_ARGUMENT
from .settings import parse_settings


def _text(diagnostics: list, sources: dict) -> str:
    """Diagnostics for the terminal: coloured, the source line highlighted, where stderr is one."""
    from .report import render
    from .tools import line_highlighter

    color = sys.stderr.isatty()
    return render(diagnostics, sources, color=color, highlight=line_highlighter() if color else None)


def _report(exc: CompileError, sources: dict, fmt: str = "text") -> None:
    from .report import to_json

    # the files it imports: a diagnostic inside one shows that file's line
    sources = {**getattr(getattr(exc, "context", None), "sources", {}), **sources}
    if fmt == "json":
        click.echo(to_json(exc.diagnostics))
    else:
        click.echo(_text(exc.diagnostics, sources), err=True, nl=False)


def _report_error(exc: CnndslError) -> None:
    where = f"{exc.span}: " if exc.span else ""
    click.echo(f"error: {where}{exc.message}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)


def _sources_of(spec: str) -> dict:
    from .compiler import load

    try:
        source = load(spec)
    except CompileError:
        return {}
    return {source.path: source}


class LazyGroup(click.Group):
    """Commands beyond the compiler's own live in their own modules, imported only when
    one of them runs (or help lists them), so that `check` pays for none of them."""

    LAZY = {
        "train": ("cnndsl.train.cli", "train_command"),
        "eval": ("cnndsl.train.cli", "eval_command"),
        "predict": ("cnndsl.train.cli", "predict_command"),
        "draw": ("cnndsl.pictures.draw", "draw_command"),
        "viz": ("cnndsl.pictures.viz", "viz_group"),
        "serve": ("cnndsl.pictures.serve", "serve_command"),
        "fmt": ("cnndsl.tools.fmt", "fmt_command"),
        "lsp": ("cnndsl.tools.lsp", "lsp_command"),
        "export": ("cnndsl.tools.export", "export_command"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.LAZY))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY:
            import importlib

            module, attribute = self.LAZY[name]
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        from .extras import require

        require(name)  # a command whose extra is missing says which to install, before parsing
        return name, command, rest

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:  # an optional module imported deeper in the command
            from .extras import from_import_error

            missing = from_import_error(exc, ctx.invoked_subcommand)
            if missing is None:
                raise
            raise missing from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cnndsl", message="cnndsl %(version)s")
def cli() -> None:
    """Describe a CNN in the notes' notation, check its shapes, generate PyTorch."""


@cli.command("compile")
@SPEC_ARGUMENT
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the module here (atomically; '-': standard output).")
@SET_OPTION
@NETWORK_OPTION
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
def compile_command(spec: str, output: str | None, settings, network, strict: bool) -> None:
    """Compile SPEC (a .cnn file or a built-in's name) to a PyTorch module."""
    from .api import compile_spec
    from .atomic import STDOUT, write_atomic
    from .compiler import generate
    from .source import display_name

    compiled = compile_spec(spec, strict=strict, network=network, **parse_settings(settings))
    if compiled.warnings:
        click.echo(_text(compiled.warnings, {compiled.source.path: compiled.source}), err=True, nl=False)
    code = generate(compiled)
    if output and output != STDOUT:
        write_atomic(output, code)
        click.echo(f"wrote {display_name(output)} ({compiled.network.name}, "
                   f"{compiled.network.body.stats.params:,} parameters)", err=True)
    else:
        click.echo(code, nl=False)


@cli.command("check")
@SPEC_ARGUMENT
@SET_OPTION
@NETWORK_OPTION
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check_command(spec: str, settings, network, strict: bool, fmt: str) -> None:
    """Check SPEC: diagnostics only. Exit 0 when it compiles, 1 on errors."""
    from .api import compile_spec

    try:
        compiled = compile_spec(spec, strict=strict, network=network, **parse_settings(settings))
    except CompileError as exc:
        _report(exc, _sources_of(spec), fmt)
        sys.exit(1)
    if fmt == "json":
        from .report import to_json

        click.echo(to_json(compiled.warnings))
        return
    if compiled.warnings:
        click.echo(_text(compiled.warnings, {compiled.source.path: compiled.source}), err=True, nl=False)
    net = compiled.network
    from .passes.shapes import fmt_shape

    outputs = ", ".join(f"{key} {fmt_shape(shape)}" for key, shape in net.output_shapes.items()) \
        if net.outputs else fmt_shape(net.body.stats.out_shape)
    click.echo(f"{compiled.source.path}: network {net.name} is well-formed: {fmt_shape(net.input)} -> "
               f"{outputs}, {net.body.stats.params:,} parameters"
               + (f", {len(compiled.warnings)} warning(s)" if compiled.warnings else ""))


@cli.command("summary")
@SPEC_ARGUMENT
@SET_OPTION
@NETWORK_OPTION
@click.option("--style", type=click.Choice(["table", "cs231n"]), default="table", show_default=True,
              help="table: one row per layer; cs231n: the lecture notes' listings.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="table: text (in --style); json, csv: every row and column, for programs.")
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Fold blocks and named groups deeper than N into one row each (as torchinfo's depth).")
@click.option("--columns", default="", metavar="NAME,...",
              help="More table columns: input, kernel, trainable, frozen.")
def summary_command(spec: str, settings, network, style: str, fmt: str, depth, columns: str) -> None:
    """Per-layer shapes, parameters, activations, MACs and receptive fields of SPEC."""
    from .api import summarize
    from .errors import UsageError

    if style == "cs231n" and (fmt != "table" or depth is not None or columns):
        raise UsageError("--style cs231n is the notes' text listing; it takes no --format, --depth or --columns",
                         "leave out --style for those")
    wanted = tuple(c.strip() for c in columns.split(",") if c.strip())
    summary = summarize(spec, style=style, network=network, **parse_settings(settings))
    if fmt == "json":
        click.echo(summary.with_view(depth).to_json(), nl=False)
    elif fmt == "csv":
        click.echo(summary.with_view(depth).to_csv(), nl=False)
    else:
        click.echo(summary.with_view(depth, wanted) if style == "table" else summary, nl=False)


@cli.command("list")
@click.option("--layers", is_flag=True, help="List the layer kinds and their arguments instead.")
def list_command(layers: bool) -> None:
    """The built-in networks, one per line, name first; a family's variants indented under it."""
    if layers:
        from .layers import RULES, REQUIRED

        for kind, rule in RULES.items():
            if kind != rule.kind:
                continue
            args = ", ".join(a.name if a.default is REQUIRED else f"{a.name}={_show(a.default)}" for a in rule.args)
            click.echo(f"{kind}({args})  {rule.doc}")
        return
    from .resources import families, specs_dir

    if not families():
        raise CnndslError(f"no built-in specs in {specs_dir()}: this cnndsl is installed without its data files",
                          "reinstall it from its wheel (pip install --force-reinstall cnndsl)")
    for entries in families().values():  # a family's file, then its variants, indented
        for entry in entries:
            name = entry.name if entry.name == entry.family else f"  {entry.name}"
            click.echo(f"{name:<18} {entry.about}".rstrip())


def _show(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the group and turns every failure into a message, never a traceback."""
    try:
        cli.main(args=argv, prog_name="cnndsl", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except CompileError as exc:
        sources = {}
        for d in exc.diagnostics:
            if d.span.file not in sources and os.path.isfile(d.span.file):
                sources.update(_sources_of(d.span.file))
            elif d.span.file.startswith("specs/"):
                sources.update(_sources_of(os.path.splitext(os.path.basename(d.span.file))[0]))
        _report(exc, sources)
        sys.exit(1)
    except CnndslError as exc:
        _report_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except OSError as exc:
        click.echo(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), err=True)
        sys.exit(1)
    except Exception as exc:  # the last line of defence: a bug, reported as one
        if os.environ.get("CNNDSL_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc}\n"
                   "This is a bug in cnndsl; rerun with CNNDSL_DEBUG=1 for the traceback and report it.",
                   err=True)
        sys.exit(70)
    sys.exit(0)
