"""Runs generate.py before packaging, so an installed client always matches the proto."""

from setuptools import setup
from setuptools.command.build_py import build_py


class GenerateThenBuild(build_py):
    def run(self):
        import generate

        generate.generate()
        super().run()


setup(cmdclass={"build_py": GenerateThenBuild})
