"""Tests of opu_hal.encoding: fitted parameters, state, range checks, round trips, bad inputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from opu_hal.encoding import (
    BinaryThresholdEncoder,
    MultiThresholdEncoder,
    NoDecoding,
    NoEncoding,
    SeparatedBitPlanDecoder,
    SeparatedBitPlanEncoder,
    SignSplitDecoder,
    SignSplitEncoder,
    pack_bits,
    unpack_bits,
)
from opu_hal.errors import NotFittedError, OPUError

FITTED_ENCODERS = [
    BinaryThresholdEncoder,
    lambda **kw: BinaryThresholdEncoder(columnwise=True, **kw),
    MultiThresholdEncoder,
    lambda **kw: MultiThresholdEncoder(n_bins=4, columnwise=True, **kw),
    SeparatedBitPlanEncoder,
]
ALL_ENCODERS = FITTED_ENCODERS + [SignSplitEncoder, NoEncoding]

finite_floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def train(rng: np.random.Generator, batch: int = 50, n: int = 5) -> np.ndarray:
    return rng.normal(size=(batch, n)) * np.arange(1, n + 1)


def state(obj: object) -> dict:
    return copy.deepcopy(vars(obj))


def assert_state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def in_range_input(make, rng):
    """A fitted encoder and fresh data inside its training range (ternary/binary where needed)."""
    enc = make()
    if isinstance(enc, SignSplitEncoder):
        X = rng.integers(-1, 2, size=(40, 5))
        return enc.fit(X), rng.integers(-1, 2, size=(7, 5))
    if isinstance(enc, NoEncoding):
        return enc.fit(rng.integers(0, 2, size=(40, 5))), rng.integers(0, 2, size=(7, 5))
    X = train(rng)
    return enc.fit(X), X[:7] * 0.5


# --- common behaviour ---------------------------------------------------------------------


@pytest.mark.parametrize("make", ALL_ENCODERS)
def test_output_is_uint8_binary(make, rng):
    enc, X = in_range_input(make, rng)
    out = enc.transform(X)
    assert out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 1}


@pytest.mark.parametrize("make", ALL_ENCODERS)
def test_transform_does_not_change_state(make, rng):
    enc, X = in_range_input(make, rng)
    before = state(enc)
    first = enc.transform(X)
    enc.transform(X[::-1])
    assert_state_equal(before, state(enc))
    np.testing.assert_array_equal(first, enc.transform(X))


@pytest.mark.parametrize("make", FITTED_ENCODERS)
def test_clipped_out_of_range_transform_does_not_refit(make, rng):
    X = train(rng)
    enc = make(clip=True).fit(X)
    before = state(enc)
    enc.transform(X * 100)
    assert_state_equal(before, state(enc))


@pytest.mark.parametrize("make", FITTED_ENCODERS)
def test_transform_before_fit_raises_not_fitted(make):
    enc = make()
    assert not enc.is_fitted
    with pytest.raises(NotFittedError, match="fit"):
        enc.transform(np.zeros((2, 5)))
    assert issubclass(NotFittedError, OPUError)


@pytest.mark.parametrize("make", ALL_ENCODERS)
def test_fit_sets_is_fitted_and_returns_self(make, rng):
    enc, _ = in_range_input(make, rng)
    assert enc.is_fitted
    fresh = make()
    assert fresh.fit(np.ones((3, 5))) is fresh


@pytest.mark.parametrize("make", ALL_ENCODERS)
def test_feature_count_mismatch(make, rng):
    enc, _ = in_range_input(make, rng)
    with pytest.raises(ValueError, match=r"^X: expected 5 features \(as fitted\), got 7$"):
        enc.transform(np.zeros((2, 7)))


@pytest.mark.parametrize("make", ALL_ENCODERS)
def test_fit_transform_equals_fit_then_transform(make, rng):
    enc, X = in_range_input(make, rng)
    np.testing.assert_array_equal(make().fit_transform(X), make().fit(X).transform(X))


@pytest.mark.parametrize("make", FITTED_ENCODERS)
def test_single_vector_and_nd_batch_match_rows(make, rng):
    X = train(rng)
    enc = make().fit(X)
    rows = enc.transform(X[:6])
    batch_axis = 1 if rows.shape[0] != 6 else 0
    np.testing.assert_array_equal(enc.transform(X[0]), np.take(rows, 0, axis=batch_axis))
    nd = enc.transform(X[:6].reshape(2, 3, 5))
    np.testing.assert_array_equal(nd.reshape(rows.shape), rows)


def test_lists_and_array_like_objects_accepted(rng):
    X = train(rng)

    class CpuTensor:  # what np.asarray sees from a CPU torch tensor
        def __array__(self, dtype=None, copy=None):
            return X

    enc = BinaryThresholdEncoder()
    np.testing.assert_array_equal(enc.fit(CpuTensor()).transform(X.tolist()), enc.transform(X))


def test_failed_fit_keeps_previous_state(rng):
    enc = SeparatedBitPlanEncoder().fit(train(rng))
    before = state(enc)
    with pytest.raises(ValueError, match="^X: .*non-zero"):
        enc.fit(np.zeros((4, 3)))
    assert_state_equal(before, state(enc))


def test_fit_refits_explicitly(rng):
    enc = BinaryThresholdEncoder().fit(np.arange(10.0).reshape(5, 2))
    enc.fit(np.arange(10.0, 20.0).reshape(5, 2))
    assert enc.threshold_ == pytest.approx(14.5)


# --- bad inputs ---------------------------------------------------------------------------


class GpuTensor:
    def __array__(self, dtype=None, copy=None):
        raise TypeError("can't convert cuda:0 device type tensor to numpy")


BAD_X = [
    pytest.param(np.array([[1.0, np.nan]]), ValueError, "finite", id="nan"),
    pytest.param(np.array([[1.0, np.inf]]), ValueError, "finite", id="inf"),
    pytest.param(np.float64(1.0), ValueError, "shape", id="scalar"),
    pytest.param(np.zeros((0, 2)), ValueError, "non-empty", id="empty-batch"),
    pytest.param(np.array([["a", "b"]]), TypeError, "dtype", id="strings"),
    pytest.param(np.array([[1 + 1j, 0]]), TypeError, "dtype", id="complex"),
    pytest.param([[1.0, 2.0], [3.0]], TypeError, "array-like", id="ragged"),
    pytest.param(GpuTensor(), TypeError, "array-like", id="gpu-tensor"),
    pytest.param(None, TypeError, "dtype", id="none"),
]


@pytest.mark.parametrize("X, exc, words", BAD_X)
@pytest.mark.parametrize("make", ALL_ENCODERS)
def test_bad_X_in_transform(make, X, exc, words):
    enc = make().fit(np.array([[-1.0, 0.0], [1.0, 1.0]]))
    with pytest.raises(exc, match=f"^X: .*{words}"):
        enc.transform(X)


@pytest.mark.parametrize("X, exc, words", BAD_X + [pytest.param(np.ones(4), ValueError, "2-D", id="1d")])
@pytest.mark.parametrize("make", ALL_ENCODERS)
def test_bad_X_in_fit(make, X, exc, words):
    with pytest.raises(exc, match=f"^X: .*{words}"):
        make().fit(X)


@pytest.mark.parametrize(
    "make, exc, name",
    [
        (lambda: BinaryThresholdEncoder(threshold=np.nan), ValueError, "threshold"),
        (lambda: BinaryThresholdEncoder(threshold=[[0.0]]), ValueError, "threshold"),
        (lambda: BinaryThresholdEncoder(threshold="median"), TypeError, "threshold"),
        (lambda: MultiThresholdEncoder(n_bins=1), ValueError, "n_bins"),
        (lambda: MultiThresholdEncoder(n_bins=2.5), TypeError, "n_bins"),
        (lambda: MultiThresholdEncoder(thresholds=[2.0, 1.0]), ValueError, "thresholds"),
        (lambda: MultiThresholdEncoder(thresholds=[]), ValueError, "thresholds"),
        (lambda: MultiThresholdEncoder(n_bins=8, thresholds=[0.0, 1.0]), ValueError, "n_bins"),
        (lambda: SeparatedBitPlanEncoder(precision=0), ValueError, "precision"),
        (lambda: SeparatedBitPlanEncoder(precision=True), TypeError, "precision"),
        (lambda: SeparatedBitPlanDecoder(8, 0.0), ValueError, "scale"),
        (lambda: SeparatedBitPlanDecoder(8, "1"), TypeError, "scale"),
        (lambda: SeparatedBitPlanDecoder.from_encoder(BinaryThresholdEncoder()), TypeError, "encoder"),
    ],
)
def test_bad_constructor_arguments(make, exc, name):
    with pytest.raises(exc, match=f"^{name}: expected"):
        make()


def test_fixed_threshold_length_must_match_features():
    with pytest.raises(ValueError, match=r"^threshold: expected one threshold per feature \(3\), got 2"):
        BinaryThresholdEncoder(threshold=[0.0, 1.0]).fit(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"^thresholds: expected one row per feature \(3\), got 2"):
        MultiThresholdEncoder(thresholds=[[0.0], [1.0]]).fit(np.zeros((4, 3)))


# --- BinaryThresholdEncoder ---------------------------------------------------------------


def test_binary_threshold_fitted_as_global_median(rng):
    X = train(rng, batch=51)
    enc = BinaryThresholdEncoder().fit(X)
    assert enc.threshold_ == np.median(X)
    np.testing.assert_array_equal(enc.transform(X), X > np.median(X))


def test_binary_threshold_fitted_as_columnwise_median(rng):
    X = train(rng, batch=51) + np.arange(5) * 10
    enc = BinaryThresholdEncoder(columnwise=True).fit(X)
    np.testing.assert_array_equal(enc.threshold_, np.median(X, axis=0))
    out = enc.transform(X)
    np.testing.assert_array_equal(out.sum(axis=0), np.full(5, 25))  # half of 51 above each median


def test_binary_threshold_given_is_used_not_refitted(rng):
    X = train(rng)
    enc = BinaryThresholdEncoder(threshold=0.25).fit(X)
    assert enc.threshold_ == 0.25
    np.testing.assert_array_equal(enc.transform(X), X > 0.25)
    per_feature = BinaryThresholdEncoder(threshold=[0, 1, 2, 3, 4]).fit(X)
    np.testing.assert_array_equal(per_feature.transform(X), X > np.arange(5))


def test_binary_threshold_out_of_range_raises_and_names_X(rng):
    X = train(rng)
    enc = BinaryThresholdEncoder().fit(X)
    enc.transform(np.array([X.min(axis=0), X.max(axis=0)]))  # range bounds are inside
    bad = X[:2].copy()
    bad[1, 3] = X.max() + 1.0
    with pytest.raises(ValueError, match=r"^X: expected values within the range seen in fit .*clip=True"):
        enc.transform(bad)


def test_columnwise_range_is_per_feature():
    X = np.array([[0.0, 10.0], [1.0, 20.0]])
    BinaryThresholdEncoder().fit(X).transform([[5.0, 5.0]])  # inside the global range
    with pytest.raises(ValueError, match=r"\[0, 1\] \(feature 0\), got values in \[5, 5\]"):
        BinaryThresholdEncoder(columnwise=True).fit(X).transform([[5.0, 15.0]])


def test_binary_threshold_clip_accepts_out_of_range(rng):
    X = train(rng)
    enc = BinaryThresholdEncoder(clip=True).fit(X)
    out = enc.transform(np.array([[X.max() * 10] * 5, [X.min() * 10] * 5]))
    np.testing.assert_array_equal(out, [[1] * 5, [0] * 5])


# --- MultiThresholdEncoder ----------------------------------------------------------------


def test_multi_threshold_fitted_as_quantiles(rng):
    X = train(rng, batch=200)
    enc = MultiThresholdEncoder(n_bins=4).fit(X)
    np.testing.assert_allclose(enc.thresholds_, np.quantile(X, [0.25, 0.5, 0.75]))
    assert enc.transform(X).mean() == pytest.approx(0.5, abs=0.01)
    col = MultiThresholdEncoder(n_bins=4, columnwise=True).fit(X)
    assert col.thresholds_.shape == (5, 3)
    np.testing.assert_allclose(col.thresholds_[2], np.quantile(X[:, 2], [0.25, 0.5, 0.75]))


def test_multi_threshold_layout_is_feature_major():
    enc = MultiThresholdEncoder(thresholds=[1.0, 2.0, 3.0]).fit([[0.0, 0.0], [4.0, 4.0]])
    assert enc.n_bins == 4
    out = enc.transform([[2.5, 0.5], [4.0, 1.5]])
    np.testing.assert_array_equal(out, [[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]])


def test_multi_threshold_given_per_feature():
    enc = MultiThresholdEncoder(thresholds=[[0.5], [10.0]]).fit([[0.0, 0.0], [20.0, 20.0]])
    np.testing.assert_array_equal(enc.transform([[1.0, 1.0], [11.0, 11.0]]), [[1, 0], [1, 1]])


@settings(max_examples=50, deadline=None)
@given(
    data=hnp.arrays(np.float64, st.tuples(st.integers(2, 30), st.integers(1, 4)), elements=finite_floats),
    n_bins=st.integers(2, 10),
    columnwise=st.booleans(),
)
def test_thermometer_is_monotonic(data, n_bins, columnwise):
    enc = MultiThresholdEncoder(n_bins=n_bins, columnwise=columnwise).fit(data)
    L = n_bins - 1
    codes = enc.transform(data).reshape(data.shape[0], data.shape[1], L)
    assert (np.diff(codes.astype(int), axis=-1) <= 0).all()  # 1...1 0...0 within a feature
    order = np.argsort(data, axis=0, kind="stable")
    levels = np.take_along_axis(codes.sum(axis=-1), order, axis=0)
    assert (np.diff(levels, axis=0) >= 0).all()  # the level never decreases as x grows


def test_multi_threshold_out_of_range_and_clip(rng):
    X = train(rng)
    with pytest.raises(ValueError, match="^X: expected values within the range seen in fit"):
        MultiThresholdEncoder().fit(X).transform(X - 2 * np.ptp(X))
    out = MultiThresholdEncoder(n_bins=5, clip=True).fit(X).transform([[1e9] * 5, [-1e9] * 5])
    np.testing.assert_array_equal(out, [[1] * 20, [0] * 20])  # saturated codes


# --- SeparatedBitPlanEncoder / Decoder ----------------------------------------------------


def test_bit_planes_layout():
    enc = SeparatedBitPlanEncoder(precision=3).fit([[7.0, -7.0]])
    out = enc.transform([[6.0, -3.0], [0.0, 1.0]])
    assert out.shape == (6, 2, 2)
    # planes: q+ bits LSB..MSB, then q- bits LSB..MSB
    np.testing.assert_array_equal(out[:, 0, 0], [0, 1, 1, 0, 0, 0])  # +6
    np.testing.assert_array_equal(out[:, 0, 1], [0, 0, 0, 1, 1, 0])  # -3
    np.testing.assert_array_equal(out[:, 1, 0], [0, 0, 0, 0, 0, 0])  # 0
    np.testing.assert_array_equal(out[:, 1, 1], [1, 0, 0, 0, 0, 0])  # +1


def test_bit_plane_scale_is_max_abs(rng):
    X = train(rng)
    assert SeparatedBitPlanEncoder().fit(X).scale_ == np.abs(X).max()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    precision=st.integers(1, 12),
    shape=st.tuples(st.integers(1, 8), st.integers(1, 20), st.integers(1, 10)),
)
def test_bit_plane_round_trip_through_linear_map(seed, precision, shape):
    rng = np.random.default_rng(seed)
    batch, n, m = shape
    X = rng.normal(size=(batch, n)) * rng.uniform(1e-3, 1e3)
    M = rng.normal(size=(m, n))
    enc = SeparatedBitPlanEncoder(precision).fit(X)
    dec = SeparatedBitPlanDecoder.from_encoder(enc)
    Y = dec.transform(enc.transform(X) @ M.T)  # (2p, batch, n) @ (n, m) per plane
    assert Y.shape == (batch, m) and Y.dtype == np.float64
    # each x is quantised to within half a step; the error of row i of M x is at most that
    # times sum_j |M_ij|, plus float rounding
    bound = enc.scale_ / (2**precision - 1) / 2 * np.abs(M).sum(axis=1)
    assert (np.abs(Y - X @ M.T) <= bound * (1 + 1e-9) + 1e-9 * enc.scale_).all()


def test_bit_plane_relative_error_at_8_bits(rng):
    X, M = rng.normal(size=(20, 100)), rng.normal(size=(30, 100))
    enc = SeparatedBitPlanEncoder(8).fit(X)
    Y = SeparatedBitPlanDecoder.from_encoder(enc).transform(enc.transform(X) @ M.T)
    assert np.linalg.norm(Y - X @ M.T) / np.linalg.norm(X @ M.T) < 0.01


def test_bit_plane_out_of_range_and_clip(rng):
    X = train(rng)
    scale = np.abs(X).max()
    with pytest.raises(ValueError, match="^X: expected values within the range seen in fit"):
        SeparatedBitPlanEncoder().fit(X).transform(X * 1.5)
    enc = SeparatedBitPlanEncoder(clip=True).fit(X)
    decoded = SeparatedBitPlanDecoder.from_encoder(enc).transform(enc.transform([[3 * scale] * 5, [-3 * scale] * 5]))
    np.testing.assert_allclose(decoded, [[scale] * 5, [-scale] * 5])  # clipped to the fitted scale


def test_bit_plane_decoder_checks_planes_and_fitting():
    dec = SeparatedBitPlanDecoder(precision=4, scale=1.0)
    with pytest.raises(ValueError, match=r"^Y: expected 8 planes on axis 0, got shape \(6, 2, 3\)"):
        dec.transform(np.zeros((6, 2, 3)))
    with pytest.raises(ValueError, match="^Y: expected an array of shape"):
        dec.transform(np.zeros(8))
    with pytest.raises(NotFittedError, match="encoder"):
        SeparatedBitPlanDecoder.from_encoder(SeparatedBitPlanEncoder())


# --- SignSplit, NoEncoding, NoDecoding ----------------------------------------------------


def test_sign_split_round_trip(rng):
    X = rng.integers(-1, 2, size=(10, 6))
    M = rng.normal(size=(4, 6))
    planes = SignSplitEncoder().transform(X)  # stateless: no fit needed
    assert planes.shape == (2, 10, 6)
    np.testing.assert_array_equal(planes[0] - planes[1].astype(int), X)
    np.testing.assert_allclose(SignSplitDecoder().transform(planes @ M.T), X @ M.T)


def test_sign_split_rejects_non_ternary():
    with pytest.raises(ValueError, match=r"^X: expected ternary values in \{-1, 0, 1\}, got 2"):
        SignSplitEncoder().transform([[0, 2, -1]])
    with pytest.raises(ValueError, match=r"^Y: expected 2 planes"):
        SignSplitDecoder().transform(np.zeros((3, 1, 2)))


def test_no_encoding_passthrough_binary_only():
    X = np.array([[0, 1, 1], [1, 0, 0]], dtype=bool)
    out = NoEncoding().transform(X)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, X)
    with pytest.raises(ValueError, match=r"^X: expected binary values in \{0, 1\}, got 0.5"):
        NoEncoding().transform([[0.5, 1.0]])


def test_no_decoding_identity():
    Y = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(NoDecoding().transform(Y), Y)
    with pytest.raises(ValueError, match="^Y: expected finite"):
        NoDecoding().transform([np.nan])


# --- pack_bits / unpack_bits --------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    bits=hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 4), st.integers(1, 70)),
        elements=st.integers(0, 1),
    )
)
def test_pack_unpack_round_trip(bits):
    n = bits.shape[-1]
    packed = pack_bits(bits)
    assert packed.dtype == np.uint8 and packed.shape == (bits.shape[0], -(-n // 8))
    np.testing.assert_array_equal(packed, np.packbits(bits, axis=-1))  # numpy's (big) bit order by default
    out = unpack_bits(packed, n)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, bits)


def test_pack_bits_big_and_little_order_and_bool():
    np.testing.assert_array_equal(pack_bits([1, 0, 0, 0, 0, 0, 0, 0, 0, 1]), [128, 64])
    np.testing.assert_array_equal(pack_bits([1, 0, 0, 0, 0, 0, 0, 0, 0, 1], bitorder="little"), [1, 2])
    np.testing.assert_array_equal(pack_bits(np.array([[True, True]]), bitorder="little"), [[3]])


@pytest.mark.parametrize(
    "X, exc, words",
    [
        (np.array([0.0, 1.0]), TypeError, "dtype"),
        (np.array([0, 2]), ValueError, "only 0 and 1"),
        (np.zeros((2, 0), dtype=np.uint8), ValueError, "non-empty"),
        (np.uint8(1), ValueError, "non-empty"),
        (["a"], TypeError, "dtype"),
    ],
)
def test_pack_bits_bad_input(X, exc, words):
    with pytest.raises(exc, match=f"^X: .*{words}"):
        pack_bits(X)


@pytest.mark.parametrize(
    "P, n, exc, pattern",
    [
        (np.zeros(2, dtype=np.int64), 10, TypeError, r"^P: expected packed data of dtype uint8, got dtype int64"),
        (np.zeros(3, dtype=np.uint8), 10, ValueError, r"^P: expected a last axis of length .* = 2 .*got shape \(3,\)"),
        (np.zeros(1, dtype=np.uint8), 9, ValueError, r"^P: expected a last axis of length .* = 2"),
        (np.array([0, 0b100], dtype=np.uint8), 10, ValueError, r"^P: expected zero padding bits"),
        (np.zeros(1, dtype=np.uint8), 0, ValueError, r"^n_features: expected an int >= 1, got 0"),
        (np.zeros(1, dtype=np.uint8), 8.0, TypeError, r"^n_features: expected an int, got float"),
    ],
)
def test_unpack_bits_bad_input(P, n, exc, pattern):
    with pytest.raises(exc, match=pattern):
        unpack_bits(P, n)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
