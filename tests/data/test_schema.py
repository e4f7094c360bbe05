"""Feature declarations: what each kind accepts, how values are stored and decoded, and the errors."""

import numpy as np
import pyarrow as pa
import pytest

from taclab.data.schema import EPISODE_FEATURES, Feature, Schema, tile, untile

RNG = np.random.default_rng(0)
FEATURES = [
    (Feature("rgb", "uint8", (6, 5, 3), "image"), RNG.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)),
    (Feature("gray", "uint8", (6, 5, 1), "image"), RNG.integers(0, 256, (4, 6, 5, 1), dtype=np.uint8)),
    (Feature("seq", "uint8", (4, 2, 3, 5, 3), "image_sequence"), RNG.integers(0, 256, (4, 4, 2, 3, 5, 3), np.uint8)),
    (Feature("frames", "uint8", (3, 4, 4, 4), "image_sequence"), RNG.integers(0, 256, (4, 3, 4, 4, 4), np.uint8)),
    (Feature("state", "float32", (7,), "vector"), RNG.normal(size=(4, 7)).astype(np.float32)),
    (Feature("grid", "int16", (2, 3), "vector"), RNG.integers(-99, 99, (4, 2, 3)).astype(np.int16)),
    (Feature("reward", "float64", (), "scalar"), RNG.normal(size=4)),
    (Feature("done", "bool", (), "scalar"), np.array([True, False, False, True])),
    (Feature("cloud", "float32", (5, 3), "point_cloud"), RNG.normal(size=(4, 5, 3)).astype(np.float32)),
    (Feature("text", "string", (), "text"), np.array(["a", "bb", "peg ü", ""])),
]


@pytest.mark.parametrize("feature, values", FEATURES, ids=[f.name for f, _ in FEATURES])
def test_values_round_trip_through_arrow(feature, values):
    arr = feature.to_arrow(list(values))
    assert arr.type.equals(feature.arrow_type()) or str(arr.type) == str(feature.arrow_type())
    out = feature.decode(arr)
    assert out.dtype == values.dtype and out.shape == values.shape
    np.testing.assert_array_equal(out, values)
    assert Feature.from_json(feature.to_json()) == feature


def test_point_clouds_of_varying_size():
    f = Feature("cloud", "float32", (None, 3), "point_cloud")
    clouds = [RNG.normal(size=(n, 3)).astype(np.float32) for n in (5, 0, 2)]
    out = f.decode(f.to_arrow(clouds))
    assert out.dtype == object and [c.shape for c in out] == [(5, 3), (0, 3), (2, 3)]
    for a, b in zip(out, clouds, strict=True):
        np.testing.assert_array_equal(a, b)


def test_tiles_frames_down_and_the_last_grid_dimension_across():
    seq = RNG.integers(0, 256, (4, 2, 3, 5, 3), dtype=np.uint8)
    img = tile(seq)
    assert img.shape == (12, 10, 3)
    np.testing.assert_array_equal(img[3:6, 5:10], seq[1, 1])  # frame 1, pad 1
    np.testing.assert_array_equal(untile(img, seq.shape), seq)


def test_hugging_face_features_store_the_same_arrow_types():
    from taclab.data.schema import same_arrow_type

    schema = Schema("sample", tuple(f for f, _ in FEATURES))
    hf = schema.hf_features().arrow_schema
    for f in schema.features:
        assert same_arrow_type(hf.field(f.name).type, f.arrow_type()), f.name
    assert b"huggingface" in schema.arrow_schema().metadata


@pytest.mark.parametrize(
    "args, message",
    [
        (("x", "float32", (4, 4, 3), "image"), "an image has dtype uint8"),
        (("x", "uint8", (4, 4), "image"), r"shape \(H, W, C\)"),
        (("x", "uint8", (4, 4, 2), "image"), "1, 3 or 4 channels"),
        (("x", "uint8", (4, 4, 3), "image_sequence"), r"\(\*grid, H, W, C\)"),
        (("x", "float32", (3,), "tensor"), "unknown kind 'tensor'; allowed: image, image_sequence, vector"),
        (("x", "complex64", (3,), "vector"), "unknown dtype 'complex64'; allowed: bool, int8"),
        (("x", "float32", (0,), "vector"), "positive sizes"),
        (("x", "float32", (3,), "scalar"), "a scalar has shape ()"),
        (("x", "int32", (None, 3), "point_cloud"), "a point cloud has one of the dtypes"),
        (("x", "float32", (3,), "point_cloud"), r"shape \(N, D\)"),
        (("x", "int32", (), "text"), "a text has dtype 'string'"),
        (("1x", "float32", (3,), "vector"), "feature name '1x' is not allowed"),
    ],
)
def test_bad_declarations_say_what_is_allowed(args, message):
    with pytest.raises(ValueError, match=message):
        Feature(*args)


def test_bad_values_name_the_feature():
    with pytest.raises(ValueError, match=r"feature 'state' expects shape \(7,\), got \(6,\)"):
        FEATURES[4][0].to_arrow([np.zeros(6)])
    with pytest.raises(ValueError, match="feature 'rgb' expects uint8 pixels, got float64"):
        FEATURES[0][0].to_arrow([np.zeros((6, 5, 3))])
    with pytest.raises(ValueError, match="feature 'text' expects a string, got int"):
        FEATURES[-1][0].to_arrow([3])
    with pytest.raises(ValueError, match="feature 'grid' expects int16 values, got float64"):
        FEATURES[5][0].to_arrow([np.zeros((2, 3))])
    with pytest.raises(ValueError, match="feature 'grid': a value does not fit in int16"):
        FEATURES[5][0].to_arrow([np.full((2, 3), 40000)])


def test_a_broken_image_names_the_key_and_the_row():
    f = FEATURES[0][0]
    good = f.to_arrow(list(FEATURES[0][1][:2]))
    data = bytearray(good[1]["bytes"].as_py())
    data[40:60] = b"\x00" * 20
    broken = pa.array([good[0].as_py(), {"bytes": bytes(data), "path": None}], type=f.arrow_type())
    with pytest.raises(ValueError, match=r"shard x, key 'rgb', row 11: image data does not decode"):
        f.decode(broken, "shard x, ", row0=10)


def test_episode_layout_requires_its_columns():
    state = Feature("state", "float32", (3,), "vector")
    with pytest.raises(ValueError, match="the episode layout requires the column 'episode_index'"):
        Schema("episode", (state,))
    s = Schema("episode", (state, *EPISODE_FEATURES))
    assert s.names[-3:] == ["episode_index", "frame_index", "timestamp"]
    with pytest.raises(ValueError, match="unknown layout 'frames'; allowed: sample, episode"):
        Schema("frames", (state,))
    with pytest.raises(ValueError, match=r"declared twice"):
        Schema("sample", (state, state))
    other = Schema("sample", (Feature("state", "float32", (4,), "vector"),))
    assert Schema("sample", (state,)).diff(other) == "'state' vector float32 [3] -> vector float32 [4]"
