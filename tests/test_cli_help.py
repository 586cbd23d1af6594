"""Every option of every `ecd` command (and of the sub-commands of `cascade`, `retrieval`, `vq`) has help text."""
import argparse
from ecd import cli


def _walk(p: argparse.ArgumentParser, path: str):
    yield path, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield from _walk(sp, f"{path} {name}")


def all_parsers() -> dict[str, argparse.ArgumentParser]:
    "Every `ecd` parser: `ecd.cli.build_parser(name)` builds the real parser of each command of `COMMANDS`."
    out = {}
    for name in cli.COMMANDS:
        for path, p in _walk(cli.build_parser(name), "ecd"):
            if path == "ecd" or path.split()[1] == name:
                out[path] = p
    return out


def test_every_option_has_help():
    parsers = all_parsers()
    assert {"ecd cascade train", "ecd cascade test", "ecd vq sweep", "ecd e2e-small", "ecd compress"} <= set(parsers)
    assert all(parsers[f"ecd {n}"].add_help for n in cli.COMMANDS), "a command whose real parser was not built"
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
    monkeypatch.setenv("ECD_RESULTS_DIR", str(tmp_path))
    assert cli.main(["plot", "--run-id", "quickstart"]) == 2
    err = capsys.readouterr().err
    assert "ecd quickstart" in err and "ecd prepare --run-id quickstart" in err and "make_plots(" not in err
