"""Package discovery only (everything else is in pyproject.toml): every ``steca_data`` subpackage is found,
so a new environment or stage folder needs no packaging line; the trainer lives in ``train/``."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["steca_data", "steca_data.*"]), "steca_train", "steca_train.methods"],
    package_dir={"steca_train": "train"},
)
