"""From waveform to words: features, the network's streaming step, endpointing and decoding.

One ``Recognizer`` holds the shared model; each ``Stream`` owns its own explicit state (feature
buffer, network state, the current segment's log-probs). Whole files go through the same streaming
path in bounded chunks, so a long file needs bounded memory and comes out already split into
segments at pauses.

Everything here is NumPy: the network runs on whichever engine the model was loaded for
(``acoustic.py``: torch or ONNX Runtime), so serving on ONNX Runtime never imports torch.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .acoustic import Acoustic, TorchAcoustic
from .config import DecodingConfig
from .ctc import FRAME_SECONDS, BeamSearch, BeamState, Hypothesis, Transcript, Word, WordScorer, greedy_decode
from .fbank import Fbank, StreamingFbank
from .grammar import Grammar
from .state import RECEPTIVE_FIELD
from .templates import MAX_GRAPH_NODES, Intent, Templates, content_key

if TYPE_CHECKING:
    from .checkpoint import ModelBundle
    from .runtime import ServingModel

ENDPOINT_SECONDS = 0.6  # a pause this long after speech closes a segment (Vosk/Kaldi use 0.5-1.0 s)
MAX_SEGMENT_SECONDS = 30.0  # bounds a segment's memory and latency when nobody pauses
# Under sentence templates a pause closes a segment only where a command can end: a sentence that
# is complete and cannot go on closes at the usual pause; one that is complete but may go on ("a
# large latte" [with oat milk]) waits this long; an unfinished one waits for the longer silence.
TEMPLATE_PAUSE_SECONDS = 1.0
TEMPLATE_MAX_PAUSE_SECONDS = 2.0
TEMPLATE_CACHE_SIZE = 8  # compiled templates kept per recognizer, by content hash (each up to max_nodes)


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    # The segment's n best transcripts, best first (the first is ``text``), when the stream was asked for
    # them; times on the same clock as ``words``.
    alternatives: tuple[Hypothesis, ...] = ()
    intent: Intent | None = None  # under sentence templates: the intent and slots of ``text``


def acoustic_of(model: Any) -> Acoustic:
    """A ``ServingModel``'s engine, or a torch ``ModelBundle``'s network on the torch engine."""
    acoustic = getattr(model, "acoustic", None)
    return acoustic if acoustic is not None else TorchAcoustic(model.network)


class Recognizer:
    """The shared, read-only part: model, feature extractor and decoding settings.

    ``bundle`` is a ``runtime.ServingModel`` (any engine) or a ``checkpoint.ModelBundle`` (torch).
    """

    def __init__(self, bundle: ServingModel | ModelBundle, decoding: DecodingConfig | None = None,
                 lm: WordScorer | None = None):
        self.bundle = bundle
        self.acoustic = acoustic_of(bundle)
        self.extractor = Fbank(bundle.features)
        self.decoding = decoding or bundle.decoding
        self.lm = lm
        self._templates: dict[str, Templates] = {}
        self._templates_lock = threading.Lock()

    @property
    def engine(self) -> str:
        return self.acoustic.engine

    @property
    def sample_rate(self) -> int:
        return self.bundle.features.sample_rate

    def decode(self, log_probs: np.ndarray, frame_offset: int = 0, hotwords: Sequence[str] = (),
               grammar: Grammar | Templates | None = None) -> Transcript:
        """``grammar``: decode to one of its phrases (or "[unk]", or nothing) instead of free text."""
        search = self.beam_search(hotwords, grammar)
        if search is None:
            return greedy_decode(log_probs, self.bundle.vocab, frame_offset)
        return search.decode(log_probs, frame_offset)

    def beam_search(self, hotwords: Sequence[str] = (),
                    grammar: Grammar | Templates | None = None) -> BeamSearch | None:
        """The search these settings call for; None where greedy decoding gives the same answer."""
        if self.decoding.beam_size <= 1 and not hotwords and self.lm is None and grammar is None:
            return None
        cfg = dataclasses.replace(self.decoding, hotwords=tuple(self.decoding.hotwords) + tuple(hotwords))
        if isinstance(grammar, Templates):
            cfg = dataclasses.replace(cfg, beam_size=max(cfg.beam_size, grammar.beam_size))
        # Under a grammar the phrase list is the language model (as in Vosk's grammar mode): a text
        # LM would only pull toward phrases that are not allowed anyway.
        lm = None if grammar is not None else self.lm
        return BeamSearch(self.bundle.vocab, cfg, lm, grammar)

    def grammar(self, phrases: Sequence[str]) -> Grammar:
        """A phrase list checked against this model's vocabulary; raises ``GrammarError``."""
        return Grammar(phrases, self.bundle.vocab)

    def templates(self, text: str, lists: dict | None = None, source: str = "<template>",
                  max_nodes: int = MAX_GRAPH_NODES) -> Templates:
        """Sentence templates (YAML) compiled for this model, cached by content: a client may send the
        same file with every request. Raises ``templates.TemplateError`` naming the line; ``max_nodes``
        bounds the compiled graph (a server lowers it for what clients send)."""
        key = content_key(text, lists) + f":{max_nodes}"
        cache = self._templates
        with self._templates_lock:
            hit = cache.pop(key, None)
        if hit is None:
            hit = Templates.from_yaml(text, self.bundle.vocab, lists=lists, source=source, max_nodes=max_nodes)
        with self._templates_lock:
            cache[key] = hit  # most recently used last
            while len(cache) > TEMPLATE_CACHE_SIZE:
                cache.pop(next(iter(cache)))
        return hit

    def stream(self, hotwords: Sequence[str] = (), endpoint_seconds: float = ENDPOINT_SECONDS,
               grammar: Grammar | Templates | None = None, alternatives: int = 0, start_seconds: float = 0.0) -> Stream:
        """``alternatives``: give each segment its n best transcripts too; ``start_seconds``: where the
        stream's clock starts (a stream that goes on from another's end keeps its times)."""
        return Stream(self, hotwords, endpoint_seconds, grammar, alternatives, start_seconds)

    def iter_segments(self, chunks: Iterable[np.ndarray], hotwords: Sequence[str] = (),
                      grammar: Grammar | Templates | None = None) -> Iterator[Segment]:
        """Each segment as soon as a pause (or the end) closes it."""
        stream = self.stream(hotwords, grammar=grammar)
        for chunk in chunks:
            yield from stream.accept(chunk)
        yield from stream.finish()

    def transcribe_chunks(self, chunks: Iterable[np.ndarray], hotwords: Sequence[str] = (),
                          grammar: Grammar | Templates | None = None) -> list[Segment]:
        return list(self.iter_segments(chunks, hotwords, grammar))

    def transcribe(self, waveform: np.ndarray, hotwords: Sequence[str] = (),
                   grammar: Grammar | Templates | None = None) -> list[Segment]:
        return self.transcribe_chunks([waveform], hotwords, grammar)


class Stream:
    """One live stream. ``accept`` audio, read ``partial()``, get ``Segment``s at each pause."""

    def __init__(self, recognizer: Recognizer, hotwords: Sequence[str], endpoint_seconds: float,
                 grammar: Grammar | Templates | None = None, alternatives: int = 0, start_seconds: float = 0.0):
        if alternatives < 0:
            raise ValueError(f"alternatives must be 0 or more, got {alternatives}")
        self.rec = recognizer
        self.alternatives = alternatives
        self.start_seconds = start_seconds
        self.hotwords = tuple(hotwords)
        self.grammar = grammar
        # The open segment's beam search, advanced as partials are asked for, so the endpoint
        # only has the frames since the last partial left to search.
        self.search = recognizer.beam_search(self.hotwords, grammar)
        self.beam: BeamState | None = None
        self.fbank = StreamingFbank(recognizer.extractor)
        self.state = recognizer.acoustic.initial_state()
        self.endpoint_frames = max(1, round(endpoint_seconds / FRAME_SECONDS))
        # Under templates: the pauses that close a complete sentence that may go on, and anything.
        self.template_pause_frames = max(self.endpoint_frames, round(TEMPLATE_PAUSE_SECONDS / FRAME_SECONDS))
        self.template_max_pause_frames = max(self.endpoint_frames, round(TEMPLATE_MAX_PAUSE_SECONDS / FRAME_SECONDS))
        self.max_frames = round(MAX_SEGMENT_SECONDS / FRAME_SECONDS)
        self.segment_start = 0  # output frame where the current segment starts
        self.log_probs: list[np.ndarray] = []  # the current segment's (t, V) pieces
        self.next_id = 0
        self.samples_seen = 0

    @property
    def seconds(self) -> float:
        """Where the stream's clock stands: ``start_seconds`` plus the audio accepted."""
        return self.start_seconds + self.samples_seen / self.rec.sample_rate

    def _frames(self) -> np.ndarray:
        if not self.log_probs:
            return np.zeros((0, len(self.rec.bundle.vocab)), np.float32)
        if len(self.log_probs) > 1:
            self.log_probs = [np.concatenate(self.log_probs)]
        return self.log_probs[0]

    def accept(self, samples: np.ndarray) -> list[Segment]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.samples_seen += samples.size
        feats = self.fbank.accept(samples)
        if feats.shape[0] == 0:
            return []
        out, self.state = self.rec.acoustic.step(feats, self.state)
        if out.shape[0]:
            self.log_probs.append(out)
        return self._endpoints()

    def _endpoints(self) -> list[Segment]:
        frames = self._frames()
        if frames.shape[0] == 0:
            return []
        best = frames.argmax(axis=-1)
        speech = (best != 0) & (best != self.rec.bundle.vocab.space_id)
        if not speech.any():
            # Only silence so far: drop it, keep the segment start moving, hold no memory.
            self.segment_start += frames.shape[0]
            self.log_probs = []
            self.beam = None
            return []
        if isinstance(self.grammar, Templates) and self.search is not None:
            # Search as the audio comes (the wide template beam would otherwise all fall due at the
            # endpoint, and the end of speech would wait for it).
            self._advance_beam(self.search, frames)
        last_speech = int(np.flatnonzero(speech)[-1])
        trailing = frames.shape[0] - 1 - last_speech
        if frames.shape[0] >= self.max_frames:
            return self._close(frames.shape[0])
        if trailing >= self.endpoint_frames and trailing >= self._pause_needed():
            return self._close(frames.shape[0])
        return []

    def _pause_needed(self) -> int:
        """Frames of pause that close the open segment: the usual endpoint, or under templates one
        that depends on where the best sentence so far stands (see TEMPLATE_PAUSE_SECONDS)."""
        if not isinstance(self.grammar, Templates) or self.beam is None:
            return self.endpoint_frames
        state = self.search.leading_state(self.beam)  # _endpoints has advanced it over every frame
        if state is None or not self.grammar.can_end(state):
            return self.template_max_pause_frames
        return self.template_pause_frames if self.grammar.can_continue(state) else self.endpoint_frames

    def _close(self, n_frames: int) -> list[Segment]:
        frames = self._frames()[:n_frames]
        rest = self._frames()[n_frames:]
        if self.search is None:
            t = greedy_decode(frames, self.rec.bundle.vocab, self.segment_start)
            # Greedy decoding keeps one path: the only alternative, scored by its log-probability.
            hypotheses = [Hypothesis(t, float(frames.max(axis=-1).sum()))]
        else:
            beam = self._advance_beam(self.search, frames)
            hypotheses = self.search.nbest(beam, max(1, self.alternatives), self.segment_start)
            t = hypotheses[0].transcript if hypotheses else Transcript("")  # as search.best(beam) would say
            self.beam = None
        start, end = self.segment_start * FRAME_SECONDS, (self.segment_start + n_frames) * FRAME_SECONDS
        self.segment_start += n_frames
        self.log_probs = [rest] if rest.shape[0] else []
        if not t.text:
            return []
        t = self._on_clock(t)
        start, end = start + self.start_seconds, min(end + self.start_seconds, round(self.seconds, 3))
        if t.words:
            start, end = t.words[0].start, t.words[-1].end
        alternatives = tuple(Hypothesis(self._on_clock(h.transcript), round(h.score, 4))
                             for h in hypotheses[: self.alternatives])
        intent = None
        if isinstance(self.grammar, Templates) and hypotheses:
            confidence = sum(w.confidence for w in t.words) / len(t.words) if t.words else 0.0
            margin = (hypotheses[0].score - float(frames.max(axis=-1).sum())) / max(1, len(t.text))
            intent = self.grammar.match(t.text, confidence, margin)
            if intent is not None and self.grammar.min_margin is not None and margin < self.grammar.min_margin:
                return []  # a sentence the audio does not really say: no match, not a wrong command
        seg = Segment(self.next_id, round(start, 3), round(end, 3), t.text, t.words, alternatives, intent)
        self.next_id += 1
        return [seg]

    def _on_clock(self, t: Transcript) -> Transcript:
        """Times from the segment's frames onto the stream's clock (moved by ``start_seconds``), none past
        the audio: the end-of-audio padding can put a last emission up to one frame beyond it."""
        limit = round(self.seconds, 3)
        shift = self.start_seconds
        return Transcript(t.text, tuple(
            dataclasses.replace(w, start=min(round(w.start + shift, 3), limit), end=min(round(w.end + shift, 3), limit))
            for w in t.words))

    def _advance_beam(self, search: BeamSearch, frames: np.ndarray) -> BeamState:
        if self.beam is None:
            self.beam = search.start()
        return search.advance(self.beam, frames[self.beam.frames :])

    def partial(self) -> str:
        """The open segment's best hypothesis so far (greedy when decoding is greedy): cheap
        enough to send after every chunk."""
        if self.search is None:
            return greedy_decode(self._frames(), self.rec.bundle.vocab).text
        return self.search.best(self._advance_beam(self.search, self._frames()), final=False).text

    def finish(self, end_padding_seconds: float | None = None) -> list[Segment]:
        """End of audio: flush the front end and the network (the padding is not counted as audio: times stay
        inside it) and close the last segment. ``end_padding_seconds``: the decoding setting's unless given."""
        if end_padding_seconds is None:
            end_padding_seconds = self.rec.decoding.end_padding_seconds
        # Silence after the audio (zeros, uncounted): end_padding_seconds of it to let the network's last letters
        # out (DecodingConfig), and at least what completes the last partial analysis window, so that the final
        # 25 ms are not dropped. (Feature-mean frames instead scored as well on validation, but after silence
        # they are a sudden sound of their own, and a model heard a letter in them.)
        tail = self.fbank.pending
        pad = max(round(end_padding_seconds * self.rec.sample_rate),
                  self.rec.extractor.cfg.window_size - tail.size if tail.size else 0)
        if pad > 0:
            feats = self.fbank.accept(np.zeros(pad, np.float32))
            if feats.shape[0]:
                out, self.state = self.rec.acoustic.step(feats, self.state)
                if out.shape[0]:
                    self.log_probs.append(out)
        if self.state.pending.shape[1]:
            # The front end needs 7 frames of context: pad with the feature mean (zero after
            # normalisation) so the last frames are emitted.
            mean = self.rec.acoustic.feat_mean
            fill = np.broadcast_to(mean, (RECEPTIVE_FIELD - 1, mean.size))
            out, self.state = self.rec.acoustic.step(fill, self.state)
            if out.shape[0]:
                self.log_probs.append(out)
        n = self._frames().shape[0]
        return self._close(n) if n else []
