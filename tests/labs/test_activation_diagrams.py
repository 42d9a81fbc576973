"""Lab 5's pictures: where activations go (read off the live model and its loss) and the
decision boundaries of small trained networks (straight without activations, bent with)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workshop_labs import activation_diagrams


def texts(fig, gid: str | None = None) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts if gid is None or t.get_gid() == gid]


def mlp(sizes: list[int], activation=nn.ReLU, last=None) -> nn.Sequential:
    layers = []
    for size_in, size_out in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(size_in, size_out), activation()]
    layers = layers[:-1] + ([last] if last is not None else [])
    return nn.Sequential(*layers)


def test_activations_between_the_layers_and_no_softmax_before_cross_entropy(tmp_path):
    digits, moons = mlp([64, 64, 64, 10]), mlp([2, 16, 1])
    fig = activation_diagrams.where_activations_go(
        {
            "digits": (digits, F.cross_entropy, torch.zeros(1, 64)),
            "moons": (moons, nn.BCEWithLogitsLoss(), torch.zeros(1, 2)),
        }
    )
    fig.savefig(tmp_path / "where_activations_go.png")
    layers = texts(fig, "layer")
    assert layers == ["0: Linear", "2: Linear", "4: Linear", "0: Linear", "2: Linear"]
    assert texts(fig, "on arrow") == ["ReLU", "ReLU", "ReLU"]  # between layers, none at the end
    shown = "\n".join(texts(fig))
    for model in (digits, moons):
        for layer in model:
            if isinstance(layer, nn.Linear):
                assert f"{sum(p.numel() for p in layer.parameters()):,} parameters" in shown
    verdicts = texts(fig, "verdict")
    assert all(not v.startswith("✗") for v in verdicts)
    assert any("CrossEntropyLoss takes logits (softmax is inside it)" in v for v in verdicts)
    assert any("BCEWithLogitsLoss takes one logit (sigmoid is inside it)" in v for v in verdicts)
    assert any("torch.sigmoid(logit)" in v for v in verdicts)
    assert texts(fig, "loss") == [
        "F.cross_entropy\nsoftmax inside",
        ("nn.BCEWithLogitsLoss()\nsigmoid inside"),
    ]


def test_what_is_wrong_comes_from_the_model_itself():
    softmax_last = mlp([64, 32, 10], last=nn.Softmax(dim=1))
    no_activation = nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 10))
    sigmoid_last = mlp([2, 8, 1], last=nn.Sigmoid())
    fig = activation_diagrams.where_activations_go(
        {
            "softmax": (softmax_last, nn.CrossEntropyLoss(), torch.zeros(1, 64)),
            "linear": (no_activation, nn.CrossEntropyLoss(), torch.zeros(1, 64)),
            "sigmoid": (sigmoid_last, nn.BCEWithLogitsLoss(), torch.zeros(1, 2)),
            "bce": (sigmoid_last, nn.BCELoss(), torch.zeros(1, 2)),
        }
    )
    wrong = [v for v in texts(fig, "verdict") if v.startswith("✗")]
    assert wrong == [
        "✗ Softmax after the last layer: CrossEntropyLoss takes logits (softmax is inside it)",
        "✗ no activation between 0 and 1: the two collapse into one linear layer",
        "✗ Sigmoid after the last layer: BCEWithLogitsLoss takes one logit (sigmoid is inside it)",
        "✗ BCEWithLogitsLoss without the Sigmoid is the stable choice",
    ]
    assert "✓ BCELoss takes a probability: the model must end with Sigmoid" in texts(fig)


def test_a_loss_it_cannot_read_is_named():
    with pytest.raises(ValueError, match=r"cannot tell what nn.HuberLoss\(\) expects"):
        activation_diagrams.where_activations_go(
            {"huber": (mlp([2, 4, 1]), nn.HuberLoss(), torch.zeros(1, 2))}
        )


# ---------------------------------------------------------------------------------------------
# Decision boundaries
# ---------------------------------------------------------------------------------------------


def two_moons(per_moon: int = 150) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    angle = torch.rand(2 * per_moon, generator=generator) * torch.pi
    upper = torch.stack([angle[:per_moon].cos(), angle[:per_moon].sin()], dim=1)
    lower = torch.stack([1 - angle[per_moon:].cos(), 0.5 - angle[per_moon:].sin()], dim=1)
    noise = 0.1 * torch.randn(2 * per_moon, 2, generator=generator)
    return torch.cat([upper, lower]) + noise, torch.cat(
        [torch.zeros(per_moon), torch.ones(per_moon)]
    )


def trained(hidden_layers: int, activation, points, classes) -> nn.Sequential:
    torch.manual_seed(0)
    layers, size = [], 2
    for _ in range(hidden_layers):
        layers += [nn.Linear(size, 16)] + ([activation()] if activation else [])
        size = 16
    model = nn.Sequential(*layers, nn.Linear(size, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(200):
        optimizer.zero_grad()
        F.binary_cross_entropy_with_logits(model(points).squeeze(1), classes).backward()
        optimizer.step()
    return model


@pytest.fixture(scope="module")
def boundaries():
    points, classes = two_moons()
    models = {
        "0 hidden layers": trained(0, None, points, classes),
        "1 hidden layer, ReLU": trained(1, nn.ReLU, points, classes),
        "2 hidden layers, ReLU": trained(2, nn.ReLU, points, classes),
        "2 hidden layers, no activation": trained(2, None, points, classes),
    }
    return models, activation_diagrams.decision_boundaries(models, points, classes)


def drawn_classes(ax) -> tuple[torch.Tensor, tuple[float, float, float, float]]:
    (image,) = [image for image in ax.images if image.get_gid() == "predicted class"]
    return torch.as_tensor(image.get_array()), image.get_extent()


def boundary_cells(grid: torch.Tensor) -> torch.Tensor:
    """The midpoints between neighbouring cells of different class, in cell units (x, y)."""
    rows, cols = torch.nonzero(grid[:, 1:] != grid[:, :-1], as_tuple=True)
    across = torch.stack([cols + 0.5, rows.float()], dim=1)
    rows, cols = torch.nonzero(grid[1:, :] != grid[:-1, :], as_tuple=True)
    down = torch.stack([cols.float(), rows + 0.5], dim=1)
    return torch.cat([across, down]).float()


def distance_from_best_line(cells: torch.Tensor) -> float:
    """The largest distance, in cells, of a boundary cell from the line that fits them best."""
    centred = cells - cells.mean(dim=0)
    normal = torch.linalg.svd(centred, full_matrices=False).Vh[-1]
    return (centred @ normal).abs().max().item()


def test_without_activations_the_boundary_is_one_straight_line(boundaries, tmp_path):
    models, fig = boundaries
    fig.savefig(tmp_path / "decision_boundaries.png")
    titles = [ax.get_title().splitlines()[0] for ax in fig.axes]
    assert titles == list(models)
    distances = {}
    for ax, name in zip(fig.axes, models, strict=True):
        grid, _ = drawn_classes(ax)
        assert 0 < grid.float().mean() < 1, f"{name}: both classes appear"
        distances[name] = distance_from_best_line(boundary_cells(grid))
    assert distances["0 hidden layers"] < 1.0
    assert distances["2 hidden layers, no activation"] < 1.0
    assert distances["1 hidden layer, ReLU"] > 5.0
    assert distances["2 hidden layers, ReLU"] > 5.0


def test_the_straight_panel_is_the_one_linear_layer_its_weights_multiply_to(boundaries):
    models, fig = boundaries
    name = "2 hidden layers, no activation"
    first, second, third = models[name]
    weight = third.weight @ second.weight @ first.weight
    bias = third.weight @ (second.weight @ first.bias + second.bias) + third.bias
    grid, (left, right, bottom, top) = drawn_classes(fig.axes[list(models).index(name)])
    ys = torch.linspace(bottom, top, grid.shape[0])
    xs = torch.linspace(left, right, grid.shape[1])
    plane_y, plane_x = torch.meshgrid(ys, xs, indexing="ij")
    score = (weight[0, 0] * plane_x + weight[0, 1] * plane_y + bias[0]).detach()
    cell = max((right - left) / grid.shape[1], (top - bottom) / grid.shape[0])
    clear = score.abs() > 2 * cell * weight.norm().item()  # cells not touching the line
    assert torch.equal(grid[clear].bool(), (score > 0)[clear])
    assert clear.float().mean() > 0.95
