"""The training side: a tiny end-to-end run that is killed and resumed, bad data, and the pieces.

The end-to-end runs use the six espeak-ng fixtures and a model of a few thousand parameters, so a
few dozen steps take seconds on one thread.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from model.checkpoint import load_model
from model.config import FeatureConfig, NetworkConfig
from model.recognize import Recognizer
from model.tokens import Vocabulary
from model.training import augment
from model.training.batching import BatchPlan, epoch_batches, shard
from model.training.config import AugmentConfig, TrainConfig, config_from_args
from model.training.data import Skipped, SpeechDataset, load_utterances
from model.training.loop import config_changes, lr_factor, train
from model.training.manifest import read_manifest
from model.training.metrics import corpus_error_rates, edit_distance

TINY_NET = NetworkConfig(conv_channels=4, hidden=32, depth=2, dropout=0.1)


def tiny_config(fixtures_dir: Path, out: Path, **overrides) -> TrainConfig:
    manifest = str(fixtures_dir / "tiny.jsonl")
    base = dict(
        train=(manifest,), valid=(manifest,), out=str(out), network=TINY_NET, max_steps=16,
        max_batch_seconds=4.0, max_utterance_seconds=4.0, warmup_steps=4, lr=3e-3, threads=1, workers=0,
        log_every=2, valid_every=8, checkpoint_every=5, progress=False, stats_utterances=6,
    )
    base.update(overrides)
    return TrainConfig(**base)


def weights(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_killed_run_resumes_to_the_same_weights_even_past_a_truncated_checkpoint(fixtures_dir, tmp_path):
    # Augmentation on, and one loader worker process: both must be reproducible across the kill.
    straight = train(tiny_config(fixtures_dir, tmp_path / "a", workers=1))

    cfg = tiny_config(fixtures_dir, tmp_path / "b", workers=1)
    stopped = train(cfg, stop_after=12)  # "killed" after step 12; checkpoints exist at 5 and 10
    assert stopped.export is None
    newest = tmp_path / "b" / "checkpoints" / "step-00000010.ckpt"
    newest.write_bytes(newest.read_bytes()[:-100])  # a torn write of the newest checkpoint
    resumed = train(cfg, resume=True)  # must fall back to step 5 and redo 6..16

    assert resumed.step == straight.step == 16
    a, b = weights(straight.network), weights(resumed.network)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # metrics.jsonl holds each step once: rows the killed run wrote after step 5 were dropped.
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    loss_steps = [r["step"] for r in rows if "loss" in r]
    assert loss_steps == sorted(set(loss_steps)) == list(range(2, 17, 2))

    # The run ends with the exported model, which loads and transcribes.
    report = resumed.export
    assert report is not None and report.path == tmp_path / "b" / "model.esm" and report.path.exists()
    assert report.bytes < report.fp32_bytes
    bundle = load_model(report.path)
    assert set(bundle.codecs.values()) >= {"kmeans4"}
    from model.audio import load_audio

    segments = Recognizer(bundle).transcribe(load_audio(fixtures_dir / "utt00.flac"))
    assert isinstance(segments, list)  # 16 steps teach nothing; test_overfit checks the words


def test_new_run_refuses_to_overwrite_checkpoints(fixtures_dir, tmp_path):
    cfg = tiny_config(fixtures_dir, tmp_path / "run", max_steps=5, valid=())
    train(cfg)
    with pytest.raises(ValueError, match="--resume"):
        train(cfg)


def _bad_manifest(fixtures_dir: Path, tmp_path: Path) -> Path:
    for i in (0, 1, 4):
        shutil.copy(fixtures_dir / f"utt0{i}.flac", tmp_path)
    (tmp_path / "corrupt.flac").write_bytes(b"this is not audio at all" * 100)
    rows = [
        {"audio": "utt00.flac", "text": "Hello, World!", "duration": 1.26},
        {"audio": "utt01.flac", "text": "turn on the light", "duration": 1.322},
        {"audio": "missing.flac", "text": "no such file", "duration": 1.0},
        {"audio": "corrupt.flac", "text": "corrupt audio", "duration": 1.0},
        {"audio": "utt04.flac", "text": "?!", "duration": 0.808},  # empty after normalisation
        {"audio": "utt04.flac", "text": "\u4f60\u597d", "duration": 0.808},  # outside the vocabulary
        {"audio": "utt04.flac", "text": "yes " * 20, "duration": 0.808},  # too long for 0.8 s (manifest check)
        # The manifest's duration lies: only the decoded audio shows that CTC cannot align this.
        {"audio": "utt04.flac", "text": "yes " * 8, "duration": 3.0},
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bad_utterances_are_skipped_counted_and_reported_per_epoch(fixtures_dir, tmp_path):
    manifest = _bad_manifest(fixtures_dir, tmp_path)
    items, skipped = load_utterances([str(manifest)], Vocabulary(), FeatureConfig())
    assert skipped == Counter(empty_text=1, unknown_chars=1, text_too_long=1, missing_audio=1)
    assert [u.text for u in items[:2]] == ["hello world", "turn on the light"]

    ds = SpeechDataset(items, FeatureConfig())
    reasons = [ex.reason if isinstance(ex, Skipped) else "ok" for ex in (ds[i] for i in range(len(ds)))]
    assert reasons == ["ok", "ok", "unreadable_audio", "text_too_long"]

    out = tmp_path / "run"
    cfg = tiny_config(fixtures_dir, out, train=(str(manifest),), valid=(), epochs=2, max_steps=None,
                      max_batch_seconds=10.0)
    result = train(cfg)
    assert result.export is not None and result.export.path.exists()
    ends = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r.get("epoch_end")]
    assert [r["epoch"] for r in ends] == [0, 1]
    expected = {"empty_text": 1, "unknown_chars": 1, "text_too_long": 2, "missing_audio": 1, "unreadable_audio": 1}
    assert all(r["skipped"] == expected for r in ends)


def test_a_manifest_whose_audio_is_mostly_missing_is_refused_naming_a_path(fixtures_dir, tmp_path):
    """A manifest copied away from its audio (relative paths) once trained a run on nothing but its
    other manifests for an epoch, reported only at the epoch's end: now it is refused at the start."""
    from model.training.manifest import ManifestError

    rows = [{"audio": f"audio/u{i}.flac", "text": "hello", "duration": 1.0} for i in range(4)]
    path = tmp_path / "moved.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ManifestError, match=r"4 of 4 audio files do not exist .*audio/u0\.flac"):
        load_utterances([str(path)], Vocabulary(), FeatureConfig())


def test_edit_distance_matches_a_plain_dynamic_programme():
    def reference(a, b):
        d = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            prev, d[0] = d[0], i
            for j, y in enumerate(b, 1):
                prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
        return d[-1]

    rng = random.Random(0)
    for _ in range(300):
        a = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 12)))
        assert edit_distance(a, b) == reference(a, b), (a, b)
    rates = corpus_error_rates(["the cat sat", "hello"], ["the cat sat down", "yellow"])
    assert (rates.word_errors, rates.words) == (2, 4)  # one insertion, one substitution
    assert rates.wer == pytest.approx(0.5)
    assert (rates.char_errors, rates.chars) == (5 + 2, 11 + 5)  # " down"; h->y and an inserted w


def test_batches_are_a_function_of_seed_and_epoch_and_respect_the_budget():
    rng = np.random.default_rng(1)
    durations = rng.uniform(0.5, 8.0, size=200).tolist()
    weights = [1.0] * 100 + [2.0] * 50 + [0.5] * 50
    a = epoch_batches(durations, weights, 20.0, 16, seed=3, epoch=4)
    assert a == epoch_batches(durations, weights, 20.0, 16, seed=3, epoch=4)
    assert a != epoch_batches(durations, weights, 20.0, 16, seed=3, epoch=5)
    for batch in a:
        assert len(batch) <= 16
        assert len(batch) == 1 or max(durations[i] for i in batch) * len(batch) <= 20.0
    counts = Counter(i for batch in a for i in batch)
    assert all(counts[i] == 1 for i in range(100)) and all(counts[i] == 2 for i in range(100, 150))
    assert 10 <= sum(counts[i] for i in range(150, 200)) <= 40  # about half of the 0.5-weight ones
    ranks = [shard(a, r, 3) for r in range(3)]
    assert len({len(s) for s in ranks}) == 1
    # Resuming at batch k of an epoch yields exactly the tail of that epoch, with the same seeds.
    plan = BatchPlan(durations, weights, 20.0, 16, seed=3)
    plan.set_position(4, 0)
    full = list(plan)
    plan.set_position(4, 7)
    assert list(plan) == full[7:]


def test_lr_warms_up_then_decays_to_the_floor():
    f = [lr_factor(s, 10, 100, 0.05) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(f[10:], f[11:], strict=False))
    assert lr_factor(100, 10, 100, 0.05) == pytest.approx(0.05)


def test_a_resume_names_the_settings_that_changed_and_not_tuples_read_back_as_lists():
    saved = TrainConfig(train=("a.jsonl",), out="run", max_steps=4000).to_dict()
    on_disk = json.loads(json.dumps(saved))  # train_config.json: every tuple a list
    assert config_changes(saved, on_disk) == []
    assert config_changes(saved, {**on_disk, "max_steps": 1800}) == ["max_steps"]
    assert config_changes(saved, {**on_disk, "lr": 1.0, "seed": 3}) == ["lr", "seed"]


def test_augmentations_are_switchable_and_seeded(fixtures_dir):
    from model.audio import load_audio

    wave = load_audio(fixtures_dir / "utt02.flac")
    fast = augment.speed_perturb(wave, 1.1)
    assert abs(fast.size - wave.size / 1.1) <= 1
    assert np.array_equal(augment.augment_waveform(wave, AugmentConfig().disabled(), np.random.default_rng(0)), wave)
    cfg = AugmentConfig(speed_prob=1.0, noise_prob=1.0, gain_prob=1.0)
    x = augment.augment_waveform(wave, cfg, np.random.default_rng(5))
    assert np.array_equal(x, augment.augment_waveform(wave, cfg, np.random.default_rng(5)))
    assert x.size != wave.size and np.abs(x).max() <= 1.0
    noisy = augment.add_noise(wave, 10.0, np.random.default_rng(1))
    snr = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2) / np.mean((noisy - wave).astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=0.1)
    feats = torch.randn(200, 80)
    masked = augment.spec_augment(feats, AugmentConfig(specaugment_prob=1.0), np.random.default_rng(2))
    assert masked.shape == feats.shape and not torch.equal(masked, feats)
    assert torch.equal(augment.spec_augment(feats, AugmentConfig(specaugment=False), np.random.default_rng(2)), feats)


def test_reverberation_decays_like_a_room_and_keeps_length_and_power(fixtures_dir):
    from model.audio import load_audio

    rir = augment.synthetic_rir(0.5, 6.0, 16000, np.random.default_rng(0))
    assert rir.size == 8000 and rir[0] == 1.0
    assert 10 * np.log10(1.0 / np.sum(rir[1:] ** 2)) == pytest.approx(6.0)  # direct-to-reverberant ratio
    tenth = rir.size // 10
    decay_db = 10 * np.log10(np.mean(rir[1:tenth] ** 2) / np.mean(rir[-tenth:] ** 2))
    assert 45 < decay_db < 65  # -60 dB over rt60, measured between its first and last tenths (~54 dB)

    click = np.zeros(16000, np.float32)
    click[1000] = 0.5
    wet = augment.reverberate(click, rir)
    assert wet.size == click.size and np.mean(wet**2) == pytest.approx(np.mean(click**2), rel=1e-4)
    assert np.abs(wet[1100:9000]).max() > 1e-3  # a tail after the click...
    assert np.abs(wet[:1000]).max() < 1e-6  # ...and nothing before it (but FFT rounding)

    wave = load_audio(fixtures_dir / "utt02.flac")
    only_reverb = AugmentConfig(speed=False, noise=False, gain=False, reverb=True, reverb_prob=1.0)
    x = augment.augment_waveform(wave, only_reverb, np.random.default_rng(3))
    assert x.size == wave.size and not np.array_equal(x, wave)
    assert np.array_equal(x, augment.augment_waveform(wave, only_reverb, np.random.default_rng(3)))
    # Off (the default), it draws no random numbers: runs made before it existed replay exactly.
    rng = np.random.default_rng(4)
    before = rng.bit_generator.state
    augment.augment_waveform(wave, AugmentConfig(speed=False, noise=False, gain=False), rng)
    assert rng.bit_generator.state == before and AugmentConfig().reverb is False


def test_config_file_is_overridden_by_flags(tmp_path):
    import argparse

    (tmp_path / "c.json").write_text(json.dumps({
        "max_steps": 100, "lr": 0.01, "network": {"hidden": 48, "cell": "lstm"}, "augment": {"noise": False},
        "depth": 3,
    }))
    from model.training.cli_train import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)  # the CLI's own parser: its per-process flags must not reach the config
    args = parser.parse_args(["--config", str(tmp_path / "c.json"), "--train", "a.jsonl:2", "--out", "r",
                              "--hidden", "64", "--no-shared", "--resume", "--stop-at-step", "7"])
    cfg = config_from_args(args)
    assert cfg.max_steps == 100 and cfg.lr == 0.01 and cfg.train == ("a.jsonl:2",)
    assert (cfg.network.hidden, cfg.network.cell, cfg.network.depth, cfg.network.shared) == (64, "lstm", 3, False)
    assert cfg.augment.noise is False and cfg.augment.speed is True
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    (tmp_path / "bad.json").write_text(json.dumps({"learning_rate": 1}))
    with pytest.raises(ValueError, match="learning_rate"):
        config_from_args(parser.parse_args(["--config", str(tmp_path / "bad.json"), "--train", "a", "--out", "r"]))


def test_manifest_weights_oversample(fixtures_dir, tmp_path):
    manifest = fixtures_dir / "tiny.jsonl"
    items, _ = load_utterances([str(manifest), f"{manifest}:2"], Vocabulary(), FeatureConfig())
    assert len(items) == 2 * len(list(read_manifest(manifest)))
    assert [u.weight for u in items] == [1.0] * 6 + [2.0] * 6


def test_codebook_finetuning_lowers_the_loss_and_saves_the_shared_values_exactly(fixtures_dir, tmp_path):
    from model.checkpoint import ModelBundle
    from model.training.codebook import ClusteredNetwork, finetune_codebooks
    from model.training.data import collate
    from model.training.loop import ctc_loss

    items, _ = load_utterances([str(fixtures_dir / "tiny.jsonl")], Vocabulary(), FeatureConfig())
    ds = SpeechDataset(items, FeatureConfig())
    batch = collate([ds[i] for i in range(len(ds))])
    bundle = ModelBundle.new(TINY_NET)
    cpu = torch.device("cpu")

    def loss_fn(net, b):
        return ctc_loss(net, b, cpu, net.feat_mean)

    with torch.no_grad():
        before = float(loss_fn(ClusteredNetwork(bundle.network).eval(), batch))
    compressed = finetune_codebooks(bundle, [batch], steps=20, loss_fn=loss_fn, lr=1e-2)
    with torch.no_grad():
        after = float(loss_fn(bundle.network.eval(), batch))
    assert after < before

    size = compressed.save(tmp_path / "m.esm")
    loaded = load_model(tmp_path / "m.esm")
    assert size == (tmp_path / "m.esm").stat().st_size
    compressed_names = [k for k, c in loaded.codecs.items() if c == "kmeans4"]
    assert compressed_names
    for name in compressed_names:
        w = loaded.network.state_dict()[name]
        assert torch.equal(w, bundle.network.state_dict()[name])  # written as is, not clustered again
        assert w.unique().numel() <= 16


def test_cache_keeps_decoded_audio_so_files_are_read_once(fixtures_dir, tmp_path):
    shutil.copy(fixtures_dir / "utt00.flac", tmp_path / "a.flac")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": "a.flac", "text": "hello world", "duration": 1.26}) + "\n")
    items, _ = load_utterances([str(manifest)], Vocabulary(), FeatureConfig())
    cached, uncached = SpeechDataset(items, FeatureConfig(), cache=True), SpeechDataset(items, FeatureConfig())
    first = cached[0]
    uncached[0]
    (tmp_path / "a.flac").unlink()
    again = cached[0]
    assert not isinstance(again, Skipped)
    assert torch.equal(again.features, first.features)  # a 16-bit FLAC survives the int16 cache exactly
    assert isinstance(uncached[0], Skipped)


def test_init_fine_tunes_from_a_model_file_keeping_its_size_and_statistics(fixtures_dir, tmp_path):
    first = train(tiny_config(fixtures_dir, tmp_path / "a", max_steps=3, valid=()))
    base = tmp_path / "a" / "model-fp32.esm"
    before = load_model(base)
    # Flags asking for another size are ignored: the model file says what it is.
    cfg = tiny_config(fixtures_dir, tmp_path / "b", max_steps=2, valid=(), init=str(base),
                      network=NetworkConfig(hidden=8, conv_channels=2, depth=1))
    tuned = train(cfg)
    assert tuned.network.cfg == first.network.cfg
    assert torch.equal(tuned.network.feat_mean.cpu(), before.network.feat_mean)
    moved = [k for k, v in weights(tuned.network).items() if not torch.equal(v.cpu(), before.network.state_dict()[k])]
    assert "blocks.0.weight_ih_l0" in moved


def test_training_in_chunks_stops_with_a_checkpoint_and_resumes_to_the_same_weights(fixtures_dir, tmp_path):
    # `edgescribe train --stop-at-step N`: the process ends at step N with a checkpoint of that step
    # (7 is not a multiple of checkpoint_every), exports nothing, and the next --resume finishes the
    # schedule exactly as one uninterrupted run would. Asking again for a chunk already done is a no-op.
    straight = train(tiny_config(fixtures_dir, tmp_path / "a"))
    cfg = tiny_config(fixtures_dir, tmp_path / "b")
    first = train(cfg, stop_after=7, checkpoint_at_stop=True)
    assert first.step == 7 and first.export is None
    assert (tmp_path / "b" / "checkpoints" / "step-00000007.ckpt").exists()
    assert not (tmp_path / "b" / "model.esm").exists()
    again = train(cfg, resume=True, stop_after=7, checkpoint_at_stop=True)
    assert again.step == 7 and again.export is None
    resumed = train(cfg, resume=True)
    assert resumed.step == 16 and resumed.export is not None
    a, b = weights(straight.network), weights(resumed.network)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_a_bf16_step_matches_the_fp32_loss_and_gradients(fixtures_dir):
    """bf16 autocast (--precision bf16) changes the arithmetic, not the objective: on the default-size
    network the loss agrees within 1% and the gradient points the same way (cosine > 0.99)."""
    from model.checkpoint import ModelBundle
    from model.training.data import collate
    from model.training.loop import ctc_loss

    items, _ = load_utterances([str(fixtures_dir / "tiny.jsonl")], Vocabulary(), FeatureConfig())
    ds = SpeechDataset(items, FeatureConfig())
    batch = collate([ds[i] for i in range(len(ds))])
    net = ModelBundle.new(NetworkConfig(dropout=0.0)).network.train()
    results = {}
    for precision in ("fp32", "bf16"):
        net.zero_grad()
        loss = ctc_loss(net, batch, torch.device("cpu"), net.feat_mean, precision)
        loss.backward()
        assert loss.dtype == torch.float32
        grad = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
        results[precision] = (float(loss.detach()), grad)
    (loss32, grad32), (loss16, grad16) = results["fp32"], results["bf16"]
    assert abs(loss16 - loss32) <= 0.01 * abs(loss32), (loss32, loss16)
    assert float(torch.nn.functional.cosine_similarity(grad32, grad16, dim=0)) > 0.99
    assert not torch.equal(grad32, grad16)  # autocast really ran: bf16 arithmetic differs somewhere


@pytest.mark.parametrize("kind", ["vtlp", "eq", "babble", "lossy"])
def test_speaker_and_channel_augmentations_are_seeded_and_draw_nothing_when_off(fixtures_dir, kind):
    """Issue 11's levers: off (the default), they change nothing and draw no random numbers, so the
    recorded runs replay exactly; on, the same seed gives the same result and the audio changes."""
    from model.audio import load_audio
    from model.training.data import SpeechDataset

    items, _ = load_utterances([str(fixtures_dir / "tiny.jsonl")], Vocabulary(), FeatureConfig())
    plain = SpeechDataset(items, FeatureConfig(), AugmentConfig().disabled())
    on = SpeechDataset(items, FeatureConfig(), replace(AugmentConfig().disabled(), **{kind: True, f"{kind}_prob": 1.0}))
    assert torch.equal(plain[(0, 3)].features, SpeechDataset(items, FeatureConfig())[0].features)
    first, again = on[(0, 3)].features, on[(0, 3)].features
    assert torch.equal(first, again)
    assert first.shape == plain[(0, 3)].features.shape and not torch.equal(first, plain[(0, 3)].features)
    wave = load_audio(fixtures_dir / "utt02.flac")
    rng = np.random.default_rng(9)
    assert np.array_equal(augment.augment_waveform(wave, AugmentConfig().disabled(), rng, talkers=plain.talkers), wave)
    assert augment.vtlp_factor(AugmentConfig().disabled(), rng) == 1.0
    assert rng.random() == np.random.default_rng(9).random()  # nothing was drawn


def test_vtlp_warps_the_filterbank_and_leaves_it_exact_at_one():
    from model.features import FbankExtractor, mel_banks

    cfg = FeatureConfig()
    extractor = FbankExtractor(cfg)
    assert torch.equal(mel_banks(cfg, extractor.fft_size, 1.0), extractor.banks)
    peaks = {w: mel_banks(cfg, extractor.fft_size, w).argmax(dim=1).float() for w in (0.9, 1.0, 1.1)}
    middle = slice(10, 70)  # away from the fixed ends of the warp
    assert (peaks[0.9][middle] > peaks[1.0][middle]).all() and (peaks[1.1][middle] < peaks[1.0][middle]).all()
    wave = torch.randn(16000) * 0.1
    assert torch.equal(extractor(wave), extractor(wave, 1.0)) and not torch.equal(extractor(wave), extractor(wave, 1.1))


@pytest.mark.parametrize("codec", ["opus", "mp3", "telephone"])
def test_codec_round_trips_keep_length_and_alignment(fixtures_dir, codec):
    from model.audio import load_audio

    wave = load_audio(fixtures_dir / "utt02.flac")
    out = augment.codec_round_trip(wave, codec, 16)
    assert out.shape == wave.shape and out.dtype == np.float32
    assert np.corrcoef(wave, out)[0, 1] > 0.95  # the same speech, not shifted by the codec's delay
    assert not np.array_equal(out, wave)


def test_babble_and_colouring_keep_their_levels(fixtures_dir):
    from model.audio import load_audio

    wave = load_audio(fixtures_dir / "utt02.flac")
    other = load_audio(fixtures_dir / "utt01.flac")
    mixed = augment.add_babble(wave, [other, other[::-1].copy()], 12.0)
    snr = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2) / np.mean((mixed - wave).astype(np.float64) ** 2))
    assert mixed.shape == wave.shape and snr == pytest.approx(12.0, abs=0.05)
    coloured = augment.colour(wave, 8.0, np.random.default_rng(0))
    assert np.mean(coloured.astype(np.float64) ** 2) == pytest.approx(np.mean(wave.astype(np.float64) ** 2), rel=1e-3)
    assert not np.allclose(coloured, wave, atol=1e-3)


def test_measured_room_responses_are_used_for_reverberation(fixtures_dir, tmp_path):
    import wave as wavfile

    from model.audio import load_audio

    rir = np.zeros(4000)
    rir[100], rir[900], rir[2500] = 0.8, 0.3, -0.2  # a silent lead-in, the direct path, two echoes
    with wavfile.open(str(tmp_path / "room.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((rir * 32767).astype("<i2").tobytes())
    rooms = augment.load_rirs(str(tmp_path))
    assert len(rooms) == 1 and rooms[0][0] == 1.0 and rooms[0].size == 3900  # starts at the direct path
    wave = load_audio(fixtures_dir / "utt02.flac")
    cfg = replace(AugmentConfig().disabled(), reverb=True, reverb_prob=1.0, reverb_rirs=str(tmp_path))
    outs = {augment.augment_waveform(wave, cfg, np.random.default_rng(s), rooms=rooms).tobytes() for s in range(8)}
    assert augment.reverberate(wave, rooms[0]).tobytes() in outs  # some utterances got the measured room
    assert len(outs) > 1  # and some a synthetic one


def test_bf16_warning_reads_the_cpu_flags(tmp_path):
    from model.training.loop import cpu_lacks_bf16

    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    bf16 = tmp_path / "bf16"
    bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert cpu_lacks_bf16(str(plain))
    assert not cpu_lacks_bf16(str(bf16))
    assert not cpu_lacks_bf16(str(tmp_path / "missing"))  # no claim where the flags cannot be read
