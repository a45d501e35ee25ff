"""The ONNX export of the streaming step: chunked through ONNX Runtime, it gives the torch model's
whole-utterance output within 1e-4 whatever the chunk size."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from model.config import NetworkConfig
from model.network import Network
from model.onnx_export import export_step, io_names

ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported graph")
pytest.importorskip("onnx", reason="torch.onnx needs the onnx package to export")

SMALL = dict(hidden=48, conv_channels=8, depth=3, dropout=0.0)
TOL = 1e-4


def _session(graph: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])


def _stream(sess: ort.InferenceSession, net: Network, x: np.ndarray, sizes) -> np.ndarray:
    inputs, _ = io_names(net)
    state = net.initial_state(x.shape[0])
    values = [state.pending.numpy(), state.hidden.numpy()] + ([] if state.cell is None else [state.cell.numpy()])
    outs, i = [], 0
    for k in sizes:
        if i >= x.shape[1]:
            break
        log_probs, *values = sess.run(None, dict(zip(inputs, [x[:, i : i + k], *values], strict=True)))
        outs.append(log_probs)
        i += k
    assert values[0].shape[1] < 7  # every complete frame was emitted
    return np.concatenate(outs, axis=1)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("shared", [True, False])
def test_onnx_streaming_equals_torch_whole_utterance_for_any_chunking(cell, shared):
    net = Network(NetworkConfig(cell=cell, shared=shared, **SMALL)).eval()
    torch.nn.init.normal_(net.feat_mean)
    x = torch.randn(2, 157, 80)
    with torch.inference_mode():
        whole, _ = net(x, torch.tensor([157, 157]))
    sess = _session(export_step(net))
    rng = random.Random(1)
    for sizes in ([1] * 157, [3] * 53, [4] * 40, [7] * 23, [rng.randint(0, 40) for _ in range(400)], [157]):
        streamed = _stream(sess, net, x.numpy(), sizes)
        assert streamed.shape == tuple(whole.shape)
        assert np.abs(streamed - whole.numpy()).max() <= TOL


def test_shipped_model_graph_matches_its_torch_network():
    from model.checkpoint import load_model
    from model.container import onnx_graph, read_model_arrays

    bundle = load_model()
    graph = onnx_graph(read_model_arrays(None))
    assert graph is not None, "model/assets/default.esm carries no ONNX graph: rerun `edgescribe export --codec keep`"
    x = torch.randn(1, 500, 80) * bundle.network.feat_std + bundle.network.feat_mean
    with torch.inference_mode():
        whole, _ = bundle.network(x, torch.tensor([500]))
    sess = _session(graph)
    for size in (5, 16, 100):
        streamed = _stream(sess, bundle.network, x.numpy(), [size] * 100)
        assert np.abs(streamed - whole.numpy()).max() <= TOL


def test_export_embeds_a_graph_that_the_onnx_engine_serves(tmp_path):
    from model.checkpoint import ModelBundle, load_model, save_model
    from model.cli_export import add_arguments, run
    from model.runtime import load_serving_model

    src = tmp_path / "m.esm"
    bundle = ModelBundle.new(NetworkConfig(cell="lstm", hidden=32, conv_channels=4, depth=2))
    torch.nn.init.normal_(bundle.network.feat_mean)
    save_model(bundle, src)
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args([str(src), "--codec", "int8", "--out", str(tmp_path / "q.esm")])) == 0
    served = load_serving_model(tmp_path / "q.esm", engine="onnxruntime")
    assert served.engine == "onnxruntime" and served.vocab.symbols == bundle.vocab.symbols
    reference = load_model(tmp_path / "q.esm").network  # the int8 weights as decoded
    assert np.allclose(served.acoustic.feat_mean, reference.feat_mean.numpy())
    x = (torch.randn(1, 90, 80) + reference.feat_mean).numpy()
    with torch.inference_mode():
        whole, _ = reference(torch.from_numpy(x), torch.tensor([90]))
    state, outs = served.acoustic.initial_state(), []
    for i in range(0, 90, 13):
        out, state = served.acoustic.step(x[0, i : i + 13], state)
        outs.append(out)
    assert state.frames_out == whole.shape[1]
    assert np.abs(np.concatenate(outs) - whole[0].numpy()).max() <= TOL
