import asyncio
from types import SimpleNamespace

import pytest
from tornado import web

from workshop_hub.room.gpu import GpuSlots
from workshop_hub.room.profiles import cpu_profile, gpu_profile
from workshop_hub.room.spawner import WorkshopSpawner
from workshop_hub.room.workshop import Workshop
from workshop_hub.settings import load_settings


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
    spawner = make_spawner(with_gpu=False)
    # Without GPUs the form asks Docker nothing.
    assert asyncio.run(spawner.options_form(None)) == ""


def test_form_offers_gpu_first_with_free_places():
    form = make_spawner(with_gpu=True)._profile_form()
    assert form.index('value="gpu" checked') < form.index('value="cpu"')
    assert "2 of 2 GPU places free" in form


def test_full_gpus_are_disabled_in_the_form():
    spawner = make_spawner(with_gpu=True, per_gpu=1)
    spawner.workshop.gpu_slots.acquire("someone")
    form = spawner._profile_form()
    assert 'value="gpu" disabled' in form and 'value="cpu" checked' in form
    assert "All 1 GPU places are taken" in form
    # The choice passes; start() books the place, after asking Docker who still runs.
    assert spawner.options_from_form({"profile": ["gpu"]}) == {"profile": "gpu"}


def test_the_post_stop_hook_frees_the_place_of_a_server_that_ended_on_its_own():
    spawner = make_spawner(with_gpu=True, per_gpu=1)
    slots = spawner.workshop.gpu_slots
    slots.acquire("ada")
    slots.confirm("ada")
    # What JupyterHub runs when poll() finds the container gone (stop() is not called then).
    spawner.run_post_stop_hook()
    assert slots.free_places() == 1
    spawner.run_post_stop_hook()  # a second stop of a server without a place changes nothing
    assert slots.free_places() == 1


def test_unknown_profile_is_refused_with_the_choices():
    with pytest.raises(web.HTTPError, match="choose one of: cpu"):
        make_spawner(with_gpu=False).options_from_form({"profile": ["tpu"]})


def test_every_spawner_shares_one_table_of_gpu_places():
    first = make_spawner(with_gpu=True)
    second = WorkshopSpawner(user=SimpleNamespace(name="bob"))
    assert second.workshop.gpu_slots is first.workshop.gpu_slots
