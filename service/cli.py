"""`edgescribe serve`: start the HTTP/WebSocket service on uvicorn.

Every setting in ``service.settings.Settings`` is a flag here (``max_upload_bytes`` ->
``--max-upload-bytes``) and an environment variable (``EDGESCRIBE_MAX_UPLOAD_BYTES``); a flag wins
over the environment, the environment over the default. ``edgescribe wyoming`` takes the subset that
applies to it through the same two functions.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Iterable, Mapping

from .settings import Settings, SettingsError, env_name, field_types

# Settings only `edgescribe wyoming` reads (service/wyoming/cli.py), so not flags of `serve`.
WYOMING_ONLY = frozenset({"wyoming_port"})


def add_setting_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None,
                      flags: Mapping[str, str] | None = None, helps: Mapping[str, str] | None = None) -> None:
    """A flag per setting in ``names`` (default: all), named ``flags[name]`` or after the field.

    ``helps`` replaces a setting's help text where another command uses it differently."""
    types = field_types()
    wanted = None if names is None else set(names)
    for f in dataclasses.fields(Settings):
        if wanted is not None and f.name not in wanted:
            continue
        base, _ = types[f.name]
        default = "the embedded model" if f.name == "model" else ("unset" if f.default is None else f.default)
        shown = "" if f.name == "api_key" else f", default {default}"
        help_text = (helps or {}).get(f.name, f.metadata["help"])
        flag = (flags or {}).get(f.name, f.name.replace("_", "-"))
        # SUPPRESS keeps flags that were not given out of the namespace, so the environment decides.
        parser.add_argument("--" + flag, dest=f.name, type=base, default=argparse.SUPPRESS,
                            metavar=flag.upper().replace("-", "_"), help=f"{help_text} (env {env_name(f.name)}{shown})")


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings: the environment's, with the flags that were given over them; raises SettingsError."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings) if hasattr(args, f.name)}
    return Settings.from_env(**given)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_flags(parser, [f.name for f in dataclasses.fields(Settings) if f.name not in WYOMING_ONLY])


def run(args: argparse.Namespace) -> int:
    from model.container import CheckpointError
    from model.lm import LMError

    from .app import create_app, language_model, load_for
    from .memory import fix_mmap_threshold
    from .server import make_server

    fix_mmap_threshold()  # before the model and LM are loaded: see memory.py
    try:
        settings = settings_from(args)
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
