"""The data-parallel picture of lab 7: every number it shows comes from the processes' reports
(their samples, their own gradients, the averaged one), and it says when something differs."""

from __future__ import annotations

import pytest
from matplotlib.image import AxesImage

from tests.labs.conftest import keep_figure
from workshop_labs import data, data_parallel_diagram


def reports(*, identical: bool = True, yours_agree: bool = True) -> list[dict]:
    """Two processes' reports as lab 7's script writes them (rank 1 first, as files may come)."""
    own = {0: [0.1148, 0.0242, -0.0394], 1: [-0.0108, 0.1182, -0.1026]}
    averaged = [(a + b) / 2 for a, b in zip(own[0], own[1], strict=True)]
    return [
        {
            "rank": rank,
            "world_size": 2,
            "parameter": "the last layer's bias",
            "samples": list(range(rank * 32, rank * 32 + 32)),
            "own": own[rank],
            "yours": averaged if yours_agree else own[rank],
            "averaged": averaged,
            "steps": 29,
            "identical": identical,
        }
        for rank in (1, 0)
    ]


def texts(fig) -> str:
    return "\n".join(text.get_text() for ax in fig.axes for text in ax.texts)


def test_the_picture_shows_each_rank_its_own_gradient_and_their_mean():
    fig = data_parallel_diagram.data_parallel_picture(reports())
    keep_figure(fig, "lab07_data_parallel")
    shown = texts(fig)
    assert "rank 0: 32 of the batch's 64 samples" in shown
    assert "rank 1: 32 of the batch's 64 samples" in shown
    assert "[+0.1148, +0.0242, -0.0394, …]" in shown
    assert "[-0.0108, +0.1182, -0.1026, …]" in shown
    assert "every rank gets\n[+0.0520, +0.0712, -0.0710, …]" in shown
    assert "((+0.1148) + (-0.0108)) / 2\n= +0.0520" in shown
    assert shown.count("identical on every rank ✓") == 2
    assert shown.count("yours: the same ✓") == 2


def test_the_digits_drawn_are_the_samples_each_rank_got():
    fig = data_parallel_diagram.data_parallel_picture(reports())
    pixels, labels = data.digits()
    titles = [ax.get_title() for ax in fig.axes[0].child_axes]
    shown = data_parallel_diagram.SHOWN_SAMPLES
    expected = [
        f"#{i}: {int(labels[i])}" for rank in (0, 1) for i in range(32 * rank, 32 * rank + shown)
    ]
    assert titles == expected
    first = fig.axes[0].child_axes[0].get_images()[0]
    assert isinstance(first, AxesImage)
    assert (first.get_array() == pixels[0].view(8, 8).numpy()).all()


def test_the_picture_says_when_ranks_differ():
    shown = texts(
        data_parallel_diagram.data_parallel_picture(reports(identical=False, yours_agree=False))
    )
    assert shown.count("DIFFER between ranks ✗") == 2
    assert shown.count("yours: NOT the same ✗") == 2


def test_a_report_without_a_key_is_refused_with_its_name():
    incomplete = reports()
    del incomplete[0]["own"]
    with pytest.raises(ValueError, match=r"missing: own"):
        data_parallel_diagram.data_parallel_picture(incomplete)
    with pytest.raises(ValueError, match=r"one report per rank"):
        data_parallel_diagram.data_parallel_picture([])
