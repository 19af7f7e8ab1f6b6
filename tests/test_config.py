# SPDX-License-Identifier: Apache-2.0
"""Config loading and validation: every bad field gets one clear error naming it."""

from __future__ import annotations

import pytest

from insitugen.config import (
    GeneratorConfig,
    RecombinationConfig,
    config_from_dict,
    default_config,
    load_config,
)
from insitugen.errors import ConfigError

DEFAULT_TOML = """\
# ResNet-18 3x3 layer, MLG (Bi, Bo, qb, qu, qv) = (2, 44, 3, 6, 3) on a 3-bit engine
out_channels = 128
in_channels = 128
kernel = 3
base_in = 2
base_out = 44
qb = 3
qu = 6
qv = 3
engine_bits = 3
lanes = 64
out_bits = 8
shift = 10
rounding = "half_even"
order = "oihw"
"""


def test_design_md_example_loads(tmp_path):
    p = tmp_path / "layer.toml"
    p.write_text(DEFAULT_TOML)
    cfg = load_config(p)
    assert cfg == default_config()
    assert cfg.code_shapes == {"B": (44, 2, 9), "U": (44, 128, 2), "V": (128, 44)}


def test_round_trip_toml(tmp_path):
    for cfg in (default_config(), RecombinationConfig(a_bits=7, a_slices=(2, 3, 2), x_bits=9,
                                                      x_encoding="twos", mode="serial")):
        p = tmp_path / "c.toml"
        p.write_text(cfg.to_toml())
        assert load_config(p) == cfg
        assert load_config(p).digest() == cfg.digest()


BAD_GENERATOR = {
    "out_channels": (0, "out_channels"),
    "in_channels": (5000, "in_channels"),
    "kernel": (12, "kernel"),
    "base_in": (-1, "base_in"),
    "base_out": ("44", "base_out"),
    "qb": (0, "qb"),
    "qu": (17, "qu"),
    "qv": (2.5, "qv"),
    "engine_bits": (0, "engine_bits"),
    "lanes": (0, "lanes"),
    "out_bits": (1, "out_bits"),
    "shift": (-2, "shift"),
    "rounding": ("nearest", "rounding"),
    "order": ("hwio", "order"),
    "recombination": ("magic", "recombination"),
    "layer": ("rnn", "layer"),
}


@pytest.mark.parametrize("field", sorted(BAD_GENERATOR), ids=sorted(BAD_GENERATOR))
def test_bad_generator_field_named(field):
    value, name = BAD_GENERATOR[field]
    with pytest.raises(ConfigError) as e:
        GeneratorConfig.from_dict({field: value})
    msg = str(e.value)
    assert f"'{name}'" in msg and "\n" not in msg


def test_bad_combinations():
    with pytest.raises(ConfigError, match="'kernel'.*linear"):
        GeneratorConfig(layer="linear", kernel=3)
    with pytest.raises(ConfigError, match="'shift'.*out_bits"):
        GeneratorConfig(out_bits=0, shift=3)
    with pytest.raises(ConfigError, match="at most 62 bits"):
        GeneratorConfig(qb=16, qu=16, qv=16, base_in=64, base_out=4096, out_channels=4096)


BAD_RECOMBINATION = {
    "a_slices_sum": ({"a_bits": 6, "a_slices": [3, 2]}, "a_slices"),
    "a_slice_too_wide": ({"a_bits": 6, "a_slices": [4, 2], "engine_bits": 3}, "a_slices"),
    "x_encoding": ({"x_encoding": "sign-magnitude"}, "x_encoding"),
    "mode": ({"mode": "systolic"}, "mode"),
    "partial_bits_narrow": ({"partial_bits": 3}, "partial_bits"),
    "pipeline_deep": ({"pipeline_stages": 4, "a_bits": 3, "x_bits": 3}, "pipeline_stages"),
    "terms": ({"terms": 0}, "terms"),
    "unknown": ({"lanes": 4}, "lanes"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECOMBINATION), ids=sorted(BAD_RECOMBINATION))
def test_bad_recombination_field_named(case):
    data, name = BAD_RECOMBINATION[case]
    with pytest.raises(ConfigError) as e:
        config_from_dict({"block": "recombination", **data})
    assert f"'{name}'" in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    p = tmp_path / "bad.toml"
    p.write_text("out_channels = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    p.write_text('block = "fpga"\n')
    with pytest.raises(ConfigError, match="'block'"):
        load_config(p)


def test_degenerate_shapes():
    assert GeneratorConfig(base_in=0).code_shapes == {"B": (44, 128, 9), "V": (128, 44)}
    assert GeneratorConfig(base_out=0).code_shapes == {"B": (128, 2, 9), "U": (128, 128, 2)}
    both = GeneratorConfig(base_in=0, base_out=0)
    assert both.code_shapes == {"B": (128, 128, 9)} and both.macs_per_weight == 0
    assert GeneratorConfig(layer="linear", kernel=1, in_channels=10).weight_shape == (128, 10)


def test_default_engine_slicing():
    cfg = default_config()
    assert cfg.u_operand.widths == (3, 3) and cfg.b_operand.widths == (3,)
    assert cfg.w1_operand.encoding == "twos" and cfg.w1_operand.widths == (3, 3, 3, 2)
    assert cfg.macs_per_weight == 44 * (2 * 2 * 1 + 1 * 4)
    assert cfg.code_memory_bits == 44 * 2 * 9 * 3 + 44 * 128 * 2 * 6 + 128 * 44 * 3
