"""``deeplesion demo``: every stage runs on its own, building what it needs first."""

from __future__ import annotations

from pathlib import Path

import pytest

from deeplesion.demo import STAGES, plan_stages, run_demo
from deeplesion.errors import UsageError


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


def test_stages_declare_what_they_need() -> None:
    assert [s.name for s in plan_stages(["export"])] == ["synth", "export"]
    assert [s.name for s in plan_stages(["catalog"])] == ["catalog"]
    assert [s.name for s in plan_stages(None)] == [s.name for s in STAGES]
    with pytest.raises(UsageError, match="unknown demo stage"):
        run_demo(None, only=["nope"], say=lambda _: None)


@pytest.mark.slow
@pytest.mark.parametrize("name", [s.name for s in STAGES])
def test_each_stage_runs_alone(name: str, demo_dir: Path) -> None:
    lines: list[str] = []
    run_demo(demo_dir, only=[name], say=lines.append)
    text = "\n".join(lines)
    assert f"-- {name} done in" in text
    for need in next(s for s in STAGES if s.name == name).needs:
        assert f"-- {need} done in" in text  # what it needs ran first (a reused release counts too)


def test_an_older_generators_release_is_not_reused(tmp_path: Path) -> None:
    import json

    from deeplesion.demo import DEMO_PATIENTS, reusable_release
    from deeplesion.synth.release import GENERATOR_VERSION

    manifest = tmp_path / "synth-manifest.json"
    assert not reusable_release(manifest)  # absent: an interrupted or missing release
    fields = {"patients": DEMO_PATIENTS, "seed": 0, "generator": "deeplesion synth"}
    manifest.write_text(json.dumps(fields))  # v0.1's manifest had no generator_version
    assert not reusable_release(manifest)
    manifest.write_text(json.dumps({**fields, "generator_version": GENERATOR_VERSION}))
    assert reusable_release(manifest)
    manifest.write_text(json.dumps({**fields, "generator_version": GENERATOR_VERSION, "patients": 7}))
    assert not reusable_release(manifest)
