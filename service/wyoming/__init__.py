"""`edgescribe wyoming`: speech to text over the Wyoming protocol, as Home Assistant's voice assistant uses it.

Events, one connection at a time (PyPI ``wyoming``'s framing: a JSON line, then its data and payload):

  describe                      -> info: one ASR program, "edgescribe", with the served model, English
  transcribe {language, name}   optional; the next utterance's options. language: "en" (or "en-US" ...),
                                anything else is refused; name: the program's or the model's, if given;
                                transcript_names / transcript_terms bias free decoding toward them (hotwords)
  audio-start {rate, width, channels}
  audio-chunk {rate, width, channels} + PCM  any rate from 8 to 192 kHz, 1-4 bytes a sample (1: unsigned,
                                as in WAV), 1-64 channels (averaged); resampled to the model's rate here
  audio-stop                    -> transcript {text, language: "en"}: the utterance's text, "" for silence
  ping                          -> pong
Events of other types are dropped, as the protocol asks of servers. An utterance may start with its first
audio-chunk (no audio-start), and one connection may carry several utterances in turn.

With ``--sentences FILE`` (Home Assistant sentence templates) the text is one of the templates' sentences or
"" when the speech fits none, and the transcript also carries ``intent``: ``{name, slots, confidence}`` as the
HTTP service answers it (model.formats.first_intent), null for no match.

A failure (a malformed event, an unsupported format, every utterance slot busy, an idle client, an utterance
over the limits) is answered with an ``error`` event whose code is the failure's kind from
``service/errors.py`` ("bad_field", "busy", "audio_too_long", ...), and the connection is closed after it.
"""
