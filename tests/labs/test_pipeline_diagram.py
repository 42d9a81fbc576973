"""The DataLoader picture of lab 2: every number it shows comes from the live Dataset and
DataLoader, it shows the batches the next loop really gets, and drawing it consumes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.text import Text
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from tests.labs.conftest import keep_figure
from workshop_labs import data, pipeline_diagram


class DigitPictures(Dataset):
    """Digits as (1, 8, 8) pictures, as an image dataset gives them."""

    def __init__(self, flat: TensorDataset):
        self.flat = flat

    def __len__(self):
        return len(self.flat)

    def __getitem__(self, index):
        x, y = self.flat[index]
        return x.view(1, 8, 8), y


def lab_loader() -> DataLoader:
    """Lab 2's loader: 1,438 flat digits in batches of 16, shuffled, two workers."""
    train_set, _ = data.digits_split()
    generator = torch.Generator().manual_seed(0)
    return DataLoader(train_set, batch_size=16, shuffle=True, num_workers=2, generator=generator)


def pictures_loader() -> DataLoader:
    """359 (1, 8, 8) pictures in batches of 32, shuffled by the global RNG, drop_last=True."""
    _, val_set = data.digits_split()
    return DataLoader(DigitPictures(val_set), batch_size=32, shuffle=True, drop_last=True)


CASES = {
    "lab2_batch16_workers2": (
        lab_loader,
        [
            "len(dataset) = 1,438",
            "1,438 samples → 90 batches per epoch",
            "batch 89",
            "only 14",
            "16 samples",
            "5 · The last batch: 1,438 = 89 × 16 + 14",
            "drop_last=False (this loader): 90 batches, the last one of 14; "
            "drop_last=True would leave those 14 out (89 batches)",
            "4 · collate_fn: batch 0's 16 samples become xb and yb",
            "xb.shape = (16, 64)  float32",
            "xb.shape = (14, 64)  float32",
            "6 · num_workers=2: batches are dealt round robin",
            "worker 0",
            "worker 1",
            "yb.shape = (16,)  int64",
            "yb.shape = (14,)  int64",
        ],
    ),
    "pictures_batch32_drop_last": (
        pictures_loader,
        [
            "len(dataset) = 359",
            "359 samples → 11 batches per epoch",
            "batch 10",
            "dropped",
            "5 · The last batch: 359 = 11 × 32 + 7",
            "drop_last=True (this loader): the last 7 of each epoch's order are left out, "
            "11 batches",
            "4 · collate_fn: batch 0's 32 samples become xb and yb",
            "xb.shape = (32, 1, 8, 8)  float32",
            "7 left out",
            "these 7 are never loaded this epoch",
            "6 · num_workers=0: the main process loads every batch",
            "main process",
            "yb.shape = (32,)  int64",
            "+16 more",
        ],
    ),
}


def texts(figure) -> list[str]:
    return [t.get_text() for t in figure.findobj(Text) if t.get_text()]


@pytest.mark.parametrize("case", CASES)
def test_the_picture_names_the_real_numbers(case):
    make_loader, expected = CASES[case]
    figure = pipeline_diagram.data_pipeline(make_loader())
    shown = texts(figure)
    for text in expected:
        assert any(text in t for t in shown), f"{text!r} is not in the picture"
    print(f"saved {keep_figure(figure, f'data_pipeline_{case}')}")


def test_the_pictures_are_the_samples_of_the_batch():
    loader = lab_loader()
    epoch = pipeline_diagram.next_epoch(loader)
    figure = pipeline_diagram.data_pipeline(loader)
    drawn = {image.get_gid(): image.get_array() for image in figure.axes[0].images}
    for index in (*epoch.batches[0], *epoch.batches[-1], 0, len(loader.dataset) - 1):
        pixels = loader.dataset[index][0].view(8, 8)
        scaled = (pixels - pixels.min()) / (pixels.max() - pixels.min())
        np.testing.assert_allclose(drawn[f"sample {index}"], scaled.numpy(), atol=1e-6)
    assert len(drawn) == len(figure.axes[0].images), "a sample is drawn twice"


def indices_loader(**options) -> DataLoader:
    """A loader whose samples are their own index, so a real loop says which indices it got."""
    return DataLoader(TensorDataset(torch.arange(45)), **options)


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 8, "shuffle": True, "generator": torch.Generator().manual_seed(1)},
        {"batch_size": 8, "shuffle": True},
        {"batch_size": 8, "shuffle": True, "drop_last": True},
        {"batch_size": 10, "shuffle": False},
        {"batch_size": 8, "shuffle": True, "num_workers": 2},
    ],
    ids=["own generator", "global RNG", "drop_last", "no shuffle", "two workers"],
)
def test_the_picture_shows_the_batches_the_next_loop_gets(options):
    torch.manual_seed(5)
    loader = indices_loader(**options)
    epoch = pipeline_diagram.next_epoch(loader)
    pipeline_diagram.data_pipeline(loader)
    assert [batch[0].tolist() for batch in loader] == epoch.batches
    assert sorted(epoch.order) == list(range(45))
    assert epoch.dropped == (epoch.order[40:] if options.get("drop_last") else [])


def test_drawing_leaves_the_loader_and_every_generator_as_they_were():
    loader = lab_loader()
    before = (loader.generator.get_state(), torch.get_rng_state())
    first = texts(pipeline_diagram.data_pipeline(loader))
    second = texts(pipeline_diagram.data_pipeline(loader))
    assert first == second
    assert torch.equal(loader.generator.get_state(), before[0])
    assert torch.equal(torch.get_rng_state(), before[1])
    untouched = lab_loader()
    untouched.num_workers = loader.num_workers = 0
    for drawn_batch, fresh_batch in zip(loader, untouched, strict=True):
        assert torch.equal(drawn_batch[1], fresh_batch[1])


class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(3))


def test_loaders_without_batches_to_draw_are_refused():
    with pytest.raises(ValueError, match="batch_size=None"):
        pipeline_diagram.data_pipeline(indices_loader(batch_size=None))
    with pytest.raises(ValueError, match="IterableDataset"):
        pipeline_diagram.data_pipeline(DataLoader(Stream(), batch_size=2))
    with pytest.raises(ValueError, match="45 samples, fewer than batch_size=50 with drop_last"):
        pipeline_diagram.data_pipeline(indices_loader(batch_size=50, drop_last=True))
