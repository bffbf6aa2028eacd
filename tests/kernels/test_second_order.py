"""The second-order (Gauss–Newton diagonal) pass behind the sdlm optimizer.

Two independent checks of Model.curvature and the layers' backward2:
- against a plain-NumPy implementation of the same layer-by-layer recursion,
  written here from the formulas (its own forward pass too, no kernel called),
  on small random networks with every layer kind LeNet-5 has (conv with a
  connection table, subsampling, dense, RBF + MAP loss, scaled tanh) and the
  others sdlm accepts (max and mean pooling, relu, sigmoid, a softmax output);
- for one-layer networks, where the layer-wise diagonal is exact, against the
  Gauss–Newton diagonal diag(Jᵀ H J) built from a finite-difference Jacobian.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnn_cli.spec.config import parse_config
from cnn_cli.nn.model import Model

A, S = 1.7159, 2.0 / 3.0


def f_and_slope(a, act):
    """(f(a), f'(a)) from the pre-activation, as the formulas define them."""
    if act == "scaled_tanh":
        t = np.tanh(S * a)
        return A * t, A * S * (1 - t * t)
    if act == "tanh":
        t = np.tanh(a)
        return t, 1 - t * t
    if act == "sigmoid":
        s = 1 / (1 + np.exp(-a))
        return s, s * (1 - s)
    if act == "relu":
        return np.maximum(a, 0), (a > 0).astype(a.dtype)
    return a, np.ones_like(a)


def dense_conv_weights(layer):
    """(K, C, Fh, Fw) weights with zeros for absent connections, from the table."""
    spec, w = layer.spec, layer.params["weight"]
    if spec.connections is None:
        return w.copy()
    K, C = spec.filters, len(spec.connections)
    out = np.zeros((K, C) + w.shape[1:])
    e = 0
    for k in range(K):
        for c in range(C):
            if spec.connections[c][k]:
                out[k, c] = w[e]
                e += 1
    return out


def windows(h, w, size, stride):
    for i in range((h - size[0]) // stride[0] + 1):
        for j in range((w - size[1]) // stride[1] + 1):
            yield i, j, slice(i * stride[0], i * stride[0] + size[0]), slice(j * stride[1], j * stride[1] + size[1])


class NumpyLayer:
    """Forward from the formulas, keeping what the second-order step needs."""

    def __init__(self, layer):
        self.layer, self.spec = layer, layer.spec

    def forward(self, x):
        spec, p = self.spec, self.layer.params
        self.x_shape = x.shape
        if spec.family == "conv":
            top, bottom, left, right = spec.padding
            xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
            W = dense_conv_weights(self.layer)
            (fh, fw), (sh, sw) = spec.kernel, spec.stride
            oh, ow = self.layer.out_shape[1:]
            a = np.zeros((x.shape[0], spec.filters, oh, ow))
            for i in range(oh):
                for j in range(ow):
                    patch = xp[:, :, i * sh:i * sh + fh, j * sw:j * sw + fw]
                    a[:, :, i, j] = np.einsum("bcmn,kcmn->bk", patch, W) + p["bias"]
            self.xp, self.W = xp, W
        elif spec.family == "pool":
            B, C, H, Wd = x.shape
            oh, ow = self.layer.out_shape[1:]
            a = np.zeros((B, C, oh, ow))
            self.arg = {}
            for i, j, rs, cs in windows(H, Wd, spec.size, spec.stride):
                win = x[:, :, rs, cs]
                if spec.kind == "max":
                    flat = win.reshape(B, C, -1)
                    a[:, :, i, j] = flat.max(axis=2)
                    self.arg[i, j] = flat.argmax(axis=2)  # first maximum, row-major
                elif spec.kind == "mean":
                    a[:, :, i, j] = win.mean(axis=(2, 3))
                else:
                    a[:, :, i, j] = win.sum(axis=(2, 3))
            if spec.kind == "subsample":
                self.sums = a.copy()
                a = p["beta"][None, :, None, None] * a + p["bias"][None, :, None, None]
        elif spec.family == "dense":
            self.x2 = x.reshape(x.shape[0], -1)
            a = self.x2 @ p["weight"] + p["bias"]
        else:
            self.x2 = x.reshape(x.shape[0], -1)
            return -((self.x2[:, None, :] - self.layer.fixed["centres"][None]) ** 2).sum(axis=2)
        act = getattr(spec, "activation", "identity")
        y, self.slope = f_and_slope(a, act)
        return y

    def second(self, d2y):
        """(∂²E/∂x², {param: Σ_b ∂²E/∂w²}) by the recursion's three formulas."""
        spec, p = self.spec, self.layer.params
        d2a = self.slope ** 2 * d2y
        if spec.family == "conv":
            (fh, fw), (sh, sw) = spec.kernel, spec.stride
            d2W = np.zeros_like(self.W)
            d2xp = np.zeros_like(self.xp)
            for i in range(d2a.shape[2]):
                for j in range(d2a.shape[3]):
                    patch = self.xp[:, :, i * sh:i * sh + fh, j * sw:j * sw + fw]
                    d2W += np.einsum("bk,bcmn->kcmn", d2a[:, :, i, j], patch ** 2)
                    d2xp[:, :, i * sh:i * sh + fh, j * sw:j * sw + fw] += np.einsum(
                        "bk,kcmn->bcmn", d2a[:, :, i, j], self.W ** 2)
            top, _, left, _ = spec.padding
            H, Wd = self.x_shape[2:]
            d2x = d2xp[:, :, top:top + H, left:left + Wd]
            if spec.connections is not None:
                table = np.array(spec.connections).T  # (K, C)
                d2w = d2W[table]  # filter-major, as the weights are stored
            else:
                d2w = d2W
            return d2x, {"weight": d2w, "bias": d2a.sum(axis=(0, 2, 3))}
        if spec.family == "pool":
            B, C, H, Wd = self.x_shape
            d2x = np.zeros(self.x_shape)
            grads = {}
            if spec.kind == "subsample":
                grads = {"beta": (d2a * self.sums ** 2).sum(axis=(0, 2, 3)), "bias": d2a.sum(axis=(0, 2, 3))}
            for i, j, rs, cs in windows(H, Wd, spec.size, spec.stride):
                if spec.kind == "max":
                    view = d2x[:, :, rs, cs].reshape(B, C, -1).copy()
                    np.put_along_axis(view, self.arg[i, j][..., None],
                                      np.take_along_axis(view, self.arg[i, j][..., None], 2)
                                      + d2a[:, :, i, j][..., None], 2)
                    d2x[:, :, rs, cs] = view.reshape(B, C, spec.size[0], spec.size[1])
                elif spec.kind == "mean":
                    d2x[:, :, rs, cs] += d2a[:, :, i, j][..., None, None] / (spec.size[0] * spec.size[1]) ** 2
                else:
                    d2x[:, :, rs, cs] += (p["beta"][None, :] ** 2 * d2a[:, :, i, j])[..., None, None]
            return d2x, grads
        d2w = self.x2.T ** 2 @ d2a
        d2x = d2a @ (p["weight"] ** 2).T
        return d2x.reshape(self.x_shape), {"weight": d2w, "bias": d2a.sum(axis=0)}


def rbf_map_input_curvature(x, centres, j):
    """2 + Σ q g² − (Σ q g)² per input of the RBF, q the MAP criterion's weights."""
    y = ((x[:, None, :] - centres[None]) ** 2).sum(axis=2)
    e = np.exp(-y)
    q = e / (np.exp(-j) + e.sum(axis=1, keepdims=True))
    g = 2 * (x[:, None, :] - centres[None])  # (B, U, D)
    return 2 + np.einsum("bu,bud->bd", q, g ** 2) - np.einsum("bu,bud->bd", q, g) ** 2


def numpy_curvature(model, x, labels):
    """Model.curvature's answer, recomputed from the formulas (float64)."""
    steps = [NumpyLayer(layer) for layer in model.layers]
    out = x.astype(np.float64)
    for step in steps:
        out = step.forward(out)
    train = model.config.train
    if steps[-1].spec.family == "rbf":
        j = train["map_j"] if train["loss"] == "map" else np.inf
        d2 = rbf_map_input_curvature(steps[-1].x2, model.layers[-1].fixed["centres"], j)
        d2 = d2.reshape(steps[-1].x_shape)
        steps = steps[:-1]
    else:
        q = np.exp(out - out.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        d2 = q * (1 - q)
    sums = {}
    for step in reversed(steps):
        d2, grads = step.second(d2)
        for name, value in grads.items():
            sums[f"{step.layer.name}.{name}"] = value / len(labels)
    return out, sums


LENET_LIKE = """
name: small-lenet
input: {channels: 1, height: 12, width: 12, pad: 1}
blocks:
  - convs: [{filters: 3, kernel: 3, activation: scaled_tanh}]
    pools: [{kind: subsample, size: 2, activation: scaled_tanh}]
  - convs: [{filters: 4, kernel: 2, padding: 1, activation: scaled_tanh,
             connections: ["X.XX", "XX.X", ".XXX"]}]
    pools: [{kind: subsample, size: 2, activation: sigmoid}]
fc:
  - {units: 84, activation: scaled_tanh}
  - {kind: rbf, units: 10, centres: digits}
train: {optimizer: sdlm, loss: map, map_j: 3.0, init: lecun_uniform}
"""

MODERN = """
name: small-modern
input: {channels: 1, height: 11, width: 11}
blocks:
  - convs: [{filters: 3, kernel: 3, stride: 2, padding: same, activation: relu}]
    pools: [{kind: max, size: 2, stride: 1}]
  - convs: [{filters: 2, kernel: 2, activation: tanh}]
    pools: [{kind: mean, size: 2, stride: 1}]
fc:
  - {units: 7, activation: sigmoid}
  - {units: 5}
train: {optimizer: sdlm}
"""


def random_model(text, seed, dtype=np.float64):
    config = parse_config(text, "test.yaml")
    model = Model(config, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for _, param, _ in model.parameters():  # random biases and β too: every term counts
        param[...] = rng.standard_normal(param.shape) * (0.6 if param.ndim > 1 else 0.3)
    return model, config


@pytest.mark.parametrize("text", [LENET_LIKE, MODERN], ids=["lenet-kinds", "max-mean-relu-softmax"])
@pytest.mark.parametrize("seed", [0, 1])
def test_curvature_matches_a_numpy_recursion(text, seed):
    model, config = random_model(text, seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((5,) + config.input.shape)
    labels = rng.integers(0, config.num_classes, 5)
    logits_ref, expected = numpy_curvature(model, x, labels)
    np.testing.assert_allclose(model.forward(x), logits_ref, rtol=1e-10, atol=1e-10)
    got = dict(model.curvature(x, labels, chunk=2))  # chunks of 2: the sums across chunks are tested too
    assert list(got) == [name for name, _, _ in model.parameters()]
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-9, atol=1e-12, err_msg=name)
        assert (got[name] >= 0).all()
    assert set(expected) == set(got)


def test_curvature_in_float32_is_close_to_float64():
    model64, config = random_model(LENET_LIKE, 3)
    model32 = Model(config, dtype=np.float32, seed=3)
    for (_, p32, _), (_, p64, _) in zip(model32.parameters(), model64.parameters()):
        p32[...] = p64
    x = np.random.default_rng(3).standard_normal((4,) + config.input.shape)
    labels = np.array([0, 3, 5, 9])
    for (name, h32), (_, h64) in zip(model32.curvature(x.astype(np.float32), labels), model64.curvature(x, labels)):
        assert h32.dtype == np.float32
        np.testing.assert_allclose(h32, h64, rtol=2e-3, atol=1e-6, err_msg=name)


# ---------------------------------------------------------------- one layer: exact Gauss–Newton


def jacobian(fn, params):
    """∂fn()/∂θ by central differences over every entry of every array in params: (outputs, θ)."""
    columns = []
    for p in params:
        flat = p.reshape(-1)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + 1e-6
            up = fn().reshape(-1).copy()
            flat[i] = keep - 1e-6
            down = fn().reshape(-1).copy()
            flat[i] = keep
            columns.append((up - down) / 2e-6)
    return np.stack(columns, axis=1)


def test_one_dense_layer_with_softmax_equals_exact_gauss_newton():
    model, config = random_model("""
input: {channels: 1, height: 3, width: 3}
fc: [{units: 4, activation: scaled_tanh}]
train: {optimizer: sdlm}
""", 5)
    layer = model.layers[0]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 1, 3, 3))
    labels = np.array([0, 2, 3])
    params = [layer.params["weight"], layer.params["bias"]]
    exact = np.zeros(sum(p.size for p in params))
    for b in range(3):
        J = jacobian(lambda: model.forward(x[b:b + 1]), params)
        z = model.forward(x[b:b + 1])[0]
        q = np.exp(z - z.max())
        q /= q.sum()
        H = np.diag(q) - np.outer(q, q)  # softmax cross-entropy's full Hessian in the logits
        exact += np.diag(J.T @ H @ J) / 3
    got = np.concatenate([h.reshape(-1) for _, h in model.curvature(x, labels)])
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-10)


def test_one_layer_into_rbf_and_map_loss_equals_exact_gauss_newton():
    """F6 → RBF → MAP: the split E = y_c + LSE(−y); y_c = ‖x − c‖² has the exact
    Hessian 2I in x, the log-sum-exp the Gauss–Newton Gᵀ(diag q − qqᵀ)G."""
    model, config = random_model("""
input: {channels: 1, height: 2, width: 3}
fc:
  - {units: 84, activation: scaled_tanh}
  - {kind: rbf, units: 10, centres: digits}
train: {optimizer: sdlm, loss: map, map_j: 2.0}
""", 6)
    f6, rbf = model.layers
    # F6's outputs near the centre of 4 (f(±1) = ±1), so that its q is far from 0 and 1.
    f6.params["weight"][...] *= 0.1
    f6.params["bias"][...] = rbf.fixed["centres"][4]
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 1, 2, 3))
    labels = np.array([4, 7])
    params = [f6.params["weight"], f6.params["bias"]]
    centres = rbf.fixed["centres"]
    exact = np.zeros(sum(p.size for p in params))
    for b in range(2):
        J = jacobian(lambda: f6.forward(x[b:b + 1]), params)  # (84, θ)
        h = f6.forward(x[b:b + 1])[0]
        y = ((h[None] - centres) ** 2).sum(axis=1)
        e = np.exp(-y)
        q = e / (np.exp(-2.0) + e.sum())
        G = -2 * (h[None] - centres)  # ∂(−y)/∂h, (10, 84)
        M = 2 * np.eye(84) + G.T @ (np.diag(q) - np.outer(q, q)) @ G
        exact += np.diag(J.T @ M @ J) / 2
        assert 0.05 < q.max() < 0.95  # the log-sum-exp term is really exercised
    got = np.concatenate([h.reshape(-1) for _, h in model.curvature(x, labels)])
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", ["conv-table", "subsample"])
def test_one_shared_weight_layer_equals_exact_gauss_newton(kind):
    """A layer whose weights are shared across positions, under a diagonal loss
    Hessian D: diag(Jᵀ D J) sums D·(∂y/∂w)² over every connection sharing w."""
    block = ("{convs: [{filters: 3, kernel: 2, padding: 1, activation: scaled_tanh, "
             "connections: ['X.X', 'XXX']}]}" if kind == "conv-table" else
             "{convs: [{filters: 2, kernel: 1}], pools: [{kind: subsample, size: 2, activation: scaled_tanh}]}")
    model, config = random_model(f"""
input: {{channels: 2, height: 4, width: 4}}
blocks: [{block}]
fc: [{{units: 2}}]
train: {{optimizer: sdlm}}
""", 7)
    layer = model.layers[0] if kind == "conv-table" else model.layers[1]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2,) + tuple(layer.in_shape))
    params = list(layer.params.values())
    D = rng.uniform(0.1, 2.0, (2,) + tuple(layer.out_shape))
    exact = np.zeros(sum(p.size for p in params))
    for b in range(2):
        J = jacobian(lambda: layer.forward(x[b:b + 1]), params)
        exact += (J ** 2 * D[b].reshape(-1, 1)).sum(axis=0)
    layer.forward(x)
    curv: dict = {}
    layer.backward2(D, curv)
    got = np.concatenate([curv[name].reshape(-1) for name in layer.params])
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-10)
