"""Config validation: every bad config is one clear line naming file and field."""

from __future__ import annotations

import textwrap

import pytest

from cnn_cli.spec.config import (
    apply_overrides,
    conv_output_size,
    load_config,
    parse_config,
    parse_set_option,
    same_padding,
)
from cnn_cli.errors import UserError
from cnn_cli.spec.tables import LENET5_C3_TABLE

BASE = """
name: t
input: {channels: 1, height: 28, width: 28}
blocks:
  - convs: [{filters: 6, kernel: 5, padding: 2}]
    pools: [{kind: max, size: 2}]
fc:
  - {units: 10}
"""


def parse(text: str):
    return parse_config(textwrap.dedent(text), "cfg.yaml")


def error_of(text: str) -> str:
    with pytest.raises(UserError) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message, "errors must be one line"
    assert message.startswith("cfg.yaml"), "errors must name the file"
    return message


def test_shipped_configs_shapes():
    lenet = load_config("lenet5")
    assert [l.out_shape for l in lenet.layers] == [
        (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120,), (84,), (10,)]
    classic = load_config("lenet5-classic")
    assert classic.input.shape == (1, 32, 32)
    assert [l.spec.name for l in classic.layers] == ["C1", "S2", "C3", "S4", "C5", "F6", "output"]
    assert [l.out_shape for l in classic.layers] == [
        (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1), (84,), (10,)]
    c3 = classic.layers[2].spec
    assert sum(map(sum, c3.connections)) == 6 * 3 + 9 * 4 + 6
    caffe = load_config("configs/caffe-lenet.yaml")
    assert caffe.layers[-2].in_shape == (800,)


def test_c3_table_matches_spec_columns():
    # SPEC §7: columns 0-5 read 3 maps, 6-14 read 4, 15 reads all 6.
    reads = [sum(row[k] == "X" for row in LENET5_C3_TABLE) for k in range(16)]
    assert reads == [3] * 6 + [4] * 9 + [6]


@pytest.mark.parametrize("n,f,s,expected", [
    (5, 3, 1, (1, 1)), (5, 2, 2, (0, 1)), (28, 5, 1, (2, 2)), (7, 4, 2, (1, 2)), (6, 1, 3, (0, 0)),
    (10, 3, 3, (1, 1)),
])
def test_same_padding_tensorflow_split(n, f, s, expected):
    before, after = same_padding(n, f, s)
    assert (before, after) == expected
    assert conv_output_size(n, f, s, before, after) == -(-n // s)


def test_padding_modes_resolve():
    cfg = parse(BASE.replace("padding: 2", "padding: same, stride: 2"))
    assert cfg.layers[0].out_shape == (6, 14, 14)
    cfg = parse(BASE.replace("padding: 2", "padding: [0, 1, 2, 3], kernel: [3, 4]").replace("kernel: 5, ", ""))
    assert cfg.layers[0].spec.padding == (0, 1, 2, 3)
    assert cfg.layers[0].out_shape == (6, 28 + 1 - 3 + 1, 28 + 5 - 4 + 1)


def test_defaults_filled_in_resolved():
    cfg = parse(BASE)
    assert cfg.resolved["train"]["optimizer"] == "adam"
    assert cfg.resolved["fc"][0]["activation"] == "identity"
    assert cfg.resolved["blocks"][0]["convs"][0]["activation"] == "relu"


@pytest.mark.parametrize("mutate,expected", [
    (lambda t: t.replace("filters: 6", "filterz: 6"), "did you mean 'filters'"),
    (lambda t: t.replace("filters: 6", "filters: six"), "expected an integer"),
    (lambda t: t.replace("filters: 6", "filters: 0"), "must be positive"),
    (lambda t: t.replace("filters: 6", "filters: true"), "expected an integer"),
    (lambda t: t.replace("kernel: 5", "kernel: 40"), "larger than its padded input"),
    (lambda t: t.replace("kind: max", "kind: maxx"), "did you mean 'max'"),
    (lambda t: t.replace("{units: 10}", "{units: 10, activation: relux}"), "did you mean 'relu'"),
    (lambda t: t.replace("fc:\n  - {units: 10}", "fc: []"), "at least one fully connected"),
    (lambda t: t.replace("- convs: [{filters: 6, kernel: 5, padding: 2}]", "- convs: []"), "at least one conv"),
    (lambda t: t.replace("padding: 2", "padding: full"), "expected valid, same"),
    (lambda t: t.replace("padding: 2", "padding: [1, 2]"), "[top, bottom, left, right]"),
    (lambda t: t.replace("name: t", "nmae: t"), "did you mean 'name'"),
    (lambda t: t + "train: {epochs: -1}\n", "train.epochs: must be positive"),
    (lambda t: t + "train: {optimizer: adamw}\n", "did you mean 'adam'"),
    (lambda t: t + "train: {lr: 0}\n", "train.lr: must be > 0"),
    (lambda t: t + "data: {val_split: 2}\n", "data.val_split"),
])
def test_bad_configs(mutate, expected):
    message = error_of(mutate(BASE))
    assert expected in message


def test_error_names_the_field_path():
    message = error_of(BASE.replace("filters: 6", "filterz: 6"))
    assert "blocks[0].convs[0].filterz" in message


def test_map_shrinks_to_nothing_names_layer_and_size():
    text = BASE.replace("height: 28, width: 28", "height: 6, width: 6").replace("padding: 2", "padding: 0")
    parse(text)  # conv → 2×2, then a 2×2 pool → 1×1 is still fine; one more pool is not
    text = text.replace("pools: [{kind: max, size: 2}]", "pools: [{kind: max, size: 2}, {kind: max, size: 2}]")
    message = error_of(text)
    assert "pool2" in message and "1×1" in message


def test_yaml_syntax_error_has_line_number():
    message = error_of("name: t\ninput: {channels: 1\nblocks: [\n")
    assert "line" in message and "YAML syntax error" in message


def test_connection_table_wrong_shape():
    text = BASE.replace("padding: 2}", "padding: 2, connections: ['XX', 'X.']}")
    assert "must be 1×6" in error_of(text)


def test_connection_table_unknown_name():
    text = BASE.replace("padding: 2}", "padding: 2, connections: lenet5-c4}")
    assert "did you mean 'lenet5-c3'" in error_of(text)


def test_rbf_must_be_last_with_84_inputs():
    text = BASE.replace("- {units: 10}", "- {units: 80}\n  - {kind: rbf, units: 10}")
    assert "84 units" in error_of(text)


def test_duplicate_names():
    text = BASE.replace("padding: 2}", "padding: 2, name: x}").replace("size: 2}", "size: 2, name: x}")
    assert "already used" in error_of(text)


def test_empty_file_and_non_mapping():
    assert "empty" in error_of("")
    assert "expected a mapping" in error_of("- 1\n- 2\n")


def test_unknown_config_name_lists_shipped():
    with pytest.raises(UserError, match="lenet5-classic"):
        load_config("no-such-net")


def test_set_overrides_existing_paths_and_revalidates(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    cfg = load_config(path, [parse_set_option("fc.0.units=12"), parse_set_option("train.momentum=0.95")])
    assert cfg.layers[-1].out_shape == (12,)
    assert cfg.train["momentum"] == 0.95
    with pytest.raises(UserError, match="does not exist"):
        load_config(path, [parse_set_option("train.momentun=0.9")])
    with pytest.raises(UserError, match="not an index"):
        load_config(path, [parse_set_option("fc.3.units=1")])
    with pytest.raises(UserError, match="train.batch_size: expected an integer"):
        load_config(path, [parse_set_option("train.batch_size=big")])


def test_apply_overrides_does_not_mutate_input():
    cfg = parse(BASE)
    before = repr(cfg.resolved)
    apply_overrides(cfg.resolved, [(["train", "lr"], 0.5)])
    assert repr(cfg.resolved) == before


def test_reserved_layer_names():
    message = error_of(BASE.replace("padding: 2}", "padding: 2, name: optimizer}"))
    assert "reserved" in message


def test_exponent_floats_without_a_dot():
    cfg = parse(BASE + "train: {lr: 1e-3, weight_decay: 5e-4}\n")
    assert cfg.train["lr"] == 0.001 and cfg.train["weight_decay"] == 0.0005
    assert parse_set_option("train.lr=2e-3")[1] == 0.002


def test_label_smoothing_with_the_map_loss_is_refused():
    with pytest.raises(UserError, match=r"train\.label_smoothing.*train\.loss: map"):
        load_config("lenet5-1998", [(["train", "label_smoothing"], 0.1)])
