import pytest

from vizgen import registry
from vizgen.registry import Widget


def test_names_are_unique_and_kebab_case():
    names = [w.name for w in registry.WIDGETS]
    assert len(names) == len(set(names))
    for widget in registry.WIDGETS:
        assert registry.get(widget.name) is widget


def test_unknown_widget_names_the_known_ones():
    with pytest.raises(registry.UnknownWidget) as info:
        registry.get("no-such-widget")
    message = str(info.value)
    assert "no-such-widget" in message and "online-softmax" in message


@pytest.mark.parametrize("name, part", [("Bad_Name", 1), ("fine-name", 5), ("-x", 1)])
def test_invalid_widget_declarations_fail_fast(name, part):
    with pytest.raises(ValueError):
        Widget(name=name, part=part, title="t", module="m")
