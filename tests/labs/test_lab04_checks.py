"""Lab 4's checks: each rejects a typical wrong answer with its specific message, accepts the
solution, and outside strict mode runs past the starter answer (with a stand-in that is not the
solution where later cells use the answer)."""

from __future__ import annotations

import pytest
import torch
from matplotlib.colors import to_hex
from torch import nn

from tests.labs.solutions import (
    assert_runs_past_with_a_stand_in,
    lab_namespace,
    solution,
    starter,
)
from workshop_labs import checks, lab04, timing
from workshop_labs.checks import ExerciseNotSolved

DEVICE = torch.device("cpu")
LOW = torch.bfloat16  # the lab's low_precision on the CPU


# ----------------------------------------------------------------------------------------------
# Exercise 1: predict_amp
# ----------------------------------------------------------------------------------------------


def predict_amp_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(4, "predict_amp", edits=edits, low_precision=LOW)


def predict_amp_converts_model(model, inputs):
    return model.to(LOW)(inputs.to(LOW))


def test_predict_amp_accepts_the_solution(capsys):
    lab04.check_predict_amp(predict_amp_with(), DEVICE, LOW)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None"),
        (
            predict_amp_with((", torch.autocast(inputs.device.type, dtype=low_precision)", "")),
            "Linear ran in float32",
        ),
        (
            predict_amp_with(("inputs.device.type", '"cuda"'), ("low_precision", "torch.float16")),
            "device_type must be the device",
        ),
        (
            predict_amp_with(("low_precision", "torch.float16")),
            "Linear ran in float16 but this exercise needs bfloat16",
        ),
        (predict_amp_converts_model, "do not convert the model"),
        (
            predict_amp_with(("torch.inference_mode(), ", "")),
            "autograd recorded the forward pass",
        ),
    ],
    ids=["none", "no-autocast", "wrong-device-type", "float16", "converts-model", "with-grad"],
)
@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_predict_amp_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab04.check_predict_amp(wrong, DEVICE, LOW)


# ----------------------------------------------------------------------------------------------
# Exercise 2: train_step_bf16
# ----------------------------------------------------------------------------------------------


def train_step_bf16_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(4, "train_step_bf16", edits=edits)


def bf16_model_converted(model, optimizer, loss_fn, inputs, targets):
    model.to(torch.bfloat16)
    optimizer.zero_grad()
    loss = loss_fn(model(inputs.to(torch.bfloat16)), targets)
    loss.backward()
    optimizer.step()
    return loss


def test_train_step_bf16_accepts_the_solution(capsys):
    lab04.check_train_step_bf16(train_step_bf16_with(), DEVICE)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None"),
        (
            # the loss line moved out of the `with` block
            train_step_bf16_with(("\n        loss = ", "\n    loss = ")),
            "loss was computed outside the autocast block",
        ),
        (
            train_step_bf16_with(("torch.bfloat16", "torch.float16")),
            "Linear ran in float16 but this exercise needs bfloat16",
        ),
        (train_step_bf16_with(("optimizer.step()", "")), "optimizer.step\\(\\) was never called"),
        (train_step_bf16_with(("optimizer.zero_grad()", "")), "zero_grad\\(\\) was never called"),
        (bf16_model_converted, "do not convert the model"),
    ],
    ids=["none", "loss-outside", "float16", "no-step", "no-zero-grad", "model-converted"],
)
def test_train_step_bf16_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab04.check_train_step_bf16(wrong, DEVICE)


# ----------------------------------------------------------------------------------------------
# Exercise 3: train_step_fp16 with a GradScaler
# ----------------------------------------------------------------------------------------------


def train_step_fp16_with(*edits):
    """The lab's solution, with one typical mistake (or one harmless addition)."""
    return solution(4, "train_step_fp16", edits=edits)


SCALED_BACKWARD = "scaler.scale(loss).backward()"
SCALER_STEP = "scaler.step(optimizer)"


def test_train_step_fp16_accepts_the_solutions(capsys):
    lab04.check_train_step_fp16(train_step_fp16_with(), DEVICE)
    unscale_then_clip = (
        "scaler.unscale_(optimizer); nn.utils.clip_grad_norm_(model.parameters(), 1.0)"
    )
    lab04.check_train_step_fp16(
        train_step_fp16_with((SCALER_STEP, f"{unscale_then_clip}; {SCALER_STEP}")), DEVICE
    )
    zero_grad_at_the_end = train_step_fp16_with(
        ("optimizer.zero_grad()\n    ", ""),
        ("scaler.update()", "scaler.update()\n    optimizer.zero_grad()"),
    )
    lab04.check_train_step_fp16(zero_grad_at_the_end, DEVICE)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None"),
        (
            train_step_fp16_with((SCALED_BACKWARD, "scaler.scale(loss); loss.backward()")),
            "backward\\(\\) ran on the unscaled loss",
        ),
        (
            train_step_fp16_with(
                (SCALED_BACKWARD, "loss.backward()"),
                (SCALER_STEP, "optimizer.step()"),
                ("scaler.update()", ""),
            ),
            "scaler.scale\\(loss\\) was never called",
        ),
        (
            train_step_fp16_with((SCALER_STEP, "optimizer.step()")),
            "optimizer.step\\(\\) was called directly",
        ),
        (
            train_step_fp16_with(
                (SCALER_STEP, ""), ("scaler.update()", f"scaler.update(); {SCALER_STEP}")
            ),
            "scaler.update\\(\\) ran before scaler.step",
        ),
        (train_step_fp16_with(("scaler.update()", "")), "scaler.update\\(\\) was never called"),
        (
            # the model runs inside the `with` block, the loss after it
            train_step_fp16_with(
                (
                    "loss = loss_fn(model(inputs), targets)",
                    "outputs = model(inputs)\n    loss = loss_fn(outputs, targets)",
                )
            ),
            "loss was computed outside the autocast block",
        ),
        (
            train_step_fp16_with(("torch.float16", "torch.bfloat16")),
            "Linear ran in bfloat16 but this exercise needs float16",
        ),
        (
            train_step_fp16_with(
                ("optimizer.zero_grad()", ""),
                (SCALED_BACKWARD, f"{SCALED_BACKWARD}; optimizer.zero_grad()"),
            ),
            "zero_grad\\(\\) ran after backward",
        ),
    ],
    ids=[
        "none",
        "unscaled-backward",
        "no-scaler",
        "optimizer-step",
        "update-before-step",
        "no-update",
        "loss-outside",
        "bfloat16",
        "zero-grad-after-backward",
    ],
)
def test_train_step_fp16_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab04.check_train_step_fp16(wrong, DEVICE)


# ----------------------------------------------------------------------------------------------
# Exercise 4: train_step_fp16_clipped, unscale_ before clipping
# ----------------------------------------------------------------------------------------------


def clipped_step_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(4, "train_step_fp16_clipped", edits=edits)


UNSCALE = "    scaler.unscale_(optimizer)\n"
CLIP = "    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)\n"


def test_train_step_fp16_clipped_accepts_the_solution(capsys):
    lab04.check_train_step_fp16_clipped(clipped_step_with(), DEVICE)
    assert "unscale_ → clip to max_norm → scaler.step" in capsys.readouterr().out


def test_train_step_fp16_clipped_accepts_zero_grad_at_the_end(capsys):
    """Zeroing after the step instead of before is a legitimate habit: the step used the
    clipped gradients, which is what the check measures."""
    lab04.check_train_step_fp16_clipped(
        clipped_step_with(
            ("optimizer.zero_grad()\n    ", ""),
            ("scaler.update()", "scaler.update()\n    optimizer.zero_grad()"),
        ),
        DEVICE,
    )
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None"),
        # the starter: no clipping at all
        (clipped_step_with((UNSCALE, ""), (CLIP, "")), "above max_norm=.*: they were not clipped"),
        # clipping the scaled gradients, no unscale_
        (
            clipped_step_with((UNSCALE, "")),
            "far below max_norm.*clip_grad_norm_ clipped the scaled gradients. Call "
            "scaler.unscale_\\(optimizer\\) after backward\\(\\) and before clipping",
        ),
        # unscale_ after clipping
        (
            clipped_step_with((UNSCALE + CLIP, CLIP + UNSCALE)),
            r"you clipped before scaler.unscale_\(optimizer\).*"
            r"Call scaler.unscale_\(optimizer\) first, then clip",
        ),
        # unscale_ twice: once to clip, once more "to be sure" before the step
        (
            clipped_step_with((CLIP, CLIP + UNSCALE)),
            "scaler.unscale_\\(optimizer\\) was called twice in one step.*Call it once",
        ),
        # unscale_ after the step and the update
        (
            clipped_step_with(
                (UNSCALE, ""), ("    scaler.update()\n", "    scaler.update()\n" + UNSCALE)
            ),
            r"unscale_\(optimizer\) ran after scaler.step\(optimizer\): unscale, then clip",
        ),
        # clipping to a fixed 1.0 instead of the max_norm it was given
        (
            clipped_step_with(("model.parameters(), max_norm", "model.parameters(), 1.0")),
            r"norm .*, above max_norm=.*: they were not clipped",
        ),
        (
            clipped_step_with(("scaler.scale(loss).backward()", "loss.backward()")),
            r"scaler.scale\(loss\) was never called.*Use scaler.scale\(loss\).backward\(\)",
        ),
        (
            clipped_step_with(("scaler.step(optimizer)", "optimizer.step()")),
            "optimizer.step\\(\\) was called directly",
        ),
    ],
    ids=[
        "none",
        "no-clipping",
        "no-unscale",
        "unscale-after-clip",
        "unscale-twice",
        "unscale-after-update",
        "clip-to-1",
        "unscaled-backward",
        "optimizer-step",
    ],
)
def test_train_step_fp16_clipped_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab04.check_train_step_fp16_clipped(wrong, DEVICE)


# ----------------------------------------------------------------------------------------------
# Run All past an unsolved exercise
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "check", "context"),
    [
        ("train_step_fp16", lab04.check_train_step_fp16, (DEVICE,)),
        ("train_step_fp16_clipped", lab04.check_train_step_fp16_clipped, (DEVICE,)),
    ],
    ids=["train_step_fp16", "train_step_fp16_clipped"],
)
def test_an_unsolved_training_step_goes_on_with_a_float32_stand_in_that_trains(
    name, check, context, monkeypatch, capsys
):
    """Later cells train with these steps: unsolved, they train with a float32 step (the
    float16 recipe is the hidden solution), which learns and leaves the scaler's scale alone."""
    unsolved = starter(4, name, low_precision=LOW)
    stand_in = assert_runs_past_with_a_stand_in(check, unsolved, context, monkeypatch, capsys)
    model = lab04._check_model(DEVICE)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler(DEVICE.type)
    inputs, targets = lab04._check_batch(DEVICE)
    losses = [
        stand_in(model, optimizer, scaler, nn.CrossEntropyLoss(), inputs, targets, 1.0).item()
        for _ in range(5)
    ]
    assert losses[-1] < losses[0]
    assert scaler.get_scale() == 2.0**16


@pytest.mark.parametrize(
    ("name", "check", "context"),
    [
        ("predict_amp", lab04.check_predict_amp, (DEVICE, LOW)),
        ("train_step_bf16", lab04.check_train_step_bf16, (DEVICE,)),
    ],
    ids=["predict_amp", "train_step_bf16"],
)
def test_an_unsolved_exercise_nothing_uses_goes_on_as_it_is(
    name, check, context, monkeypatch, capsys
):
    """No later cell uses these answers: unsolved, the lab goes on with the starter as it is."""
    unsolved = starter(4, name, low_precision=LOW)
    with pytest.raises(ExerciseNotSolved):
        check(unsolved, *context)
    monkeypatch.setenv(checks.STRICT_ENV, "0")
    assert check(unsolved, *context) is unsolved
    assert "the cells below use your answer as it is" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# The lab's measurements and tables
# ----------------------------------------------------------------------------------------------


def watch_dtypes(model, inputs, targets, dtype):
    """The lab's own forward hooks and autocast block (section 2), with the reasons added."""
    watch = lab_namespace(4, "watch_dtypes")["watch_dtypes"]
    return lab04.with_reasons(watch(model, inputs, targets, dtype))


def test_watch_dtypes_records_autocast_choices():
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
    rows = watch_dtypes(model, torch.rand(2, 8), torch.tensor([0, 2]), torch.bfloat16)
    by_step = {row["step"]: row for row in rows}
    assert [by_step[f"layer {i}"]["op"] for i in range(3)] == ["Linear", "ReLU", "Linear"]
    assert by_step["layer 0"]["input"] == "float32"
    assert by_step["layer 0"]["output"] == "bfloat16"
    assert by_step["logits → loss"]["output"] == "float32"
    assert "float32 list" in by_step["logits → loss"]["why"]
    assert not model[0]._forward_hooks, "the hooks are removed afterwards"


def test_watch_dtypes_shows_the_cpu_lists():
    """On the CPU, exp, log, softmax and sum are on no list: they follow their bf16 input."""
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
    rows = watch_dtypes(model, torch.rand(2, 8), torch.tensor([0, 2]), torch.bfloat16)
    outputs = {row["op"]: row["output"] for row in rows}
    assert {op: outputs[op] for op in ("softmax", "sum", "exp", "log")} == dict.fromkeys(
        ("softmax", "sum", "exp", "log"), "bfloat16"
    )
    assert outputs["cross_entropy"] == "float32"


def test_saved_for_backward_counts_activations_and_autocast_weight_copies():
    """The lab's own saved-tensor hooks (section 6) on a model small enough to count by hand."""
    saved_for_backward = lab_namespace(4, "saved_for_backward", loss_fn=nn.CrossEntropyLoss())[
        "saved_for_backward"
    ]
    width, batch = 64, 32
    model = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 10))
    inputs, targets = torch.rand(batch, 8), torch.randint(0, 10, (batch,))
    fp32 = saved_for_backward(model, inputs, targets, None)
    amp = saved_for_backward(model, inputs, targets, torch.bfloat16)
    copies, activations = "low-precision weight copies", "activations"
    assert fp32[copies] == 0, "float32 saves references to the weights, no copies"
    # only the second layer's copy is kept: the first layer's input needs no gradient, so its
    # backward never multiplies by that weight
    assert amp[copies] == 2 * model[2].weight.numel()
    # the ReLU output (batch × width) is what both layers share; 2 bytes instead of 4
    relu_output = batch * width
    assert fp32[activations] - amp[activations] >= 2 * relu_output
    assert amp[activations] < 0.75 * fp32[activations]


def test_is_weight_copy_tells_a_cast_weight_from_an_activation():
    layer = nn.Linear(4, 3)
    assert lab04.is_weight_copy(layer.weight.to(torch.bfloat16))
    assert lab04.is_weight_copy(layer.weight.to(torch.bfloat16).t())
    assert not lab04.is_weight_copy(layer(torch.rand(2, 4)))
    assert not lab04.is_weight_copy(torch.rand(3, 4))


FASTER_RUNS = ((10.0, 10.2, 10.1, 9.9, 10.3), (5.0, 5.1, 4.9, 5.2, 5.0))
NOISY_RUNS = ((8.0, 9.0, 12.0, 13.0, 14.0, 16.0), (7.0, 8.0, 9.0, 10.0, 11.0, 13.0))
SLOWER_RUNS = (FASTER_RUNS[1], FASTER_RUNS[0])


def test_speedup_bars_colour_each_case_by_its_verdict():
    """Colours and title follow lab 3's rule: a ratio of 1.32× whose middle halves overlap is
    grey (within the noise), not a gain."""
    speedups = {
        name: timing.speedup(*runs)
        for name, runs in {"a": FASTER_RUNS, "b": NOISY_RUNS, "c": SLOWER_RUNS}.items()
    }
    assert speedups["b"].ratio > 1.3 and speedups["b"].direction == timing.WITHIN_THE_NOISE
    figure = lab04.speedup_bars(speedups, title="t")
    ax = figure.axes[0]
    assert ax.get_title() == "t\nAMP was faster in 1, within the noise in 1, slower in 1 of 3 cases"
    colours = [to_hex(bar.get_facecolor()) for bar in ax.patches[:3]]
    assert colours == [to_hex(lab04.DIRECTION_COLORS[d]) for d in lab04.DIRECTION_COLORS]
    assert len(set(colours)) == 3


def test_directions_count_leaves_out_verdicts_no_case_got():
    noise = {"x": timing.speedup(*NOISY_RUNS), "y": timing.speedup(*NOISY_RUNS)}
    assert lab04.directions_count(noise) == "within the noise in 2 of 2 cases"


@pytest.mark.parametrize(
    ("runs", "words"),
    [
        (FASTER_RUNS, "faster"),
        (SLOWER_RUNS, "slower"),
        (NOISY_RUNS, "No difference beyond the noise"),
    ],
    ids=["faster", "slower", "noise"],
)
@pytest.mark.parametrize("bf16_units", [True, False, None], ids=["bf16", "no-bf16", "unknown"])
def test_verdict_describes_the_measurement(runs, words, bf16_units, monkeypatch):
    """The sentence takes Speedups and says no more than their direction allows, whatever
    the CPU's bfloat16 units (each answer has its own sentence)."""
    monkeypatch.setattr(lab04, "cpu_bf16_units", lambda: bf16_units)
    training = timing.speedup(*runs)
    sentence = lab04.verdict(DEVICE, training, timing.speedup(*NOISY_RUNS))
    assert str(training) in sentence and words in sentence
    assert "faster" not in sentence.replace(str(training), "") or runs is FASTER_RUNS


@pytest.mark.parametrize(
    ("device_type", "usable_gib", "quick", "sizes"),
    [
        ("cpu", None, False, (2048, 512)),
        ("cpu", None, True, (256, 128)),
        ("cuda", 78, False, (8192, 8192)),  # an H100 to itself
        ("cuda", 139, False, (8192, 8192)),  # an H200
        ("cuda", 78 / 8, False, (8192, 8192)),  # an eighth of an H100
        ("cuda", 5, False, (8192, 4096)),
        ("cuda", 2, False, (4096, 4096)),
        ("cuda", 1, False, (2048, 2048)),
        ("cuda", 0.1, False, (1024, 1024)),  # nothing fits: the smallest
        ("cuda", None, True, (4096, 2048)),
    ],
)
def test_mlp_sizes_fit_the_device(device_type, usable_gib, quick, sizes):
    usable = None if usable_gib is None else usable_gib * 2**30
    assert lab04.mlp_sizes(device_type, usable, quick=quick) == sizes
    width, batch = sizes
    if device_type == "cuda":
        # big enough for tensor cores: sides in multiples of 64, thousands wide
        assert width % 64 == 0 and batch % 64 == 0 and width >= 1024
        if usable is not None and sizes != lab04.GPU_SIZES[-1]:
            assert 2 * lab04.training_bytes(width, batch) <= usable


def test_training_bytes_counts_weights_and_activations():
    width, batch = 1024, 512
    weights = width * width + 75 * width + 10
    assert lab04.training_bytes(width, batch) >= 10 * weights + 8 * batch * width


@pytest.mark.parametrize(("width", "batch_from_width"), [(2048, 1 / 16), (256, 1 / 16)])
def test_amp_saves_memory_only_where_activations_dominate(width, batch_from_width):
    """Section 6's two shapes, at the CPU's full and quick widths: wide layers with a small
    batch need more memory under AMP (weight copies), narrow layers with a big batch about
    half (activations)."""
    saved_for_backward = lab_namespace(4, "saved_for_backward", loss_fn=nn.CrossEntropyLoss())[
        "saved_for_backward"
    ]

    def ratio(shape_width, shape_batch):
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Linear(64, shape_width),
            nn.ReLU(),
            nn.Linear(shape_width, shape_width),
            nn.ReLU(),
            nn.Linear(shape_width, 10),
        )
        inputs, targets = torch.rand(shape_batch, 64), torch.randint(0, 10, (shape_batch,))
        fp32, amp = (
            sum(saved_for_backward(model, inputs, targets, dtype).values())
            for dtype in (None, torch.bfloat16)
        )
        return amp / fp32

    assert ratio(width, int(width * batch_from_width)) > 1.5
    assert ratio(width // 8, 2 * width) < 0.6


def test_alternating_runs_time_every_function_in_turns():
    calls = []
    alternating_runs = lab_namespace(4, "alternating_runs", device=DEVICE)["alternating_runs"]
    runs = alternating_runs({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 10)
    assert {name: len(times) for name, times in runs.items()} == {"a": 10, "b": 10}
    # five rounds, each a's runs then b's: a change of load mid-way hits both
    assert calls[:5] == ["a"] * 5 and calls[5:10] == ["b"] * 5 and calls[10:13] == ["a"] * 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize(
    ("name", "check", "context"),
    [
        ("predict_amp", lab04.check_predict_amp, (torch.float16,)),
        ("train_step_bf16", lab04.check_train_step_bf16, ()),
        ("train_step_fp16", lab04.check_train_step_fp16, ()),
        ("train_step_fp16_clipped", lab04.check_train_step_fp16_clipped, ()),
    ],
)
def test_the_autocast_checks_accept_the_solutions_and_refuse_the_starters_on_cuda(
    name, check, context, capsys
):
    """On a GPU the lab's low precision is float16 and the checks' model, batch, autocast
    watch and scaler live on CUDA (backward's hooks run on the GPU's autograd thread, which
    inherits the caller's autocast state)."""
    cuda = torch.device("cuda")
    check(solution(4, name, low_precision=torch.float16), cuda, *context)
    assert "✅" in capsys.readouterr().out
    with pytest.raises(ExerciseNotSolved):
        check.unchecked(starter(4, name, low_precision=torch.float16), cuda, *context)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_backward_inside_autocast_is_refused_on_cuda():
    from tests.labs.corpus_lab04 import fp16_backward_inside

    with pytest.raises(ExerciseNotSolved, match=r"^backward\(\) ran inside the autocast block"):
        lab04.check_train_step_fp16.unchecked(fp16_backward_inside, torch.device("cuda"))
