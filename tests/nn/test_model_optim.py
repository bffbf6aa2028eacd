"""Model assembly, parameter counts, optimizers and schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnn_cli.spec.config import load_config
from cnn_cli.errors import UserError
from cnn_cli.nn.model import Model
from cnn_cli.nn.optim import SGD, Adam, learning_rate


@pytest.mark.parametrize("name,trainable,fixed", [
    ("lenet5", 61_706, 0), ("lenet5-classic", 60_000, 840), ("caffe-lenet", 431_080, 0)])
def test_parameter_counts_of_built_models(name, trainable, fixed):
    model = Model(load_config(name))
    assert model.count_parameters() == (trainable, fixed)


def test_c3_has_only_connected_weights():
    model = Model(load_config("lenet5-classic"))
    c3 = next(layer for layer in model.layers if layer.name == "C3")
    assert c3.params["weight"].shape == (60, 5, 5)
    assert c3.params["bias"].shape == (16,)


def test_forward_shapes_and_classes():
    model = Model(load_config("lenet5-classic"))
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    logits = model.forward(x)
    assert logits.shape == (3, 10) and logits.dtype == np.float32
    # RBF logits are minus squared distances: never positive.
    assert (logits <= 0).all()
    probs = model.predict_proba(x)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_same_seed_same_weights_other_seed_differs():
    cfg = load_config("lenet5")
    a, b, c = Model(cfg, seed=1), Model(cfg, seed=1), Model(cfg, seed=2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert not np.array_equal(sa["conv1.weight"], sc["conv1.weight"])


def test_load_state_dict_checks_shapes():
    model = Model(load_config("lenet5"))
    state = {k: v.copy() for k, v in model.state_dict().items()}
    state["fc1.weight"] = np.zeros((3, 3), dtype=np.float32)
    with pytest.raises(UserError, match="does not match its config"):
        model.load_state_dict(state, "x.npz")
    del state["fc1.weight"]
    with pytest.raises(UserError, match="lacks fc1.weight"):
        model.load_state_dict(state, "x.npz")


def test_training_step_reduces_loss():
    from cnn_cli.nn.optim import make_optimizer

    cfg = load_config("lenet5")
    model = Model(cfg)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    opt = make_optimizer(cfg.train, [(n, p) for n, p, _ in model.parameters()])
    first, _ = model.loss_and_gradients(x, y)
    # 40 steps: from PyTorch's small initial weights (train.init: pytorch) memorising
    # 16 noise images takes longer than it did from He-normal ones (20 steps then).
    for _ in range(40):
        model.loss_and_gradients(x, y)
        opt.step(list(model.parameters()), 1e-3)
    last, _ = model.loss_and_gradients(x, y)
    assert last < first * 0.5


def _run(optimizer, grads, lr):
    param = np.array([1.0, -2.0])
    for g in grads:
        optimizer.step([("p", param, np.array(g))], lr)
    return param


def test_sgd_momentum_and_nesterov_by_hand():
    grads = [[1.0, 1.0], [0.5, -1.0]]
    # momentum 0.9: v1 = g1, w1 = w0 − lr·v1; v2 = 0.9·v1 + g2, w2 = w1 − lr·v2
    p = _run(SGD([("p", np.zeros(2))], 0.1, momentum=0.9), grads, 0.1)
    v1 = np.array(grads[0]); v2 = 0.9 * v1 + grads[1]
    assert np.allclose(p, np.array([1.0, -2.0]) - 0.1 * v1 - 0.1 * v2)
    p = _run(SGD([("p", np.zeros(2))], 0.1, momentum=0.9, nesterov=True), grads, 0.1)
    step1 = np.array(grads[0]) + 0.9 * v1
    step2 = np.array(grads[1]) + 0.9 * v2
    assert np.allclose(p, np.array([1.0, -2.0]) - 0.1 * step1 - 0.1 * step2)
    p = _run(SGD([("p", np.zeros(2))], 0.1, weight_decay=0.5, momentum=0.0), [[0.0, 0.0]], 0.1)
    assert np.allclose(p, np.array([1.0, -2.0]) * (1 - 0.1 * 0.5))


def test_adam_first_step_moves_by_lr():
    # With bias correction, Adam's first step is lr·sign(g) (up to eps).
    p = _run(Adam([("p", np.zeros(2))], 0.01), [[3.0, -0.2]], 0.01)
    assert np.allclose(p, [1.0 - 0.01, -2.0 + 0.01], atol=1e-7)


def test_optimizer_state_round_trip():
    a = Adam([("p", np.zeros(2))], 0.01)
    _run(a, [[1.0, 2.0], [0.5, 0.1]], 0.01)
    b = Adam([("p", np.zeros(2))], 0.01)
    b.load_state_dict(a.state_dict())
    assert b.steps == 2 and np.array_equal(b.state["p"]["v"], a.state["p"]["v"])


def test_schedules():
    base = {"lr": 0.1, "epochs": 10, "schedule": "constant", "step_size": 3, "gamma": 0.5}
    assert learning_rate(base, 95, 10) == 0.1
    step = {**base, "schedule": "step"}
    assert learning_rate(step, 29, 10) == pytest.approx(0.1)  # epoch 2: no decay yet
    assert learning_rate(step, 30, 10) == pytest.approx(0.05)  # epoch 3: one decay
    assert learning_rate(step, 65, 10) == pytest.approx(0.025)
    cosine = {**base, "schedule": "cosine"}
    assert learning_rate(cosine, 0, 10) == pytest.approx(0.1)
    assert learning_rate(cosine, 50, 10) == pytest.approx(0.05)
    assert learning_rate(cosine, 100, 10) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(cosine, 25, 10) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))


def test_training_step_bitwise_identical_for_one_and_two_threads():
    """Every kernel sums in a fixed order and BLAS runs on one thread: the thread count
    must not change a single bit of a whole training step (forward, backward, update)."""
    import numba

    from cnn_cli.nn.optim import make_optimizer

    cfg = load_config("lenet5")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    states = []
    before = numba.get_num_threads()
    try:
        for threads in (1, 2, 1):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            model = Model(cfg)
            opt = make_optimizer(cfg.train, [(n, p) for n, p, _ in model.parameters()])
            for _ in range(3):
                model.loss_and_gradients(x, y)
                opt.step(list(model.parameters()), 1e-3)
            states.append(model.state_dict())
    finally:
        numba.set_num_threads(before)
    for other in states[1:]:
        assert all(np.array_equal(states[0][k], other[k]) for k in states[0])


@pytest.mark.parametrize("name,optimizer", [("lenet5", "adam"), ("lenet5-classic", "sgd")])
def test_packed_model_updates_in_one_pass_exactly_as_array_by_array(name, optimizer):
    """A model's trainable arrays and gradients are views into one flat buffer each
    (model.pack_parameters), so the optimizer updates everything in one call; the
    result must be bit for bit the array-by-array update of unpacked copies."""
    from cnn_cli.nn.optim import make_optimizer

    config = load_config(name)
    train = {**config.train, "optimizer": optimizer, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}
    model = Model(config, seed=0)
    named = list(model.parameters())
    assert all(p.base is model.flat_params and g.base is model.flat_grads for _, p, g in named)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, *model.input_shape)).astype(np.float32)
    labels = rng.integers(0, 10, 8).astype(np.uint8)
    packed = make_optimizer(train, [(n, p) for n, p, _ in named])
    loose_named = [(n, p.copy(), g) for n, p, g in named]
    loose = make_optimizer(train, [(n, p) for n, p, _ in loose_named])
    assert packed._params is model.flat_params and loose._params is None
    for _ in range(3):
        model.loss_and_gradients(x, labels)
        loose_named = [(n, q, g.copy()) for (n, q, _), (_, _, g) in zip(loose_named, model.parameters())]
        packed.step(list(model.parameters()), 0.01)
        loose.step(loose_named, 0.01)
        for (n, p, _), (_, q, _) in zip(model.parameters(), loose_named):
            assert np.array_equal(p, q), n
    for n in packed.state:
        for slot, a in packed.state[n].items():
            assert np.array_equal(a, loose.state[n][slot]), (n, slot)


def test_optimizer_steps_at_its_base_rate_unless_given_one():
    """Optimizer(lr=...) is the rate of a step() that is not given one (it used to be ignored)."""
    w1, w2 = np.ones(4), np.ones(4)
    g = np.full(4, 0.5)
    SGD([("w", w1)], lr=0.1).step([("w", w1, g)])
    SGD([("w", w2)], lr=7.0).step([("w", w2, g)], 0.1)
    np.testing.assert_array_equal(w1, 1 - 0.1 * 0.5)
    np.testing.assert_array_equal(w2, w1)
