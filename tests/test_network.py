from __future__ import annotations

import random

import pytest
import torch

from model.config import NetworkConfig
from model.network import Network, output_lengths
from model.state import stack_states, unstack_states

SMALL = dict(hidden=48, conv_channels=8, depth=3, dropout=0.0)


def _stream(net: Network, x: torch.Tensor, sizes) -> torch.Tensor:
    state = net.initial_state(x.shape[0])
    outs, i = [], 0
    for k in sizes:
        if i >= x.shape[1]:
            break
        out, state = net.step(x[:, i : i + k], state)
        outs.append(out)
        i += k
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("shared", [True, False])
def test_streaming_equals_whole_utterance_for_any_chunking(cell, shared):
    net = Network(NetworkConfig(cell=cell, shared=shared, **SMALL)).eval()
    torch.nn.init.normal_(net.feat_mean)
    x = torch.randn(2, 157, 80)
    whole, lengths = net(x, torch.tensor([157, 157]))
    assert whole.shape[1] == int(lengths[0])
    rng = random.Random(1)
    for sizes in ([1] * 157, [4] * 40, [7] * 23, [rng.randint(1, 40) for _ in range(157)], [157]):
        streamed = _stream(net, x, sizes)
        assert streamed.shape == whole.shape
        assert torch.allclose(streamed, whole, atol=1e-4)


def test_padding_does_not_change_real_frames():
    net = Network(NetworkConfig(**SMALL)).eval()
    x = torch.randn(1, 100, 80)
    alone, n = net(x, torch.tensor([100]))
    padded = torch.cat([x, torch.randn(1, 37, 80)], dim=1)
    batch, m = net(padded, torch.tensor([100]))
    assert int(n[0]) == int(m[0])
    assert torch.allclose(batch[:, : int(n[0])], alone, atol=1e-5)


def test_output_lengths():
    assert output_lengths(torch.tensor([0, 6, 7, 10, 11, 100])).tolist() == [0, 0, 1, 1, 2, 24]


@pytest.mark.parametrize("shared", [True, False])
def test_every_parameter_receives_a_gradient(shared):
    net = Network(NetworkConfig(shared=shared, **SMALL)).train()
    x = torch.randn(2, 60, 80)
    log_probs, lengths = net(x, torch.tensor([60, 45]))
    targets = torch.randint(1, 29, (2, 5))
    loss = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, lengths, torch.tensor([5, 4]))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert float(p.grad.abs().sum()) > 0, name


def test_shared_encoder_has_one_block_and_fewer_parameters():
    shared = Network(NetworkConfig(shared=True, **SMALL))
    unshared = Network(NetworkConfig(shared=False, **SMALL))
    assert len(shared.blocks) == 1 and len(unshared.blocks) == SMALL["depth"]
    block = sum(p.numel() for p in shared.blocks[0].parameters())
    n_shared = sum(p.numel() for p in shared.parameters())
    n_unshared = sum(p.numel() for p in unshared.parameters())
    assert n_unshared - n_shared == block * (SMALL["depth"] - 1)


def test_batched_streams_match_single_streams():
    net = Network(NetworkConfig(**SMALL)).eval()
    xs = [torch.randn(1, 64, 80) for _ in range(3)]
    singles = [_stream(net, x, [16] * 4) for x in xs]
    states = [net.initial_state(1) for _ in xs]
    outs = [[] for _ in xs]
    for i in range(0, 64, 16):
        batch = stack_states(states)
        out, batch = net.step(torch.cat([x[:, i : i + 16] for x in xs]), batch)
        states = unstack_states(batch, [batch.frames_out] * 3)
        for j in range(3):
            outs[j].append(out[j : j + 1])
    for single, pieces in zip(singles, outs, strict=True):
        assert torch.allclose(torch.cat(pieces, dim=1), single, atol=1e-5)


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        Network(NetworkConfig(cell="transformer"))
    with pytest.raises(ValueError):
        NetworkConfig.from_dict({"hidden": 8, "colour": "red"})
