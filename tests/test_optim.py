"""make_optimizer: the clipping + RMSProp chain, hyperparameters as arrays, and PyTorch's RMSprop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnnjax


def test_rmsprop_matches_torch_rmsprop():
    torch = pytest.importorskip("torch")
    w0 = np.array([0.5, -1.0, 2.0], np.float32)
    grads = [np.array(g, np.float32) for g in ([0.3, -0.2, 1.0], [1.5, 0.1, -0.4], [-0.7, 0.9, 0.2])]
    w_t = torch.tensor(w0, requires_grad=True)
    opt_t = torch.optim.RMSprop([w_t], lr=0.01, alpha=0.9, eps=1e-8)
    opt = rnnjax.make_optimizer("rmsprop", 0.01, clip=None, decay=0.9, eps=1e-8)
    params = {"w": jnp.asarray(w0)}
    state = opt.init(params)
    for g in grads:
        opt_t.zero_grad()
        w_t.grad = torch.tensor(g)
        opt_t.step()
        updates, state = opt.update({"w": jnp.asarray(g)}, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params["w"], w_t.detach().numpy(), rtol=1e-6)


def test_clipping_by_global_norm_and_by_value():
    g = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([12.0])}  # global norm 13
    opt = rnnjax.make_optimizer("sgd", 1.0, clip="global_norm", clip_threshold=1.0)
    updates, state = opt.update(g, opt.init(g))
    np.testing.assert_allclose(optax.tree.norm(updates), 1.0, rtol=1e-6)
    np.testing.assert_allclose(optax.tree.get(state, "grad_norm_clipped"), 1.0, rtol=1e-6)
    opt = rnnjax.make_optimizer("sgd", 1.0, clip="value", clip_threshold=5.0)
    updates, _ = opt.update(g, opt.init(g))
    np.testing.assert_allclose(updates["b"], [-5.0])
    np.testing.assert_allclose(updates["a"], [-3.0, -4.0])
    opt = rnnjax.make_optimizer("sgd", 1.0, clip_threshold=jnp.inf)
    updates, _ = opt.update(g, opt.init(g))
    np.testing.assert_allclose(updates["b"], [-12.0])


def test_hyperparameters_are_arrays_in_the_state():
    opt = rnnjax.make_optimizer("rmsprop", 1e-3, clip_threshold=2.0)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    assert set(state.hyperparams) >= {"learning_rate", "clip_threshold", "decay", "eps"}
    update = jax.jit(opt.update)
    g = {"w": jnp.array([1.0, -2.0, 0.5])}
    small, _ = update(g, state, params)
    state.hyperparams["learning_rate"] = jnp.float32(1e-2)
    large, _ = update(g, state, params)
    np.testing.assert_allclose(large["w"], 10 * small["w"], rtol=1e-5)
    assert update._cache_size() == 1


def test_a_sweep_vmaps_over_learning_rate_and_clip_threshold():
    opt = rnnjax.make_optimizer("sgd", 1.0)
    params = {"w": jnp.zeros(2)}
    g = {"w": jnp.array([3.0, 4.0])}

    def one(lr, clip):
        state = opt.init(params)
        state.hyperparams["learning_rate"] = lr
        state.hyperparams["clip_threshold"] = clip
        return opt.update(g, state, params)[0]["w"]

    out = jax.vmap(one)(jnp.array([1.0, 0.1]), jnp.array([1.0, 10.0]))
    np.testing.assert_allclose(out, [[-0.6, -0.8], [-0.3, -0.4]], rtol=1e-6)


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_alternatives_reduce_a_quadratic(name):
    opt = rnnjax.make_optimizer(name, 0.1, momentum=0.5)
    params = jnp.array([3.0, -2.0])
    state = opt.init(params)
    for _ in range(200):
        updates, state = opt.update(2 * params, state, params)
        params = optax.apply_updates(params, updates)
    assert float(jnp.max(jnp.abs(params))) < 0.05


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adagrad'; expected one of \['rmsprop', 'adam', 'sgd'\]"):
        rnnjax.make_optimizer("adagrad")
    with pytest.raises(ValueError, match="learning_rate must be non-negative, got -0.1"):
        rnnjax.make_optimizer("rmsprop", -0.1)
    with pytest.raises(ValueError, match="clip_threshold must be non-negative, got -1"):
        rnnjax.make_optimizer("rmsprop", 0.1, clip_threshold=-1)
    with pytest.raises(ValueError, match="unknown clip 'norm'"):
        rnnjax.make_optimizer("rmsprop", 0.1, clip="norm")


def test_lr_scales_is_a_second_rmsprop_at_the_smaller_rate_for_the_named_parameters():
    # expRNN's recipe: ``a`` (at any depth) trains at lr/10; every other parameter exactly as without scales
    params = {"cell": {"a": jnp.array([0.5, -1.0]), "w_x": jnp.array([2.0])}, "readout": {"w": jnp.array([1.0])}}
    grads = [jax.tree.map(lambda p, k=k: jnp.sin(p * (k + 1)) + 0.3, params) for k in range(3)]

    def run(opt, p=params):
        state = opt.init(p)
        for g in grads:
            updates, state = opt.update(g, state, p)
            p = optax.apply_updates(p, updates)
        return p

    scaled = run(rnnjax.make_optimizer("rmsprop", 0.01, clip=None, lr_scales={"a": 0.1}))
    plain = run(rnnjax.make_optimizer("rmsprop", 0.01, clip=None))
    slow = run(rnnjax.make_optimizer("rmsprop", 0.001, clip=None))
    np.testing.assert_allclose(scaled["cell"]["a"], slow["cell"]["a"], rtol=1e-6)
    assert not np.allclose(scaled["cell"]["a"], plain["cell"]["a"])
    np.testing.assert_array_equal(scaled["cell"]["w_x"], plain["cell"]["w_x"])
    np.testing.assert_array_equal(scaled["readout"]["w"], plain["readout"]["w"])
    frozen = run(rnnjax.make_optimizer("adam", 0.01, lr_scales={"a": 0.0}))
    np.testing.assert_array_equal(frozen["cell"]["a"], params["cell"]["a"])
    with pytest.raises(ValueError, match=r"lr_scales\['a'\] must be non-negative"):
        rnnjax.make_optimizer("rmsprop", 0.01, lr_scales={"a": -1.0})


def test_the_experiments_train_exp_rnn_skew_parameter_at_a_tenth():
    from experiments import _common, adding

    def a_step(cell):
        cfg = adding.Config(cell=cell, hidden=4, length=5, clip="none", learning_rate=1e-2)
        params = {"cell": {"a": jnp.ones(3), "w_x": jnp.ones(3)}}
        opt = _common.make_optimizer(cfg)
        updates, _ = opt.update(jax.tree.map(jnp.ones_like, params), opt.init(params), params)
        return updates["cell"]

    exp, lstm = a_step("exp_rnn"), a_step("lstm")
    np.testing.assert_allclose(exp["a"], 0.1 * exp["w_x"], rtol=1e-6)
    np.testing.assert_allclose(lstm["a"], lstm["w_x"], rtol=1e-6)


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9, 1.0])
def test_average_params_is_the_debiased_moving_average_of_the_trajectory(decay):
    """``θ̄_t = Σ_{i≤t} d^{t−i} θ_i / Σ_{i≤t} d^{t−i}``, written out over a trajectory of known params
    (SGD on a fixed gradient schedule); ``d = 1`` is the plain mean, ``d = 0`` the last params."""
    opt = rnnjax.make_optimizer("sgd", 0.1, clip=None, average=decay)
    params = {"w": jnp.array([1.0, -2.0]), "b": {"c": jnp.array(3.0)}}
    state = opt.init(params)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, rnnjax.optim.params_average(state), params))
    trajectory = []
    for t in range(6):
        grads = jax.tree.map(lambda p: jnp.full_like(p, (t - 2.5) ** 2) * jnp.sign(p), params)
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        trajectory.append(params)
    weights = np.array([decay ** (len(trajectory) - 1 - i) if decay else float(i == len(trajectory) - 1) for i in range(len(trajectory))])
    expected = jax.tree.map(lambda *ps: sum(w * np.asarray(p) for w, p in zip(weights, ps)) / weights.sum(), *trajectory)
    average = rnnjax.optim.params_average(state)
    np.testing.assert_allclose(average["w"], expected["w"], rtol=1e-6)
    np.testing.assert_allclose(average["b"]["c"], expected["b"]["c"], rtol=1e-6)
    kept = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, rnnjax.optim.ParamAverageState))
            if isinstance(s, rnnjax.optim.ParamAverageState)]
    assert len(kept) == 1 and int(kept[0].count) == 6
    assert not np.allclose(average["w"], params["w"]) or decay == 0  # it is not just the params


def test_no_average_leaves_the_optimiser_state_as_it_was():
    params = {"w": jnp.ones(3)}
    plain = rnnjax.make_optimizer("adam", 1e-3)
    assert rnnjax.optim.params_average(plain.init(params)) is None
    averaged = rnnjax.make_optimizer("adam", 1e-3, average=0.99)
    # with it: one more part at the end of the chain (its count and the average of w); without it the
    # state is as it was before averaging existed, so earlier runs' checkpoints still restore
    plain_leaves = jax.tree.leaves(plain.init(params))
    averaged_leaves = jax.tree.leaves(averaged.init(params))
    assert len(averaged_leaves) == len(plain_leaves) + 2


@pytest.mark.parametrize("decay", [-0.1, 1.01, float("nan")])
def test_bad_average_decay_is_refused(decay):
    with pytest.raises(ValueError, match="average: the decay must be in"):
        rnnjax.make_optimizer("adam", 1e-3, average=decay)
