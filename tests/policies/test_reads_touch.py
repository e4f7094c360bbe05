"""Overfit gates: every learned policy of the TLA paper must read its tactile input.

Each policy memorizes 32 training samples with distinct answers, in its default tactile input representation;
its loss with the images shuffled among the samples must then be clearly above its loss with the real ones. A
policy that ignores its input (and learns the mean answer) has the same loss either way.
"""

import numpy as np
import pytest
import torch

from taclab.data import load_arrays
from taclab.papers.tla.instruct import ActionCodec
from taclab.papers.tla.learning import SPEC
from taclab.policies import make_policy
from taclab.train.loop import policy_io

N = 32


@pytest.fixture(scope="module")
def samples(tiny_dataset):
    """The first 32 training samples whose answers (as the TLA model writes them) all differ."""
    a = load_arrays(tiny_dataset, "train", columns=["tactile", "label", "shape"], progress=False)
    codec, seen, idx = ActionCodec(), set(), []
    for i, y in enumerate(a["label"]):
        text = codec.encode(y)
        if text not in seen:
            seen.add(text)
            idx.append(i)
    assert len(idx) >= N, "the test data needs 32 samples with distinct answers"
    idx = np.array(idx[:N])
    return {k: v[idx] for k, v in a.items()}


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _mean_loss(policy, inputs, y, draws):
    with torch.no_grad():
        return float(np.mean([policy.loss(inputs, y, torch.Generator().manual_seed(s)) for s in range(draws)]))


SHUFFLE = np.roll(np.arange(N), 1)  # every sample gets its neighbour's images


@pytest.mark.parametrize("name,steps,draws", [("bc", 150, 1), ("dp", 300, 8)])
def test_bc_and_dp_memorize_and_read_touch(samples, one_thread, name, steps, draws):
    """Default representation (difference from the no-contact image, per-channel standardization), composites
    downsized to 48 px to keep the test short."""
    torch.manual_seed(0)
    batch = {"tactile": samples["tactile"]}
    p = make_policy(name, io=policy_io(make_policy(name).__class__, SPEC, batch), image_size=48)
    assert p.cfg.tactile.subtract == "reference" and p.cfg.tactile.normalize == "channel"
    p.fit_stats(batch, samples["label"])
    y = torch.as_tensor(samples["label"], dtype=torch.float32)
    real, shuffled = p.prepare(batch), p.prepare({"tactile": samples["tactile"][SHUFFLE]})
    opt = torch.optim.AdamW(p.model.parameters(), lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    p.model.train()
    for _ in range(steps):
        p.loss(real, y, g).backward()
        opt.step()
        opt.zero_grad()
    p.model.eval()
    loss_real, loss_shuffled = _mean_loss(p, real, y, draws), _mean_loss(p, shuffled, y, draws)
    assert loss_shuffled > 3 * loss_real, (loss_real, loss_shuffled)
    pred = p.predict(batch).actions
    nonzero = samples["label"] != 0
    right = (np.sign(pred) == np.sign(samples["label"]))[nonzero].mean()
    assert right > 0.9, right


TLA_SIZE = 84  # 9 image tokens of the tiny model


@pytest.fixture(scope="module")
def tiny_tla(tmp_path_factory):
    from taclab.papers.tla import init_tiny

    return init_tiny(tmp_path_factory.mktemp("tla_reads_touch") / "tiny", image_size=TLA_SIZE, seed=0)


def test_tla_memorizes_distinct_answers_exactly_and_reads_touch(samples, tiny_tla, one_thread):
    """The tiny TLA model in its default representation (``center``, gain 128, layout ``pad_colours``) writes all
    32 answers exactly (greedy decoding), and its loss with shuffled images is far above its loss with the real
    ones."""
    from taclab.papers.tla import TLAConfig, TLAModel

    cfg = TLAConfig(model=str(tiny_tla), image_size=TLA_SIZE, finetune="full", freeze_vision=False, num_beams=1)
    assert cfg.tactile.normalize == "center" and cfg.tactile.image_gain == 128 and cfg.layout == "pad_colours"
    tla = TLAModel(cfg)
    t, y = samples["tactile"], samples["label"]
    tla.fit_tactile_stats(t)
    opt = torch.optim.AdamW(tla.trainable_parameters(), lr=1e-3, weight_decay=0.0)
    rng = np.random.default_rng(0)
    tla.model.train()
    for _ in range(STEPS_TLA):
        b = rng.choice(N, 8, replace=False)
        tla.loss(tla.batch(t[b], "square", y[b])).backward()
        torch.nn.utils.clip_grad_norm_(tla.trainable_parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    tla.model.eval()
    with torch.no_grad():
        real = float(tla.loss(tla.batch(t, "square", y)))
        shuffled = float(tla.loss(tla.batch(t[SHUFFLE], "square", y)))
    _, _, texts = tla.predict(t, "square")
    exact = sum(a.replace(" ", "") == tla.codec.encode(b).replace(" ", "") for a, b in zip(texts, y, strict=True))
    assert exact == N and shuffled > 5 * real, (exact, real, shuffled)


STEPS_TLA = 400
