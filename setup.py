"""Build hook: the wheel carries the hardware folders (``hls/``, ``rtl_sim/``, ``boards/``), which
stay at the top of the repository, as package data in ``msq/_assets/`` (found by msq/assets.py).

Everything else about the package is declared in pyproject.toml.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
ASSETS = ("hls", "rtl_sim", "boards")


class BuildPyWithAssets(build_py):
    """``build_py`` that also copies the asset folders below ``msq/_assets`` in the build tree."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the folders in place
            return
        for name in ASSETS:
            target = Path(self.build_lib) / "msq" / "_assets" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithAssets})
