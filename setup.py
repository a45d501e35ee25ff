"""The one compiled part: BeamSearch's frame loop (model/_ctcbeam.c). Everything else is in pyproject.toml.

Optional: where no C compiler is found the install goes on without it and model/ctc.py runs the same
search in Python (up to twice the decoding time: scripts/bench_decoder.py --loop both).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("model._ctcbeam", ["model/_ctcbeam.c"], optional=True,
                             extra_compile_args=["-O2"])])
