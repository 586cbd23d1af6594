"""Every option of every `ecd` command (and of the sub-commands of `cascade`, `retrieval`, `vq`) has help text."""
import argparse
import importlib

import pytest

from ecd import cli


class _Parser(Exception):
    def __init__(self, parser):
        self.parser = parser


def _walk(p: argparse.ArgumentParser, path: str):
    yield path, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield from _walk(sp, f"{path} {name}")


def all_parsers(monkeypatch) -> dict[str, argparse.ArgumentParser]:
    """`ecd.cli.build_parser()` and each external command's own parser, caught when its `*_main([])` parses
    (only parsers whose prog starts with `ecd`; other libraries' parsers parse as usual)."""
    orig = argparse.ArgumentParser.parse_known_args

    def grab(self, args=None, namespace=None):
        if self.prog.startswith("ecd"):
            raise _Parser(self)
        return orig(self, args, namespace)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", grab)
    out = dict(_walk(cli.build_parser(), "ecd"))
    for name, (module, fn, _) in cli.EXTERNAL_COMMANDS.items():
        with pytest.raises(_Parser) as e:
            getattr(importlib.import_module(module), fn)([])
        out.update(_walk(e.value.parser, f"ecd {name}"))     # the command's real parser replaces the stub
    return out


def test_every_option_has_help(monkeypatch):
    parsers = all_parsers(monkeypatch)
    assert {"ecd cascade train", "ecd cascade test", "ecd vq sweep", "ecd e2e-small", "ecd compress"} <= set(parsers)
    missing, metavars, undescribed = [], [], []
    for path, p in parsers.items():
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not (a.help or "").strip() or a.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(a.option_strings) or a.dest}")
            if a.option_strings and a.nargs != 0:
                shown = p._get_formatter()._format_args(a, a.dest.upper())
                if any(ch in shown for ch in ":."):
                    metavars.append(f"{path} {a.option_strings[0]} {shown}")
        if path.count(" ") >= 1 and p.add_help and not (p.description or "").strip():
            undescribed.append(path)
    assert not missing, f"options without help: {missing}"
    assert not metavars, f"metavars that show config keys: {metavars}"
    assert not undescribed, f"commands without a description: {undescribed}"


def test_plot_missing_run_says_what_to_run(tmp_path, monkeypatch, capsys):
    from ecd.plots import plot_main
    monkeypatch.setenv("ECD_RESULTS_DIR", str(tmp_path))
    assert plot_main(["--run-id", "quickstart"]) == 2
    err = capsys.readouterr().err
    assert "ecd quickstart" in err and "ecd prepare --run-id quickstart" in err and "make_plots(" not in err
