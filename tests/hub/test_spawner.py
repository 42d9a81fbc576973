from types import SimpleNamespace

import pytest
from tornado import web

from workshop_hub.gpu import GpuSlots
from workshop_hub.profiles import cpu_profile, gpu_profile
from workshop_hub.settings import load_settings
from workshop_hub.spawner import WorkshopSpawner
from workshop_hub.workshop import Workshop


@pytest.fixture(autouse=True)
def forget_workshop(monkeypatch):
    monkeypatch.setattr(WorkshopSpawner, "workshop", None)


def make_spawner(with_gpu: bool, per_gpu: int = 2) -> WorkshopSpawner:
    settings = load_settings({"WORKSHOP_GPUS": "0" if with_gpu else ""})
    slots = GpuSlots(["0"], per_gpu) if with_gpu else None
    profiles = ([gpu_profile(settings)] if with_gpu else []) + [cpu_profile(settings)]
    WorkshopSpawner.workshop = Workshop(settings, profiles, slots)
    return WorkshopSpawner(user=SimpleNamespace(name="ada"))


def test_single_profile_skips_the_form():
    assert make_spawner(with_gpu=False).options_form(None) == ""


def test_form_offers_gpu_first_with_free_places():
    form = make_spawner(with_gpu=True).options_form(None)
    assert form.index('value="gpu" checked') < form.index('value="cpu"')
    assert "2 of 2 GPU places free" in form


def test_full_gpus_are_disabled_in_the_form_and_refused_plainly():
    spawner = make_spawner(with_gpu=True, per_gpu=1)
    spawner.workshop.gpu_slots.acquire("someone")
    form = spawner.options_form(None)
    assert 'value="gpu" disabled' in form and 'value="cpu" checked' in form
    assert "All 1 GPU places are taken" in form
    with pytest.raises(web.HTTPError) as refused:
        spawner.options_from_form({"profile": ["gpu"]})
    assert "Start on CPU instead" in refused.value.log_message
    assert spawner.options_from_form({"profile": ["cpu"]}) == {"profile": "cpu"}


def test_unknown_profile_is_refused_with_the_choices():
    with pytest.raises(web.HTTPError, match="choose one of: cpu"):
        make_spawner(with_gpu=False).options_from_form({"profile": ["tpu"]})


def test_every_spawner_shares_one_table_of_gpu_places():
    first = make_spawner(with_gpu=True)
    second = WorkshopSpawner(user=SimpleNamespace(name="bob"))
    assert second.workshop.gpu_slots is first.workshop.gpu_slots
