"""The shared helper package: checks say what is wrong, quick mode, data, timing, solutions,
the GPU memory share setting, and how a failed check looks in a real notebook kernel."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch

from workshop_labs import (
    autograd_diagram,
    checks,
    course,
    data,
    diagrams,
    notebooks,
    runtime,
    timing,
)
from workshop_labs.checks import ExerciseNotSolved


def test_expect_tensor_names_what_is_wrong():
    with pytest.raises(ExerciseNotSolved, match=r"^`x` is None: replace the None with your answer"):
        checks.expect_tensor(None, name="x")
    with pytest.raises(ExerciseNotSolved, match=r"`x` is a list, not a torch.Tensor"):
        checks.expect_tensor([1, 2], name="x")
    with pytest.raises(
        ExerciseNotSolved, match=r"^`zeros` has shape \(4, 3\) but the exercise needs \(3, 4\)$"
    ):
        checks.expect_tensor(torch.zeros(4, 3), name="zeros", shape=(3, 4))
    with pytest.raises(ExerciseNotSolved, match=r"dtype torch.int64 but the exercise needs"):
        checks.expect_tensor(torch.zeros(3, dtype=torch.int64), name="t", dtype=torch.float32)
    with pytest.raises(ExerciseNotSolved, match=r"is on cpu but the exercise needs it on cuda"):
        checks.expect_tensor(torch.zeros(3), name="t", device="cuda")
    ok = torch.zeros(5, 3)
    assert checks.expect_tensor(ok, name="t", shape=(None, 3), dtype=torch.float32) is ok


def test_expect_and_passed(capsys):
    checks.expect(True, "never shown")
    with pytest.raises(ExerciseNotSolved, match="forgot zero_grad"):
        checks.expect(False, "forgot zero_grad")
    assert issubclass(ExerciseNotSolved, AssertionError)
    checks.passed("well done")
    assert capsys.readouterr().out == "✅ well done\n"


def test_pick_follows_quick_mode(monkeypatch):
    monkeypatch.setattr(runtime, "QUICK", True)
    assert runtime.pick(full=100, quick=2) == 2
    monkeypatch.setattr(runtime, "QUICK", False)
    assert runtime.pick(full=100, quick=2) == 100


def test_digits_shapes_and_split():
    features, labels = data.digits()
    assert features.shape == (1797, 64) and features.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.int64
    assert 0.0 <= features.min() and features.max() <= 1.0
    train, val = data.digits_split(val_fraction=0.2, seed=0)
    assert len(train) + len(val) == 1797 and len(val) == round(1797 * 0.2)
    train_loader, val_loader = data.digits_loaders(batch_size=32)
    x, y = next(iter(train_loader))
    assert x.shape == (32, 64) and y.shape == (32,)


def test_measure_warms_up_then_times_each_repeat():
    calls = []
    result = timing.measure(lambda: calls.append(1), device="cpu", warmup=3, repeats=5)
    assert len(calls) == 8
    assert len(result.runs) == 5 and result.min_ms <= result.mean_ms
    slower = timing.Measurement(mean_ms=10.0, std_ms=0.0, min_ms=10.0, runs=(10.0,))
    faster = timing.Measurement(mean_ms=2.5, std_ms=0.0, min_ms=2.5, runs=(2.5,))
    assert timing.compare(slower, faster) == pytest.approx(4.0)


@pytest.mark.parametrize("raw", ["abc", "0", "1.5", "-0.2"])
def test_gpu_memory_share_rejects_invalid_values(monkeypatch, raw):
    monkeypatch.setenv("WORKSHOP_GPU_MEMORY_FRACTION", raw)
    with pytest.raises(ValueError, match=r"WORKSHOP_GPU_MEMORY_FRACTION=.*\(0, 1\]"):
        runtime.gpu_memory_fraction()


@pytest.mark.parametrize(("raw", "expected"), [("", None), ("0.25", 0.25), (" 1 ", 1.0)])
def test_gpu_memory_share_accepts_valid_values(monkeypatch, raw, expected):
    monkeypatch.setenv("WORKSHOP_GPU_MEMORY_FRACTION", raw)
    assert runtime.gpu_memory_fraction() == expected


def test_work_dir_is_created(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKSHOP_WORK_DIR", str(tmp_path / "a" / "b"))
    assert runtime.work_dir().is_dir()


LAB_SOURCE = """\
# %%
from workshop_labs import setup
from workshop_labs.checks import expect

setup()

# %% tags=["exercise"]
answer = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# answer = 42
# ```
#
# </details>

# %%
expect(answer == 42, "`answer` is not 42 yet")
"""


@pytest.fixture
def tiny_lab(tmp_path):
    source = tmp_path / "09_tiny.py"
    source.write_text(LAB_SOURCE)
    return source


def test_apply_solutions_replaces_exercise_code(tiny_lab):
    nb = notebooks.build_notebook(tiny_lab)
    solved = notebooks.apply_solutions(nb)
    assert solved.cells[1].source == "answer = 42\n"
    assert nb.cells[1].source == "answer = None", "the original notebook must stay unchanged"


def test_apply_solutions_requires_a_solution_after_each_exercise(tiny_lab):
    nb = notebooks.build_notebook(tiny_lab)
    del nb.cells[2]
    with pytest.raises(ValueError, match="09_tiny.py: exercise cell 1 .* not followed"):
        notebooks.apply_solutions(nb)


def test_build_notebook_reports_unparsable_source(tmp_path):
    bad = tmp_path / "09_bad.py"
    bad.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ValueError, match="09_bad.py: jupytext cannot parse it"):
        notebooks.build_notebook(bad)


@pytest.mark.timeout(120)
def test_unsolved_exercise_is_one_red_line_and_still_fails_the_notebook(tiny_lab, tmp_path):
    nb = notebooks.build_notebook(tiny_lab)
    with pytest.raises(notebooks.LabFailed) as failure:
        notebooks.execute(nb, quick=True, cwd=tmp_path)
    message = str(failure.value)
    assert "09_tiny.py failed at cell 3" in message
    assert 'expect(answer == 42, "`answer` is not 42 yet")' in message
    assert "ExerciseNotSolved: `answer` is not 42 yet" in message
    # Look at what the attendee sees: one red line, no traceback.
    client_nb = nbformat.from_dict(nb)
    from nbclient import NotebookClient

    NotebookClient(client_nb, kernel_name="python3", allow_errors=True).execute()
    (error,) = client_nb.cells[3].outputs
    assert error.output_type == "error" and error.ename == "ExerciseNotSolved"
    assert error.traceback == [f"{checks.RED}✗ `answer` is not 42 yet{checks.RESET}"]


@pytest.mark.timeout(120)
def test_a_failing_cell_reports_what_it_printed_before_the_error(tmp_path):
    # A cell that runs a program prints the program's own error message, then raises: the
    # report must carry that message, or a failure on a CI machine says only "exit status 1".
    source = tmp_path / "09_printing.py"
    source.write_text(
        "# %%\nimport sys\nprint('early line')\n"
        "print('x' * 5000)\nprint('the reason: port 29500 refused', file=sys.stderr)\n"
        "raise RuntimeError('exit status 1')\n"
    )
    with pytest.raises(notebooks.LabFailed) as failure:
        notebooks.execute(notebooks.build_notebook(source), quick=True, cwd=tmp_path)
    message = str(failure.value)
    printed = message.split("--- printed ---\n")[1].split("--- error ---")[0]
    assert "the reason: port 29500 refused" in printed
    assert "early line" not in printed, "only the tail is kept: a long output stays readable"
    assert len(printed) <= notebooks.PRINTED_TAIL_CHARS + 1
    assert "RuntimeError: exit status 1" in message.split("--- error ---")[1]


def test_layer_table_follows_forward_order():
    model = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    rows = diagrams.layer_table(model, torch.zeros(5, 64))
    assert [(r["name"], r["type"], r["output shape"], r["params"]) for r in rows] == [
        ("0", "Linear", (5, 8), 520),
        ("1", "ReLU", (5, 8), 0),
        ("2", "Linear", (5, 3), 27),
    ]
    assert rows[0]["input shape"] == (5, 64)


def test_autograd_graph_needs_a_graph():
    with pytest.raises(ValueError, match="no grad_fn"):
        autograd_diagram.autograd_graph(torch.ones(2) * 2)
    leaf = torch.ones(2, requires_grad=True)
    assert autograd_diagram.autograd_graph((leaf * 3).sum(), names={"w": leaf}) is not None


def test_lab_sources_are_sorted_lab_files(tmp_path):
    for name in ["02_b.py", "01_a.py", "README.md", "helper.py"]:
        (tmp_path / name).write_text("")
    assert [p.name for p in notebooks.lab_sources(tmp_path)] == ["01_a.py", "02_b.py"]


def test_model_anatomy_marks_roles():
    source = textwrap.dedent(
        """\
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)
                self.extra = [nn.Linear(2, 2)]

            def forward(self, x):
                return self.fc(x)
        """
    ).splitlines()
    roles = diagrams._line_roles(source)
    assert roles == [
        "class",
        "init",
        "super",
        "register",
        "unregistered",
        "other",
        "forward",
        "forward",
    ]


def test_cpu_budget_respects_the_container_quota(monkeypatch):
    from workshop_labs import runtime

    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(runtime, "_cgroup_cpu_quota", lambda: 2.5)
    assert runtime.cpu_budget() == 2
    monkeypatch.setattr(runtime, "_cgroup_cpu_quota", lambda: None)
    assert runtime.cpu_budget() == 64
    monkeypatch.setattr(runtime, "_cgroup_cpu_quota", lambda: 0.5)
    assert runtime.cpu_budget() == 1


def _check_positive(value, name="value"):
    checks.expect(value > 0, f"`{name}` is {value}: it must be positive")
    checks.passed(f"{name} is positive")


def test_an_unsolved_exercise_runs_past_on_a_stand_in_that_says_what_it_is(monkeypatch, capsys):
    monkeypatch.setenv(checks.STRICT_ENV, "0")
    check = checks.exercise(stand_in=lambda name="value": 42, stand_in_is="the number 42")(
        _check_positive
    )
    assert check(-1, "answer") == 42
    shown = capsys.readouterr().out
    assert "`answer` is -1: it must be positive" in shown
    assert "the cells below go on with a stand-in (the number 42), not the solution" in shown
    assert check(5, "answer") == 5  # solved: the attendee's own answer goes on
    assert "✅ answer is positive" in capsys.readouterr().out


def test_a_stand_in_must_say_what_it_is():
    """The attendee reads what the cells below go on with: a stand-in without words is refused."""
    with pytest.raises(ValueError, match="stand_in_is"):
        checks.exercise(stand_in=lambda: 42)


def test_an_unsolved_exercise_without_a_stand_in_keeps_the_answer(monkeypatch, capsys):
    monkeypatch.setenv(checks.STRICT_ENV, "0")
    assert checks.exercise()(_check_positive)(-1) == -1
    assert "use your answer as it is" in capsys.readouterr().out


def test_strict_mode_fails_on_an_unsolved_exercise(monkeypatch):
    monkeypatch.setenv(checks.STRICT_ENV, "1")
    check = checks.exercise(stand_in=lambda: 42, stand_in_is="the number 42")(_check_positive)
    with pytest.raises(ExerciseNotSolved, match="must be positive"):
        check(-1)
    with pytest.raises(ExerciseNotSolved):  # the bare check raises whatever the mode
        monkeypatch.setenv(checks.STRICT_ENV, "0")
        check.unchecked(-1)


def test_the_labs_readme_shows_the_days_plan():
    readme = (Path(__file__).resolve().parents[2] / "labs" / "README.md").read_text()
    rows = re.findall(r"^\| `0(\d)_\w+\.py` \|[^|]+\| (\d+) \|$", readme, re.MULTILINE)
    assert {int(lab): int(minutes) for lab, minutes in rows} == course.MINUTES_IN_THE_DAY


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Unflatten(1, (1, 8, 8)),
            torch.nn.Conv2d(1, 6, kernel_size=3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(6, 4, kernel_size=(3, 5), stride=2, padding=(1, 2)),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Dropout(0.3),
        )
        self.head = torch.nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        return self.head(self.body(x))


def test_cnn_diagram_shows_the_batch_each_convs_settings_and_parameters(tmp_path):
    model = SmallCNN()
    fig = diagrams.cnn_diagram(model, torch.zeros(5, 64))
    fig.savefig(tmp_path / "cnn_diagram.png")
    ax = fig.axes[0]
    shapes = [t.get_text().splitlines() for t in ax.texts if t.get_gid() == "shape"]
    layers = [t.get_text().splitlines() for t in ax.texts if t.get_gid() == "layer"]
    # One tensor per step that changes the shape; every shape starts with the batch of 5.
    assert [lines[0] for lines in shapes] == [
        "(5, 64)",
        "(5, 1, 8, 8)",
        "(5, 6, 8, 8)",
        "(5, 4, 4, 4)",
        "(5, 4, 2, 2)",
        "(5, 16)",
        "(5, 3)",
    ]
    assert shapes[2][1] == "N × C × H × W" and shapes[-1][1] == "N × features"
    assert "a batch of N=5" in ax.get_title(loc="left")
    body = model.body
    drawn = [body[0], body[1], body[3], body[5], body[6], model.head]
    assert [sum(p.numel() for p in m.parameters()) for m in drawn] == [0, 60, 364, 0, 0, 51]
    for module, lines in zip(drawn, layers, strict=True):
        params = sum(p.numel() for p in module.parameters())
        assert lines[-1] == (f"{params:,} parameters" if params else "no parameters")
    assert layers[1][:2] == ["kernel 3×3", "stride 1 · padding 1"]
    assert layers[2][:2] == ["kernel 3×5", "stride 2 · padding 1×2"]
    assert layers[3][:2] == ["kernel 2×2", "stride 2 · padding 0"]
    # ReLU and Dropout hold no weights and keep the shape: they sit on the arrows.
    operations = [t.get_text() for t in ax.texts if t.get_gid() == "operation"]
    assert operations == ["ReLU", "ReLU", "Dropout(p=0.3)"]
    names = [t.get_text() for t in ax.texts if t.get_text().startswith(("body.", "head"))]
    assert names == ["body.0", "body.1", "body.3", "body.5", "body.6", "head"]


def test_cnn_diagram_gives_a_batchnorm2d_a_column_with_its_channels_and_buffers():
    """BatchNorm2d keeps the shape but holds weights: it is a layer of its own, not an arrow."""
    model = torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 8, 8)),
        torch.nn.Conv2d(1, 6, kernel_size=3, padding=1),
        torch.nn.BatchNorm2d(6),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 8 * 8, 3),
    )
    ax = diagrams.cnn_diagram(model, torch.zeros(4, 64)).axes[0]
    shapes = [t.get_text().splitlines()[0] for t in ax.texts if t.get_gid() == "shape"]
    assert shapes == [
        "(4, 64)",
        "(4, 1, 8, 8)",
        "(4, 6, 8, 8)",
        "(4, 6, 8, 8)",
        "(4, 384)",
        "(4, 3)",
    ]
    layers = [t.get_text().splitlines() for t in ax.texts if t.get_gid() == "layer"]
    assert layers[2] == [
        "normalizes 6 channels",
        "+ running mean, var (buffers)",
        "12 parameters",
    ]
    operations = [t.get_text() for t in ax.texts if t.get_gid() == "operation"]
    assert operations == ["ReLU"]


def test_cnn_diagram_sends_a_model_with_skips_to_network_diagram():
    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return x + self.conv(x)

    with pytest.raises(ValueError, match="use network_diagram for skips"):
        diagrams.cnn_diagram(Residual(), torch.zeros(1, 2, 4, 4))
