"""Declared features of a taclab dataset and its layout.

Every column of a dataset is declared as a :class:`Feature`: a name, a dtype, a shape and a kind. The kind says
how a value is stored and decoded:

=================  ============================================  ===============================================
kind               a value is                                    stored as
=================  ============================================  ===============================================
``image``          uint8 array (H, W, C), C in 1, 3, 4           one lossless PNG
``image_sequence`` uint8 array (*grid, H, W, C)                  one PNG of the tiles: the last grid dimension
                                                                 runs along the columns, the others (row-major)
                                                                 along the rows; (4, 2, H, W, 3) is (4H, 2W, 3)
``vector``         numeric array of a fixed shape, e.g. (3,)     nested fixed-size lists
``scalar``         one number or bool, shape ()                  a primitive column
``point_cloud``    float array (N, D); N may be ``None``         a list of fixed-size lists of D values
``text``           a string, shape ()                            a string column
=================  ============================================  ===============================================

A :class:`Schema` is the declaration of a whole dataset: its layout and its features. ``sample`` is one row
per sample (an attempt, a question); ``episode`` is one row per frame of a trajectory and requires the columns
``episode_index``, ``frame_index`` and ``timestamp`` (the LeRobot v3 convention), declared by
:data:`EPISODE_FEATURES`.

Image columns use the struct of Hugging Face ``datasets.Image`` (``{bytes, path}``), and shards carry the
matching ``datasets`` metadata, so plain ``datasets.load_dataset("parquet", ...)`` decodes them as images.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("image", "image_sequence", "vector", "scalar", "point_cloud", "text")
LAYOUTS = ("sample", "episode")
NUMERIC_DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
)
FLOAT_DTYPES = ("float16", "float32", "float64")
IMAGE_KINDS = ("image", "image_sequence")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_PNG_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_size(d: Any) -> bool:
    return isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0


@dataclass(frozen=True)
class Feature:
    """One declared column. ``shape`` is the shape of one value (``()`` for a scalar or a text)."""

    name: str
    dtype: str
    shape: tuple
    kind: str
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"feature name {self.name!r} is not allowed: letters, digits, '_' and '.', not starting with a digit"
            )
        where = f"feature {self.name!r}"
        if self.kind not in KINDS:
            raise ValueError(f"{where}: unknown kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        try:
            shape = tuple(None if d is None else d for d in self.shape)
        except TypeError:
            raise ValueError(f"{where}: shape must be a list of sizes, got {self.shape!r}") from None
        object.__setattr__(self, "shape", tuple(None if d is None else int(d) for d in shape))
        if not isinstance(self.description, str):
            raise ValueError(f"{where}: description must be text, got {self.description!r}")
        k, dt, sh = self.kind, self.dtype, shape
        if k in IMAGE_KINDS:
            if dt != "uint8":
                raise ValueError(f"{where}: an {k} has dtype uint8, got {dt!r}")
            least = 3 if k == "image" else 4
            if (k == "image" and len(sh) != 3) or len(sh) < least or not all(_is_size(d) for d in sh):
                form = "(H, W, C)" if k == "image" else "(*grid, H, W, C)"
                raise ValueError(f"{where}: an {k} has a shape {form} of positive sizes, got {self.shape!r}")
            if sh[-1] not in _PNG_MODES:
                raise ValueError(f"{where}: images have 1, 3 or 4 channels, got {sh[-1]}")
        elif k == "text":
            if dt != "string" or sh != ():
                raise ValueError(f"{where}: a text has dtype 'string' and shape (), got {dt!r} {self.shape!r}")
        elif k == "scalar":
            if dt not in NUMERIC_DTYPES or sh != ():
                raise ValueError(
                    f"{where}: a scalar has shape () and one of the dtypes {', '.join(NUMERIC_DTYPES)}, got "
                    f"{dt!r} {self.shape!r}"
                )
        elif k == "vector":
            if dt not in NUMERIC_DTYPES:
                raise ValueError(f"{where}: unknown dtype {dt!r}; allowed: {', '.join(NUMERIC_DTYPES)}")
            if not sh or not all(_is_size(d) for d in sh):
                raise ValueError(f"{where}: a vector has a shape of positive sizes, e.g. (3,), got {self.shape!r}")
        elif k == "point_cloud":
            if dt not in FLOAT_DTYPES:
                raise ValueError(f"{where}: a point cloud has one of the dtypes {', '.join(FLOAT_DTYPES)}, got {dt!r}")
            if len(sh) != 2 or not _is_size(sh[1]) or not (sh[0] is None or _is_size(sh[0])):
                raise ValueError(f"{where}: a point cloud has the shape (N, D), N may be None, got {self.shape!r}")

    # ------------------------------------------------------------------ declaration
    def to_json(self) -> dict:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "kind": self.kind,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, record: Any, where: str = "feature") -> Feature:
        if not isinstance(record, dict):
            raise ValueError(f"{where} is not a mapping: {record!r}")
        for key in ("name", "dtype", "shape", "kind"):
            if key not in record:
                raise ValueError(f"{where} lacks the key {key!r}")
        extra = sorted(set(record) - {"name", "dtype", "shape", "kind", "description"})
        if extra:
            raise ValueError(f"{where} has unknown key(s) {extra}; allowed: name, dtype, shape, kind, description")
        if not isinstance(record["shape"], list):
            raise ValueError(f"{where}: shape must be a list, got {record['shape']!r}")
        return cls(
            record["name"], record["dtype"], tuple(record["shape"]), record["kind"], record.get("description", "")
        )

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of tiles of an image sequence."""
        lead = self.shape[:-3]
        if len(lead) == 1:
            return lead[0], 1
        return math.prod(lead[:-1]), lead[-1]

    def raw_bytes(self) -> int:
        """Bytes of one decoded value (a point cloud of unknown size counts 1024 points)."""
        if self.kind == "text":
            return 64
        size = math.prod(1024 if d is None else d for d in self.shape) if self.shape else 1
        return size * np.dtype(self.dtype).itemsize

    # ------------------------------------------------------------------ storage types
    def arrow_type(self):
        import pyarrow as pa

        if self.kind in IMAGE_KINDS:
            return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        if self.kind == "text":
            return pa.string()
        t = pa.from_numpy_dtype(np.dtype(self.dtype))
        for d in reversed(self.shape):
            t = pa.list_(t) if d is None else pa.list_(t, d)
        return t

    def hf_feature(self):
        """The Hugging Face ``datasets`` feature of this column."""
        import datasets

        if self.kind in IMAGE_KINDS:
            return datasets.Image()
        if self.kind == "text":
            return datasets.Value("string")
        f = datasets.Value(self.dtype)
        seq = getattr(datasets, "List", None) or datasets.Sequence
        for d in reversed(self.shape):
            f = seq(f, length=-1 if d is None else d)
        return f

    # ------------------------------------------------------------------ values
    def check_value(self, value: Any) -> np.ndarray | str | bytes:
        """``value`` as stored-ready data, or ``ValueError`` saying what this feature expects."""
        where = f"feature {self.name!r}"
        if self.kind == "text":
            if not isinstance(value, str):
                raise ValueError(f"{where} expects a string, got {type(value).__name__}")
            return value
        if self.kind in IMAGE_KINDS and isinstance(value, (bytes, bytearray)):
            if not bytes(value[:8]) == _PNG_SIGNATURE:
                raise ValueError(f"{where} got bytes that are not a PNG")
            return bytes(value)
        a = np.asarray(value)
        if self.kind in IMAGE_KINDS and a.dtype != np.uint8:
            raise ValueError(f"{where} expects uint8 pixels, got {a.dtype}")
        want = self.shape
        if len(a.shape) != len(want) or any(d is not None and d != n for d, n in zip(want, a.shape, strict=True)):
            shown = tuple("N" if d is None else d for d in want)
            raise ValueError(f"{where} expects shape {shown}, got {a.shape}")
        if self.kind not in IMAGE_KINDS:
            try:
                b = a.astype(self.dtype, casting="same_kind" if a.dtype.kind == "f" else "unsafe")
            except (TypeError, ValueError):
                raise ValueError(f"{where} expects {self.dtype} values, got {a.dtype}") from None
            if b.dtype.kind in "iub" and a.dtype.kind in "iub" and not np.array_equal(b, a):
                raise ValueError(f"{where}: a value does not fit in {self.dtype}")
            a = b
        return a

    def encode_image(self, value: np.ndarray | bytes) -> bytes:
        """The PNG bytes of an image or an image sequence (tiled)."""
        if isinstance(value, bytes):
            return value
        from PIL import Image

        img = tile(value) if self.kind == "image_sequence" else value
        c = img.shape[-1]
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if c == 1 else img, mode=None).save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def to_arrow(self, values: list):
        """An Arrow array of a list of values (each checked with :meth:`check_value`)."""
        import pyarrow as pa

        checked = [self.check_value(v) for v in values]
        if self.kind in IMAGE_KINDS:
            return pa.array([{"bytes": self.encode_image(v), "path": None} for v in checked], type=self.arrow_type())
        if self.kind == "text":
            return pa.array(checked, type=pa.string())
        if self.kind == "scalar":
            return pa.array(np.asarray(checked, dtype=self.dtype), type=self.arrow_type())
        if self.kind == "point_cloud" and self.shape[0] is None:
            d = self.shape[1]
            flat = np.concatenate([c.reshape(-1) for c in checked]) if checked else np.zeros(0, self.dtype)
            inner = pa.FixedSizeListArray.from_arrays(pa.array(flat.astype(self.dtype)), d)
            offsets = np.concatenate([[0], np.cumsum([len(c) for c in checked])]).astype(np.int32)
            return pa.ListArray.from_arrays(pa.array(offsets), inner)
        arr = np.stack(checked).astype(self.dtype) if checked else np.zeros((0, *self.shape), self.dtype)
        out = pa.array(arr.reshape(-1))
        for d in reversed(self.shape):
            out = pa.FixedSizeListArray.from_arrays(out, d)
        return out

    def decode(self, column, where: str = "", row0: int = 0) -> np.ndarray:
        """Decode an Arrow column of this feature into a numpy array of ``(rows, *shape)``.

        Images and image sequences become uint8 arrays, vectors and scalars arrays of the declared dtype, texts
        str arrays; point clouds of unknown N an object array of (n, D) arrays. A value that does not decode or
        does not have the declared shape raises ``ValueError`` naming ``where``, the key and the row (counted
        from ``row0``).
        """
        import pyarrow as pa

        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        n = len(column)
        at = f"{where}key {self.name!r}"
        if column.null_count:
            raise ValueError(f"{at}: {column.null_count} missing value(s)")
        if self.kind in IMAGE_KINDS:
            out = np.empty((n, *self.shape), np.uint8)
            data = column.field("bytes")
            for i in range(n):
                out[i] = self.decode_image(data[i].as_py(), f"{at}, row {row0 + i}")
            return out
        if self.kind == "text":
            return np.asarray(column.to_pylist(), dtype=str)
        if self.kind == "scalar":
            return column.to_numpy(zero_copy_only=False).astype(self.dtype, copy=False)
        if self.kind == "point_cloud" and self.shape[0] is None:
            out = np.empty(n, object)
            offsets = column.offsets.to_numpy()
            flat = column.flatten().flatten().to_numpy(zero_copy_only=False).astype(self.dtype, copy=False)
            d = self.shape[1]
            for i in range(n):
                out[i] = flat[offsets[i] * d : offsets[i + 1] * d].reshape(-1, d)
            return out
        flat = column
        for _ in self.shape:
            flat = flat.flatten()
        values = flat.to_numpy(zero_copy_only=False).astype(self.dtype, copy=False)
        if values.size != n * math.prod(self.shape):
            raise ValueError(f"{at}: {values.size} values do not make {n} values of shape {self.shape}")
        return values.reshape(n, *self.shape)

    def decode_image(self, data: bytes | None, where: str = "") -> np.ndarray:
        """One stored PNG as a uint8 array of the declared shape (image sequences untiled)."""
        from PIL import Image

        if data is None:
            raise ValueError(f"{where}: no image data")
        try:
            with Image.open(io.BytesIO(data)) as im:
                mode = _PNG_MODES[self.shape[-1]]
                arr = np.asarray(im.convert(mode) if im.mode != mode else im, dtype=np.uint8)
        except Exception as e:  # noqa: BLE001 - reported with the key and the row
            raise ValueError(f"{where}: image data does not decode ({type(e).__name__}: {e})") from None
        if arr.ndim == 2:
            arr = arr[..., None]
        if self.kind == "image_sequence":
            rows, cols = self.grid
            h, w, c = self.shape[-3:]
            if arr.shape != (rows * h, cols * w, c):
                raise ValueError(
                    f"{where}: a tiled image of shape {arr.shape}, the declaration {self.shape} needs "
                    f"{(rows * h, cols * w, c)}"
                )
            return untile(arr, self.shape)
        if arr.shape != self.shape:
            raise ValueError(f"{where}: an image of shape {arr.shape}, the declaration says {self.shape}")
        return arr


def tile(seq: np.ndarray) -> np.ndarray:
    """An image sequence (*grid, H, W, C) as one image: the last grid dimension along the columns, the others
    along the rows. (4, 2, H, W, 3) -> (4H, 2W, 3): frame t in row t, pad k in column k."""
    seq = np.asarray(seq)
    lead, (h, w, c) = seq.shape[:-3], seq.shape[-3:]
    rows, cols = (lead[0], 1) if len(lead) == 1 else (math.prod(lead[:-1]), lead[-1])
    return seq.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def untile(image: np.ndarray, shape: tuple) -> np.ndarray:
    """Inverse of :func:`tile` for a sequence of the given shape (*grid, H, W, C)."""
    lead, (h, w, c) = tuple(shape[:-3]), tuple(shape[-3:])
    rows, cols = (lead[0], 1) if len(lead) == 1 else (math.prod(lead[:-1]), lead[-1])
    return image.reshape(rows, h, cols, w, c).transpose(0, 2, 1, 3, 4).reshape(*lead, h, w, c)


EPISODE_KEYS = ("episode_index", "frame_index", "timestamp")
EPISODE_FEATURES = (
    Feature("episode_index", "int64", (), "scalar", "episode of the frame (0-based, numbered over the split)"),
    Feature("frame_index", "int64", (), "scalar", "frame within its episode (0-based)"),
    Feature("timestamp", "float32", (), "scalar", "time of the frame from the start of its episode (s)"),
)
"""The columns the ``episode`` layout requires (the LeRobot v3 convention); the driver fills them."""


def same_arrow_type(a, b) -> bool:
    """Arrow types equal up to the names of list items (``item`` / ``element``) and string/binary sizes."""
    import pyarrow as pa
    import pyarrow.types as t

    if t.is_fixed_size_list(a) and t.is_fixed_size_list(b):
        return a.list_size == b.list_size and same_arrow_type(a.value_type, b.value_type)
    if (t.is_list(a) or t.is_large_list(a)) and (t.is_list(b) or t.is_large_list(b)):
        return same_arrow_type(a.value_type, b.value_type)
    if t.is_struct(a) and t.is_struct(b):
        return [f.name for f in a] == [f.name for f in b] and all(
            same_arrow_type(x.type, y.type) for x, y in zip(a, b, strict=True)
        )
    if (t.is_string(a) or t.is_large_string(a)) and (t.is_string(b) or t.is_large_string(b)):
        return True
    if (t.is_binary(a) or t.is_large_binary(a)) and (t.is_binary(b) or t.is_large_binary(b)):
        return True
    return isinstance(a, pa.DataType) and a.equals(b)


@dataclass(frozen=True)
class Schema:
    """A dataset's declaration: its layout and its features, in column order."""

    layout: str
    features: tuple[Feature, ...]

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; allowed: {', '.join(LAYOUTS)}")
        feats = tuple(self.features)
        object.__setattr__(self, "features", feats)
        if not feats:
            raise ValueError("a dataset declares at least one feature")
        for f in feats:
            if not isinstance(f, Feature):
                raise ValueError(f"features must be Feature declarations, got {f!r}")
        names = [f.name for f in feats]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"feature name(s) {dup} declared twice")
        if self.layout == "episode":
            for need in EPISODE_FEATURES:
                got = self.get(need.name)
                if got is None:
                    raise ValueError(f"the episode layout requires the column {need.name!r} ({need.description})")
                if (got.dtype, got.shape, got.kind) != (need.dtype, need.shape, need.kind):
                    raise ValueError(
                        f"column {need.name!r} of the episode layout is a {need.kind} of dtype {need.dtype}, "
                        f"declared as a {got.kind} of dtype {got.dtype} shape {got.shape}"
                    )

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def get(self, name: str) -> Feature | None:
        return next((f for f in self.features if f.name == name), None)

    def __getitem__(self, name: str) -> Feature:
        f = self.get(name)
        if f is None:
            raise KeyError(f"no feature {name!r}; the dataset declares {self.names}")
        return f

    def to_json(self) -> dict:
        return {"layout": self.layout, "features": [f.to_json() for f in self.features]}

    @classmethod
    def from_json(cls, layout: Any, features: Any, where: str = "dataset.json") -> Schema:
        if not isinstance(features, list):
            raise ValueError(f"{where}: 'features' must be a list of feature declarations")
        feats = []
        for i, rec in enumerate(features):
            name = rec.get("name") if isinstance(rec, dict) else None
            feats.append(Feature.from_json(rec, f"{where}: feature {i}" + (f" ({name!r})" if name else "")))
        try:
            return cls(layout, tuple(feats))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def row_bytes(self) -> int:
        """Decoded bytes of one row, an upper estimate of its stored size (PNG rarely grows an image)."""
        return sum(f.raw_bytes() for f in self.features) + 16

    def arrow_schema(self):
        """The Arrow schema of a shard, with the Hugging Face ``datasets`` metadata of its features."""
        import pyarrow as pa

        meta = self.hf_features().arrow_schema.metadata
        return pa.schema([pa.field(f.name, f.arrow_type()) for f in self.features], metadata=meta)

    def hf_features(self):
        import datasets

        return datasets.Features({f.name: f.hf_feature() for f in self.features})

    def check_arrow_schema(self, schema, where: str) -> None:
        """Raise ``ValueError`` naming ``where`` and the key when a shard's columns differ from the declaration."""
        names = list(schema.names)
        missing = [n for n in self.names if n not in names]
        if missing:
            raise ValueError(f"{where} lacks the key(s) {missing}")
        extra = [n for n in names if n not in self.names]
        if extra:
            raise ValueError(f"{where} has the undeclared key(s) {extra}; declared: {self.names}")
        for f in self.features:
            got = schema.field(f.name).type
            if not same_arrow_type(got, f.arrow_type()):
                raise ValueError(
                    f"{where}: key {f.name!r} is stored as {got}, its declaration ({f.kind}, {f.dtype}, shape "
                    f"{list(f.shape)}) is stored as {f.arrow_type()}"
                )

    def diff(self, other: Schema) -> str:
        """What differs between two declarations (layout, and each feature's kind, dtype and shape; descriptions
        aside), in words: '' when they are the same."""
        out = []
        if self.layout != other.layout:
            out.append(f"layout {self.layout} -> {other.layout}")
        a, b = {f.name: f for f in self.features}, {f.name: f for f in other.features}
        for n in a:
            if n not in b:
                out.append(f"{n!r} dropped")
            elif (a[n].kind, a[n].dtype, a[n].shape) != (b[n].kind, b[n].dtype, b[n].shape):
                fa, fb = a[n], b[n]
                out.append(f"{n!r} {fa.kind} {fa.dtype} {list(fa.shape)} -> {fb.kind} {fb.dtype} {list(fb.shape)}")
        out += [f"{n!r} added" for n in b if n not in a]
        return "; ".join(out)
