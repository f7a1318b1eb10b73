"""The generator: caching, determinism, and failures that keep the last good output."""

import importlib

import pytest

from vizgen import build, cli, paths


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "BUILD", tmp_path)
    monkeypatch.setattr(paths, "WIDGET_OUT", tmp_path / "widgets")
    monkeypatch.setattr(paths, "MANIFEST", tmp_path / "manifest.json")
    return tmp_path


def outputs(name="online-softmax"):
    return {path.name: path.read_bytes() for path in (build.html_path(name), build.trace_path(name), build.fallback_path(name))}


@pytest.mark.slow
def test_unchanged_widget_is_neither_traced_nor_rendered_again(out):
    first = build.build(["online-softmax"])
    assert first.ok and first.traced == ["online-softmax"] and first.rendered == ["online-softmax"]
    again = build.build(["online-softmax"])
    assert again.ok and again.traced == [] and again.rendered == [] and again.fresh == ["online-softmax"]
    assert not build.stale(build.registry.get("online-softmax"))


@pytest.mark.slow
def test_output_is_byte_identical_across_forced_rebuilds(out):
    build.build(["online-softmax"], force=True)
    first = outputs()
    build.build(["online-softmax"], force=True)
    assert outputs() == first


@pytest.mark.slow
def test_a_render_only_change_renders_without_tracing(out):
    build.build(["online-softmax"])
    manifest = build.load_manifest()
    manifest["online-softmax"]["render_key"] = "outdated"
    paths.MANIFEST.write_text(__import__("json").dumps(manifest))
    report = build.build(["online-softmax"])
    assert report.traced == [] and report.rendered == ["online-softmax"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "broken, expected",
    [
        (lambda: 1 / 0, "widget online-softmax: trace failed at test_build.py"),
        (lambda: ["not", "a", "dict"], "widget online-softmax: trace() must return a dict"),
        (lambda: {"data": {1, 2}, "facts": {}}, "widget online-softmax: trace is not plain data"),
    ],
)
def test_a_failing_trace_is_one_line_and_keeps_the_last_good_output(out, monkeypatch, capsys, broken, expected):
    build.build(["online-softmax"])
    good = outputs()
    module = importlib.import_module("vizgen.widgets.online_softmax")
    monkeypatch.setattr(module, "trace", broken)
    assert cli.main(["build", "--force", "online-softmax"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("vizgen: " + expected), err
    assert outputs() == good


def test_unknown_widget_fails_before_anything_runs(out, capsys):
    assert cli.main(["build", "no-such-widget"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown widget 'no-such-widget'" in err
    assert not paths.MANIFEST.exists()


def test_list_names_every_widget_and_its_state(out, capsys):
    assert cli.main(["list"]) == 0
    assert "online-softmax" in capsys.readouterr().out
