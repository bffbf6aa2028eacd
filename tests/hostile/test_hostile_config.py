"""Hostile configs: YAML bombs, deep nesting, every field given a wrong type, configs too big to run."""

from __future__ import annotations

import pytest
import yaml

from hostile_kit import TINY, assert_nothing_new, cli, refuses, snapshot


def laughs(levels: int, width: int = 9) -> str:
    """The billion-laughs document: each level lists the previous one `width` times."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


BOMBS = {
    **{f"laughs-{n}": laughs(n) for n in (4, 6, 7, 9)},
    "laughs-wide": laughs(3, width=60),
    "aliases-many": "x: &x 1\ny: [" + ", ".join(["*x"] * 5000) + "]\n",
    "nested-lists-100": "[" * 100 + "]" * 100,
    "nested-lists-100000": "[" * 100_000,
    "nested-maps-1000": "".join(f"{' ' * i}k:\n" for i in range(1000)),
    "nested-flow-maps": "{a: " * 5000 + "1" + "}" * 5000,
    "huge-integer": "name: x\ninput: {channels: " + "9" * 5000 + ", height: 28, width: 28}\n",
    "huge-key": "x" * 200_000 + ": 1\n",
    "huge-text": "name: " + "n" * 200_000 + "\n",
    "binary": "\x00\x01\x02 garbage \x7f",
    "tabs": "input:\n\tchannels: 1\n",
    "merge-bomb": laughs(5) + "m: {<<: *a5}\n",
    "anchor-cycle-ish": "a: &a [*a]\n",
}


@pytest.mark.parametrize("name", sorted(BOMBS))
@pytest.mark.parametrize("command", ["params", "train"])
def test_yaml_bombs_are_one_line(tmp_path, data_dir, name, command):
    path = tmp_path / f"{name}.yaml"
    path.write_text(BOMBS[name], encoding="utf-8", errors="surrogateescape")
    run_dir = tmp_path / "run"
    args = [command, path] + (["--data-dir", data_dir, "--run-dir", run_dir, "--offline", "--quiet"]
                              if command == "train" else [])
    line = refuses(cli(*args))
    assert str(path) in line
    assert not run_dir.exists()


def test_config_too_large_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# padding\n" * 200_000)
    refuses(cli("params", path), "far larger than any config")


def test_config_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    refuses(cli("params", path), "not UTF-8")


def test_set_option_bomb(tmp_path, tiny_yaml):
    refuses(cli("params", tiny_yaml, "--set", "train.lr=" + "[" * 100_000))


# ---------------------------------------------------------------- every field, wrong


def _fields(node, path=()):
    """Every scalar field of the tiny config, as a key path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _fields(value, path + (key,))
    elif isinstance(node, list) and node and isinstance(node[0], dict):
        for i, value in enumerate(node):
            yield from _fields(value, path + (i,))
    else:
        yield path


BASE = yaml.safe_load(TINY)
FIELDS = [p for p in _fields(BASE) if p[-1] != "name"]  # any text is a valid name
# Values no field accepts (YAML text): wrong types, non-finite numbers, unreadable or oversized scalars.
BAD_VALUES = {
    "text": "abc",
    "list": "[1, 2, 3]",
    "mapping": "{a: 1}",
    "nan": ".nan",
    "inf": "-.inf",
    "long-text": "x" * 10_000,
    "giant-int": "9" * 5000,
}


def _with_field(path, value_text: str) -> str:
    config = yaml.safe_load(TINY)
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "__BAD__"
    return yaml.safe_dump(config, sort_keys=False).replace("__BAD__", value_text)


@pytest.mark.parametrize("value", sorted(BAD_VALUES))
@pytest.mark.parametrize("field", FIELDS, ids=[".".join(map(str, p)) for p in FIELDS])
def test_every_field_rejects_wrong_values(tmp_path, data_dir, field, value):
    path = tmp_path / "bad.yaml"
    path.write_text(_with_field(field, BAD_VALUES[value]))
    run_dir = tmp_path / "run"
    line = refuses(cli("train", path, "--data-dir", data_dir, "--run-dir", run_dir, "--offline", "--quiet"))
    assert str(path) in line
    assert not run_dir.exists()


# ---------------------------------------------------------------- valid, but cannot run


TOO_BIG = {
    "fc-units": ("fc", 0, "units", 1_000_000_000),
    "filters": ("blocks", 0, "convs", 0, "filters", 10_000_000),
    "padding": ("blocks", 0, "convs", 0, "padding", 100_000),
    "batch": ("train", "batch_size", 10 ** 12),
}


@pytest.mark.parametrize("case", sorted(TOO_BIG))
def test_configs_too_big_for_memory_refused_before_any_folder(tmp_path, data_dir, case):
    *path, value = TOO_BIG[case]
    config_path = tmp_path / "big.yaml"
    config_path.write_text(_with_field(tuple(path), str(value)))
    run_dir = tmp_path / "run"
    before = snapshot(tmp_path)
    line = refuses(cli("train", config_path, "--data-dir", data_dir, "--run-dir", run_dir, "--offline", "--quiet"))
    assert "needs about" in line and "available" in line
    assert not run_dir.exists()
    assert_nothing_new(before, tmp_path)


def test_huge_input_with_params_receptive_is_bounded(tiny_yaml):
    refuses(cli("params", tiny_yaml, "--input", "1x100000x100000", "--receptive"), "--input")


def test_huge_input_in_config_for_train(tmp_path, data_dir):
    path = tmp_path / "wide.yaml"
    path.write_text(TINY.replace("height: 28, width: 28", "height: 100000, width: 100000"))
    refuses(cli("train", path, "--data-dir", data_dir, "--run-dir", tmp_path / "run", "--offline"), "needs about")
    assert not (tmp_path / "run").exists()


def test_memory_limit_override_is_checked(tiny_yaml, data_dir, tmp_path):
    # CNN_MEMORY_LIMIT lets a shared machine cap what a run may take; a bad value is one line too.
    refuses(cli("train", tiny_yaml, "--data-dir", data_dir, "--run-dir", tmp_path / "r", "--offline",
                env={"CNN_MEMORY_LIMIT": "lots"}), "CNN_MEMORY_LIMIT")
    line = refuses(cli("train", tiny_yaml, "--data-dir", data_dir, "--run-dir", tmp_path / "r", "--offline",
                       env={"CNN_MEMORY_LIMIT": "1000"}), "needs about")
    assert "--batch-size" in line
    assert not (tmp_path / "r").exists()


def test_gradcheck_of_a_network_too_big(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(_with_field(("fc", 0, "units"), "1000000000000"))
    refuses(cli("gradcheck", path), "needs about")


def test_long_set_values_are_not_mistaken_for_paths(tiny_yaml, tmp_path, data_dir):
    # Refused later, by the memory cap: so the 300-character --set value passed the path checks.
    refuses(cli("train", tiny_yaml, "--set", "name=" + "n" * 300, "--run-dir", tmp_path / "r", "--data-dir",
                data_dir, "--offline", env={"CNN_MEMORY_LIMIT": "1000"}), "needs about")


def test_resume_from_a_checkpoint_whose_config_json_sections_are_not_mappings(tmp_path, trained, tiny_yaml,
                                                                              data_dir):
    import json

    import numpy as np

    from hostile_kit import read_arrays, tampered

    config = json.loads(str(read_arrays(trained / "last.npz")["config.json"]))
    config["train"] = ["x" * 10_000]
    bad = tampered(trained / "last.npz", tmp_path / "bad.npz", config__json=np.array(json.dumps(config)))
    line = refuses(cli("train", tiny_yaml, "--resume", bad, "--data-dir", data_dir, "--offline", "--quiet"))
    assert len(line) < 600
