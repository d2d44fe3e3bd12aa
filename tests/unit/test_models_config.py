"""The [models] config section."""

from pathlib import Path

import pytest

from common.config import Section, load
from common.errors import ConfigError
from models.config import ModelsSettings


class _Edge(Section):
    models: ModelsSettings = ModelsSettings()


def test_defaults_and_relative_bundle_path(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text('[models]\nbundle = "var/models"\nthreads = 2\n')
    loaded = load(_Edge, cfg, "LIFECERT_TEST", environ={})
    assert loaded.models.bundle == tmp_path / "var" / "models"
    assert loaded.models.threads == 2
    assert ModelsSettings().threads == 1


def test_bad_thread_count_names_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text("[models]\nthreads = 0\n")
    with pytest.raises(ConfigError, match=r"models\.threads.*interpreter threads"):
        load(_Edge, cfg, "LIFECERT_TEST", environ={})
