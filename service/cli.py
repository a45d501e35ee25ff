"""`edgescribe serve`: start the HTTP/WebSocket service on uvicorn.

Every setting in ``service.settings.Settings`` is a flag here (``max_upload_bytes`` ->
``--max-upload-bytes``) and an environment variable (``EDGESCRIBE_MAX_UPLOAD_BYTES``); a flag wins
over the environment, the environment over the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from .settings import Settings, SettingsError, env_name, field_types


def add_arguments(parser: argparse.ArgumentParser) -> None:
    types = field_types()
    for f in dataclasses.fields(Settings):
        base, _ = types[f.name]
        default = "the embedded model" if f.name == "model" else ("unset" if f.default is None else f.default)
        shown = "" if f.name == "api_key" else f", default {default}"
        # SUPPRESS keeps flags that were not given out of the namespace, so the environment decides.
        parser.add_argument("--" + f.name.replace("_", "-"), type=base, default=argparse.SUPPRESS,
                            metavar=f.name.upper(), help=f"{f.metadata['help']} (env {env_name(f.name)}{shown})")


def run(args: argparse.Namespace) -> int:
    from model.container import CheckpointError
    from model.lm import LMError

    from .app import create_app, language_model, load_for
    from .server import make_server

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings) if hasattr(args, f.name)}
    try:
        settings = Settings.from_env(**given)
        bundle = load_for(settings)  # here, so a bad model file is one clear line, not a traceback
        language_model(settings.lm)  # likewise for the LM; cached, so the app does not load it again
    except (SettingsError, CheckpointError, LMError) as e:
        print(f"edgescribe serve: {e}", file=sys.stderr)
        return 2
    app = create_app(settings, bundle)
    print(f"edgescribe: serving on http://{settings.host}:{settings.port}/ with the {bundle.engine} engine "
          "(Ctrl-C to stop)", file=sys.stderr)
    make_server(app, settings, args.log_level).run()
    return 0
