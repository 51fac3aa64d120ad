"""Runs generate.py before packaging, so an installed client always matches the proto."""

import os
import runpy

from setuptools import setup
from setuptools.command.build_py import build_py

# pip builds in the project directory (in-tree builds); generate.py finds the proto from there.
HERE = os.path.dirname(os.path.abspath(globals().get("__file__", os.path.join(os.getcwd(), "setup.py"))))


class GenerateThenBuild(build_py):
    def run(self):
        runpy.run_path(os.path.join(HERE, "generate.py"))["generate"]()
        super().run()


setup(cmdclass={"build_py": GenerateThenBuild})
