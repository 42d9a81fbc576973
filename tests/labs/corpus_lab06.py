"""Lab 6's answers, kept as test data: for every exercise the starter, the reference (the
published solution), wrong answers a beginner writes, each with the words its refusal must
hold, and other right answers, which must pass."""

from __future__ import annotations

import functools
import math
import tempfile
from pathlib import Path

import onnxruntime
import torch
from torch import nn
from torchvision.transforms import v2

from tests.labs.corpus import case
from tests.labs.solutions import lab_namespace, solution, starter
from workshop_labs import data

EXERCISES = (
    "conv_side",
    "small_cnn",
    "non_parameters",
    "load_trusted",
    "save_checkpoint",
    "resume",
    "save_if_best",
    "prepare_for_finetuning",
    "make_transform",
    "export_for_serving",
    "onnx_scores",
)

# The pixel statistics the lab normalizes with (section 6), as its cell computes them.
PIXELS = data.digits_split()[0].tensors[0]
PIXEL_MEAN, PIXEL_STD = PIXELS.mean().item(), PIXELS.std().item()

# The lab's own definitions that its solutions and checks use.
LAB = lab_namespace(
    6,
    "DigitsCNN",
    "TrainingConfig",
    "rng_state",
    "set_rng_state",
    pixel_mean=PIXEL_MEAN,
    pixel_std=PIXEL_STD,
)
TrainingConfig, rng_state, DigitsCNN = LAB["TrainingConfig"], LAB["rng_state"], LAB["DigitsCNN"]


def served_model():
    """A DigitsCNN for digits 5–9 whose BatchNorm has running averages of its own, in eval()."""
    torch.manual_seed(0)
    model = DigitsCNN(num_classes=5)
    with torch.no_grad():
        model(data.digits()[0][:64])  # train() mode: the running averages move
    return model.eval()


@functools.cache
def onnx_file() -> tuple[Path, nn.Module, torch.Tensor]:
    """An ONNX file of served_model(), exported once for every onnx_scores case."""
    model, digits = served_model(), data.digits()[0][:32]
    path = Path(tempfile.mkdtemp(prefix="corpus_lab06_")) / "digits.onnx"
    program = torch.onnx.export(
        model, (digits[:2],), dynamo=True, dynamic_shapes={"x": {0: "batch"}}, verbose=False
    )
    program.save(path)
    return path, model, digits


# What each check is given besides the answer, as the lab's cell gives it (built when used).
CONTEXT = {
    "conv_side": lambda: (),
    "small_cnn": lambda: (),
    "non_parameters": lambda: (DigitsCNN,),
    "load_trusted": lambda: (TrainingConfig,),
    "save_checkpoint": lambda: (rng_state,),
    "resume": lambda: (rng_state,),
    "save_if_best": lambda: (),
    "prepare_for_finetuning": lambda: (DigitsCNN,),
    "make_transform": lambda: (PIXEL_MEAN, PIXEL_STD),
    "export_for_serving": lambda: (served_model(), data.digits()[0][:32]),
    "onnx_scores": onnx_file,
}


def run(check, case):
    """The lab's cell: the answer and its context in, the very answer back when accepted."""
    answer = case.answer()
    returned = check(answer, *CONTEXT[case.exercise]())
    if returned is not answer:
        raise AssertionError(f"check_{case.exercise} did not return the answer it accepted")


def with_edits(name, *edits):
    """The published solution that defines ``name`` with each (old, new) text replaced."""
    return solution(6, name, edits=edits, **LAB)


# ---- conv_side ------------------------------------------------------------------------------


def conv_side_with_floor(size, kernel_size, stride=1, padding=0):
    return math.floor((size + 2 * padding - kernel_size) / stride) + 1


def conv_side_by_running_a_layer(size, kernel_size, stride=1, padding=0):
    layer = nn.Conv2d(1, 1, kernel_size, stride=stride, padding=padding)
    return layer(torch.zeros(1, 1, size, size)).shape[-1]


# ---- small_cnn ------------------------------------------------------------------------------


def small_cnn(*middle, features=8 * 2 * 2):
    """The exercise's network with ``middle`` between the convolution and the pooling."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, kernel_size=3, stride=2, padding=1, bias=False),
        *middle,
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(features, 10),
    )


class NormalizedTwice(nn.Module):
    """A BatchNorm2d registered on the model that forward never calls."""

    def __init__(self):
        super().__init__()
        self.layers = small_cnn(nn.ReLU())
        self.norm = nn.BatchNorm2d(8)

    def forward(self, x):
        return self.layers(x)


# ---- non_parameters -------------------------------------------------------------------------


def buffer_names(model):
    return [name for name, _ in model.named_buffers()]


def running_only(model):
    """Believes BatchNorm's running averages are all a state_dict adds."""
    return [name for name in model.state_dict() if "running" in name]


# ---- load_trusted ---------------------------------------------------------------------------


def load_from_an_open_file(path, device):
    with open(path, "rb") as file, torch.serialization.safe_globals([TrainingConfig]):
        return torch.load(file, map_location=str(device))


def load_falling_back_to_unsafe(path, device):
    """Tries the safe way, then, when it is refused, the unsafe one."""
    try:
        with torch.serialization.safe_globals([TrainingConfig]):
            return torch.load(path, map_location=device, weights_only=True)
    except Exception:
        return torch.load(path, map_location=device, weights_only=False)


def load_made_up(path, device):
    """Returns a checkpoint of its own making instead of reading the file."""
    return {"model": {"weight": torch.zeros(3, 2, device=device)}, "config": TrainingConfig()}


# ---- save_checkpoint ------------------------------------------------------------------------


def save_with_extras(path, model, optimizer, scheduler, epoch):
    checkpoint = dict(
        epoch=epoch,
        rng=rng_state(),
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        lr=scheduler.get_last_lr(),
    )
    torch.save(checkpoint, path)


def save_before_training(path, model, optimizer, scheduler, epoch):
    """Saves the state of a fresh optimizer, made for the purpose."""
    fresh = type(optimizer)(model.parameters(), **optimizer.defaults)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": fresh.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "rng": rng_state(),
    }
    torch.save(checkpoint, path)


# ---- resume ---------------------------------------------------------------------------------


def resume_with_torch_rng(path, model, optimizer, scheduler):
    checkpoint = torch.load(path, weights_only=True)
    for part, state in (
        (model, checkpoint["model"]),
        (optimizer, checkpoint["optimizer"]),
        (scheduler, checkpoint["scheduler"]),
    ):
        part.load_state_dict(state)
    torch.set_rng_state(checkpoint["rng"]["cpu"])
    next_epoch = checkpoint["epoch"] + 1
    return next_epoch


# ---- save_if_best ---------------------------------------------------------------------------


def save_if_best_returning_early(path, model, epoch, val_accuracy, best_accuracy):
    if val_accuracy <= best_accuracy:
        return best_accuracy
    torch.save({"model": model.state_dict(), "epoch": epoch, "val_accuracy": val_accuracy}, path)
    return val_accuracy


# ---- prepare_for_finetuning -----------------------------------------------------------------


def prepare_with_loops(model, num_classes):
    for parameter in model.body.parameters():
        parameter.requires_grad = False
    last = [m for m in model.body if list(m.parameters())][-1]
    for parameter in last.parameters():
        parameter.requires_grad = True
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model


def prepare_with_eval(model, num_classes):
    """Believes eval() freezes a model."""
    model.body.eval()
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model


def prepare_first_layer(model, num_classes):
    """Leaves the first layer with weights trainable instead of the last."""
    model.body.requires_grad_(False)
    model.body[1].requires_grad_(True)
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model


def prepare_with_a_second_head(model, num_classes):
    """Registers a new head beside the old one; forward still uses model.head."""
    model.body.requires_grad_(False)
    model.body[4].requires_grad_(True)
    model.new_head = nn.Linear(model.head.in_features, num_classes)
    return model


# ---- make_transform -------------------------------------------------------------------------


def transform_with_a_list(train):
    augment = [v2.RandomAffine(degrees=15, translate=(0.1, 0.1))] if train else []
    return v2.Compose(
        [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            *augment,
            v2.Normalize(mean=[PIXEL_MEAN], std=[PIXEL_STD]),
        ]
    )


def transform_normalize_first(train):
    steps = [v2.ToImage(), v2.Normalize(mean=[PIXEL_MEAN], std=[PIXEL_STD])]
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True)])


def transform_augments_validation(train):
    """The same pipeline, random transform included, for training and validation."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.RandomAffine(degrees=10, translate=(0.125, 0.125)),
            v2.Normalize(mean=[PIXEL_MEAN], std=[PIXEL_STD]),
        ]
    )


def transform_augments_first(train):
    """The random transform before ToImage, on the NumPy picture."""
    augment = [v2.RandomAffine(degrees=10)] if train else []
    return v2.Compose(
        [
            *augment,
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[PIXEL_MEAN], std=[PIXEL_STD]),
        ]
    )


# ---- export_for_serving ---------------------------------------------------------------------


def export_with_a_positional_dim(model, example):
    model.eval()
    return torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim.AUTO},))


def export_a_single_digit(model, example):
    """Hands export one digit (64 values) instead of a batch."""
    model.eval()
    return torch.export.export(model, (example[0],))


def export_the_module(model, example):
    """Returns the runnable module instead of the ExportedProgram."""
    model.eval()
    batch = torch.export.Dim("batch")
    return torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch}}).module()


# ---- onnx_scores ----------------------------------------------------------------------------


def onnx_scores_with_the_name_x(path, digits):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.tensor(session.run(None, {"x": digits.numpy()})[0])


def onnx_scores_from_a_tensor(path, digits):
    """Hands ONNX Runtime the torch tensor itself."""
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: digits})[0])


def onnx_scores_as_doubles(path, digits):
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    array = digits.double().numpy()
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: array})[0])


def onnx_scores_as_a_list(path, digits):
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: digits.numpy()})


def cases():
    """Every answer of the lab's corpus."""
    return [
        # conv_side
        case(
            "conv_side",
            "starter",
            starter(6, "conv_side", **LAB),
            r"returned 8 but nn\.Conv2d makes 6",
        ),
        case("conv_side", "reference", with_edits("conv_side"), None),
        case("conv_side", "right-floor", conv_side_with_floor, None),
        case("conv_side", "right-layer", conv_side_by_running_a_layer, None),
        case(
            "conv_side",
            "wrong-true-division",
            with_edits("conv_side", ("//", "/")),
            "a float: use //",
        ),
        case(
            "conv_side",
            "wrong-padding-once",
            with_edits("conv_side", ("2 * padding", "padding")),
            "padding counted once",
        ),
        case(
            "conv_side",
            "wrong-no-plus-one",
            with_edits("conv_side", (" + 1", "")),
            r"the \+ 1 is missing",
        ),
        case(
            "conv_side",
            "wrong-no-stride",
            with_edits("conv_side", (" // stride", "")),
            "stride left out",
        ),
        # small_cnn
        case("small_cnn", "starter", starter(6, "small_cnn", **LAB), r"no nn\.BatchNorm2d"),
        case("small_cnn", "reference", with_edits("small_cnn"), None),
        case("small_cnn", "right-after-relu", small_cnn(nn.ReLU(), nn.BatchNorm2d(8)), None),
        case(
            "small_cnn",
            "wrong-batchnorm1d",
            with_edits("small_cnn", ("nn.BatchNorm2d(8)", "nn.BatchNorm1d(8)")),
            "use nn.BatchNorm2d",
        ),
        case(
            "small_cnn",
            "wrong-input-channels",
            with_edits("small_cnn", ("nn.BatchNorm2d(8)", "nn.BatchNorm2d(1)")),
            r"BatchNorm2d\(1\) normalizes 1 channel.*makes 8",
        ),
        case(
            "small_cnn",
            "wrong-no-pooling-in-features",
            with_edits("small_cnn", ("8 * 2 * 2", "8 * 4 * 4")),
            "nn.Linear takes 128 features but Flatten hands it 32",
        ),
        case(
            "small_cnn",
            "wrong-after-flatten",
            nn.Sequential(*list(small_cnn(nn.ReLU()))[:-1], nn.BatchNorm2d(8), nn.Linear(32, 10)),
            "comes after Flatten",
        ),
        case("small_cnn", "wrong-unused", NormalizedTwice(), "forward never uses it"),
        # non_parameters
        case("non_parameters", "starter", starter(6, "non_parameters", **LAB), "is missing"),
        case("non_parameters", "reference", with_edits("non_parameters"), None),
        case("non_parameters", "right-buffers", buffer_names, None),
        case(
            "non_parameters",
            "wrong-everything",
            lambda model: list(model.state_dict()),
            r"`body\.1\.weight` is a parameter",
        ),
        case(
            "non_parameters",
            "wrong-running-only",
            running_only,
            r"`body\.2\.num_batches_tracked` is missing",
        ),
        case(
            "non_parameters",
            "wrong-parameters",
            lambda model: [name for name, _ in model.named_parameters()],
            "is a parameter",
        ),
        # load_trusted
        case("load_trusted", "starter", starter(6, "load_trusted", **LAB), "Allow just that class"),
        case("load_trusted", "reference", with_edits("load_trusted"), None),
        case("load_trusted", "right-open-file", load_from_an_open_file, None),
        case("load_trusted", "wrong-made-up", load_made_up, "did not come back as the saved"),
        case("load_trusted", "wrong-fallback", load_falling_back_to_unsafe, "ran code hidden"),
        case(
            "load_trusted",
            "wrong-no-map-location",
            with_edits("load_trusted", ("map_location=device, ", "")),
            "wrong map_location",
        ),
        # save_checkpoint
        case(
            "save_checkpoint",
            "starter",
            starter(6, "save_checkpoint", **LAB),
            "checkpoint missing model weights",
        ),
        case("save_checkpoint", "reference", with_edits("save_checkpoint"), None),
        case("save_checkpoint", "right-extras", save_with_extras, None),
        case(
            "save_checkpoint",
            "wrong-whole-model",
            with_edits("save_checkpoint", ('"model": model.state_dict()', '"model": model')),
            r"weights_only=True refused to load `torch\.nn.*Sequential`.*state_dict",
        ),
        case(
            "save_checkpoint",
            "wrong-no-optimizer",
            with_edits("save_checkpoint", ('"optimizer": optimizer.state_dict(),', "")),
            "missing optimizer state",
        ),
        case(
            "save_checkpoint",
            "wrong-no-epoch",
            with_edits("save_checkpoint", ('"epoch": epoch,', "")),
            "missing epoch",
        ),
        case(
            "save_checkpoint",
            "wrong-next-epoch",
            with_edits("save_checkpoint", ('"epoch": epoch,', '"epoch": epoch + 1,')),
            "the epoch passed in was",
        ),
        case("save_checkpoint", "wrong-fresh-optimizer", save_before_training, "momentum buffers"),
        # resume
        case("resume", "starter", starter(6, "resume", **LAB), "model weights not restored"),
        case("resume", "reference", with_edits("resume"), None),
        case("resume", "right-torch-rng", resume_with_torch_rng, None),
        case(
            "resume",
            "wrong-no-scheduler",
            with_edits("resume", ('scheduler.load_state_dict(checkpoint["scheduler"])', "")),
            "scheduler not restored",
        ),
        case(
            "resume",
            "wrong-no-optimizer",
            with_edits("resume", ('optimizer.load_state_dict(checkpoint["optimizer"])', "")),
            "optimizer state not restored",
        ),
        case(
            "resume",
            "wrong-whole-checkpoint-not-strict",
            with_edits(
                "resume",
                (
                    'model.load_state_dict(checkpoint["model"])',
                    "model.load_state_dict(checkpoint, strict=False)",
                ),
            ),
            r"model weights not restored.*strict=False",
        ),
        case(
            "resume",
            "wrong-whole-checkpoint",
            with_edits(
                "resume",
                ('model.load_state_dict(checkpoint["model"])', "model.load_state_dict(checkpoint)"),
            ),
            r"the whole checkpoint.*checkpoint\['model'\]",
        ),
        case(
            "resume",
            "wrong-same-epoch",
            with_edits("resume", ('checkpoint["epoch"] + 1', 'checkpoint["epoch"]')),
            "off by one",
        ),
        # save_if_best
        case("save_if_best", "starter", starter(6, "save_if_best", **LAB), "keeps the last epoch"),
        case("save_if_best", "reference", with_edits("save_if_best"), None),
        case("save_if_best", "right-early-return", save_if_best_returning_early, None),
        case(
            "save_if_best",
            "wrong-ties-overwrite",
            with_edits(
                "save_if_best", ("val_accuracy > best_accuracy", "val_accuracy >= best_accuracy")
            ),
            r"only tied the best.*strictly better",
        ),
        case(
            "save_if_best",
            "wrong-returns-latest",
            with_edits("save_if_best", ("    return best_accuracy", "    return val_accuracy")),
            r"returned 0\.8, but the best so far is 0\.85",
        ),
        case(
            "save_if_best",
            "wrong-whole-model",
            with_edits("save_if_best", ('{"model": model.state_dict()', '{"model": model')),
            r"weights_only=True refused.*Linear",
        ),
        # prepare_for_finetuning
        case(
            "prepare_for_finetuning",
            "starter",
            starter(6, "prepare_for_finetuning", **LAB),
            "head not replaced",
        ),
        case("prepare_for_finetuning", "reference", with_edits("prepare_for_finetuning"), None),
        case("prepare_for_finetuning", "right-loops", prepare_with_loops, None),
        case(
            "prepare_for_finetuning", "wrong-eval", prepare_with_eval, r"eval\(\) does not freeze"
        ),
        case(
            "prepare_for_finetuning",
            "wrong-first-layer",
            prepare_first_layer,
            r"body not frozen: `body\.1\.weight`",
        ),
        case(
            "prepare_for_finetuning",
            "wrong-second-head",
            prepare_with_a_second_head,
            r"new_head.*forward uses model\.head",
        ),
        case(
            "prepare_for_finetuning",
            "wrong-frozen-head",
            with_edits(
                "prepare_for_finetuning",
                ("model.body.requires_grad_(False)", ""),
                ("    return model", "    model.requires_grad_(False)\n    return model"),
            ),
            "new head is frozen",
        ),
        # make_transform
        case(
            "make_transform",
            "starter",
            starter(6, "make_transform", **LAB),
            r"torch\.uint8 pixels: add v2\.ToDtype",
        ),
        case("make_transform", "reference", with_edits("make_transform"), None),
        case("make_transform", "right-list", transform_with_a_list, None),
        case(
            "make_transform",
            "wrong-no-scale",
            with_edits("make_transform", ("scale=True", "scale=False")),
            "keeps pixels of 0–255",
        ),
        case(
            "make_transform",
            "wrong-normalize-first",
            transform_normalize_first,
            "ToDtype.*comes before v2.Normalize",
        ),
        case(
            "make_transform",
            "wrong-augments-validation",
            transform_augments_validation,
            "validation pictures must stay",
        ),
        case(
            "make_transform",
            "wrong-augments-numpy",
            transform_augments_first,
            "before v2.ToImage",
        ),
        case(
            "make_transform",
            "wrong-no-augmentation",
            with_edits("make_transform", ("    if train:\n", "    if False:\n")),
            "same picture every time",
        ),
        case(
            "make_transform",
            "wrong-no-normalize",
            with_edits(
                "make_transform",
                ("    steps.append(v2.Normalize(mean=[pixel_mean], std=[pixel_std]))\n", ""),
            ),
            "leaves out v2.Normalize",
        ),
        # export_for_serving
        case(
            "export_for_serving",
            "starter",
            starter(6, "export_for_serving", **LAB),
            "exported in train mode",
        ),
        case("export_for_serving", "reference", with_edits("export_for_serving"), None),
        case("export_for_serving", "right-positional-auto", export_with_a_positional_dim, None),
        case(
            "export_for_serving",
            "wrong-train-mode",
            with_edits("export_for_serving", ("    model.eval()\n", "")),
            "exported in train mode",
        ),
        case(
            "export_for_serving",
            "wrong-fixed-batch",
            with_edits("export_for_serving", (', dynamic_shapes={"x": {0: batch}}', "")),
            "takes only batches of 2",
        ),
        case(
            "export_for_serving",
            "wrong-single-digit",
            export_a_single_digit,
            "one batch of shape N × 64",
        ),
        case(
            "export_for_serving",
            "wrong-module",
            export_the_module,
            "not an ExportedProgram",
        ),
        # onnx_scores
        case("onnx_scores", "starter", starter(6, "onnx_scores", **LAB), "InferenceSession"),
        case("onnx_scores", "reference", with_edits("onnx_scores"), None),
        case("onnx_scores", "right-name-x", onnx_scores_with_the_name_x, None),
        case("onnx_scores", "wrong-tensor", onnx_scores_from_a_tensor, "takes NumPy arrays"),
        case("onnx_scores", "wrong-doubles", onnx_scores_as_doubles, "takes float32"),
        case("onnx_scores", "wrong-list", onnx_scores_as_a_list, "returned a list"),
    ]


CASES = cases()
