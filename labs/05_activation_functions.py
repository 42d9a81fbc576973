# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 5 · Activation functions
#
# Between two linear layers of every network in this course sits a small function such as
# `nn.ReLU()`. This lab answers the questions beginners ask about it: *why is it there at
# all, why are there so many, and does the choice matter?*
#
# **By the end of this lab you can**
#
# 1. explain why a network without activations is just one linear layer, which can only draw
#    straight decision boundaries, and where activations go (and where they do not);
# 2. draw ReLU, LeakyReLU, Sigmoid, Tanh, GELU and SiLU and their derivatives, letting
#    autograd compute the derivatives for you;
# 3. see *vanishing gradients* happen in a deep sigmoid network, layer by layer;
# 4. initialise a ReLU network with Kaiming's rule (`torch.nn.init`) and measure what it changes;
# 5. write your own activation as a function, as an `nn.Module`, and as a
#    `torch.autograd.Function` with a hand-written backward checked by `gradcheck`;
# 6. measure how the activation changes the training of the same network.
#
# **After a kernel restart** (*Kernel › Restart*, or a crash when memory ran out) your edits
# are still here but every variable is gone: click the cell you were working on and choose
# *Run › Run All Above Selected Cell*, then carry on from there.

# %%
from workshop_labs import setup

device = setup()

# %%
import torch
import torch.nn.functional as F
from torch import nn

from workshop_labs import activation_diagrams, data, lab05, plots
from workshop_labs.runtime import pick, progress, seed_everything

# %% [markdown]
# ## 1 · Why a network needs activations
#
# A linear layer computes `W @ x + b`. Stack two of them and you get `W2 @ (W1 @ x + b1) + b2`,
# which is again *one* matrix times `x` plus *one* bias. However many linear layers you stack,
# the result can only draw straight decision boundaries. An **activation function** applied
# elementwise between the layers bends the output, and that bend is what lets a deep network
# represent curved, complicated functions.
#
# Let us check the claim with code: two stacked `nn.Linear` layers equal a single one whose
# weight is `W2 @ W1`.

# %%
first, second = nn.Linear(4, 8), nn.Linear(8, 3)
x = torch.randn(5, 4)

with torch.no_grad():
    merged = nn.Linear(4, 3)
    merged.weight.copy_(second.weight @ first.weight)
    merged.bias.copy_(second.weight @ first.bias + second.bias)
    print(
        "two linear layers == one linear layer:",
        torch.allclose(second(first(x)), merged(x), atol=1e-6),
    )
    print(
        "with a ReLU between them            :",
        torch.allclose(second(torch.relu(first(x))), merged(x), atol=1e-6),
    )

# %% [markdown]
# What do "only straight decision boundaries" look like? Below is a two-class problem in the
# plane: two interleaving half-moons of points, generated with torch. Four small networks
# learn it: no hidden layer, one and two hidden layers of 16 units with a ReLU after each,
# and two hidden layers *without* activations. Each network has one output per point, a raw
# score (a *logit*): positive means class 1. Lab 2's `nn.BCEWithLogitsLoss` takes that logit
# and applies the sigmoid itself. All 400 points go in at once, for 200 Adam steps: a second
# or two. First the data and the four networks, untrained:

# %%
seed_everything(0)
per_moon = 200
angle = torch.rand(2 * per_moon) * torch.pi
upper = torch.stack([angle[:per_moon].cos(), angle[:per_moon].sin()], dim=1)
lower = torch.stack([1 - angle[per_moon:].cos(), 0.5 - angle[per_moon:].sin()], dim=1)
points = torch.cat([upper, lower]) + 0.12 * torch.randn(2 * per_moon, 2)
point_classes = torch.cat([torch.zeros(per_moon), torch.ones(per_moon)])  # 0 upper, 1 lower


def moons_net(hidden_layers, activation_class, width=16):
    """`hidden_layers` layers of `width` units, each followed by the activation (None: none)."""
    layers, size = [], 2
    for _ in range(hidden_layers):
        layers.append(nn.Linear(size, width))
        if activation_class is not None:
            layers.append(activation_class())
        size = width
    layers.append(nn.Linear(size, 1))  # one logit per point
    return nn.Sequential(*layers)


boundary_models = {}
for name, hidden_layers, activation_class in (
    ("0 hidden layers", 0, None),
    ("1 hidden layer, ReLU", 1, nn.ReLU),
    ("2 hidden layers, ReLU", 2, nn.ReLU),
    ("2 hidden layers, no activation", 2, None),
):
    seed_everything(0)
    boundary_models[name] = moons_net(hidden_layers, activation_class)
print(list(boundary_models))

# %% [markdown]
# ### Exercise 1 · predict the straight ones
#
# Before they train: which of these four networks can only ever draw a **straight** boundary,
# however long they train? Write their names (as printed above) in a set.

# %% tags=["exercise"]
# TODO: the names of the networks whose boundary must stay a straight line
straight_only = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# straight_only = {"0 hidden layers", "2 hidden layers, no activation"}
# ```
#
# Without an activation, stacked `Linear` layers merge into one (this section's first cell
# showed it), and one `Linear` layer with a single output is positive on one side of a straight
# line.
#
# </details>

# %%
straight_only = lab05.check_straight_only(straight_only, boundary_models)

# %% [markdown]
# Now train them all (a few hundred weights each, so the CPU is quickest):

# %%
bce = nn.BCEWithLogitsLoss()
for model in boundary_models.values():
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(200):
        optimizer.zero_grad()
        loss = bce(model(points).squeeze(1), point_classes)
        loss.backward()
        optimizer.step()

activation_diagrams.decision_boundaries(boundary_models, points, point_classes)

# %% [markdown]
# The shading is the class each network predicts at every point of the plane, the black line
# is where that prediction changes. Without a hidden layer the boundary is a straight line,
# as it must be. **Two hidden layers without activations draw a straight line too**: they are
# one linear layer in disguise, as this section's first cell proved, and no training bends
# them. One hidden layer with a ReLU already bends the line: each ReLU unit can add a kink,
# so the boundary is made of straight pieces. With two hidden layers the pieces follow the
# moons closely.

# %% [markdown]
# ## 2 · The activation zoo and its derivatives
#
# | activation | formula | why people use it |
# | --- | --- | --- |
# | **ReLU** | `max(0, x)` | cheap, gradient 1 for every positive input; the default choice |
# | **LeakyReLU** | `max(0.1·x, x)` | like ReLU, but negatives keep a small slope (0.1 here) |
# | **Sigmoid** | `1 / (1 + e^-x)` | squashes to (0, 1): a probability; saturates at both ends |
# | **Tanh** | `(e^x - e^-x) / (e^x + e^-x)` | squashes to (-1, 1), centred on zero; saturates too |
# | **GELU** | `x · Φ(x)` (Φ = normal CDF) | a smooth ReLU; standard in transformers (BERT, GPT) |
# | **SiLU / Swish** | `x · sigmoid(x)` | another smooth ReLU; used in EfficientNet, Llama |
#
# Training only ever uses an activation's **derivative** (its slope): backpropagation multiplies
# the incoming gradient by `f'(x)`. So the picture that matters is the dashed one below: where is
# the slope zero (no learning signal), where is it small, where is it 1?
#
# We do not derive any of these by hand. Autograd already knows them: make `x` require
# gradients, compute `y = f(x)`, call `y.sum().backward()`, and `x.grad` holds `f'(x)` at every
# point. (Summing is allowed because each output depends only on its own input, so the
# gradient of the sum with respect to `x[i]` is exactly `f'(x[i])`.)

# %%
activations = {
    "ReLU": nn.ReLU(),
    "LeakyReLU (slope 0.1)": nn.LeakyReLU(0.1),
    "Sigmoid": nn.Sigmoid(),
    "Tanh": nn.Tanh(),
    "GELU": nn.GELU(),
    "SiLU": nn.SiLU(),
}

x = torch.linspace(-4, 4, 401, requires_grad=True)
curves = {}
for name, activation in activations.items():
    x.grad = None  # start from an empty gradient for every activation
    y = activation(x)
    y.sum().backward()
    curves[name] = (y.detach(), x.grad.clone())

lab05.activation_curves(x, curves)

# %% [markdown]
# Things to notice in the picture (each panel's title gives the slope's range, as measured):
#
# * **Sigmoid's slope never exceeds 0.25**, and it is almost zero once `|x| > 4`: the function
#   *saturates*. Tanh's slope reaches 1, but only near zero.
# * **ReLU's slope is exactly 0 for every negative input.** A unit whose input is always
#   negative never learns again (a "dead ReLU"). LeakyReLU keeps a small slope there.
# * **GELU and SiLU** look like a ReLU with the corner rounded off, and dip slightly below zero.
#
# The same activations also exist as plain functions (`torch.relu`, `torch.sigmoid`,
# `F.gelu`, `F.silu`, ...). The `nn.` versions are modules, so they can sit in an
# `nn.Sequential` and show up when you print a model; the functions are handy inside `forward`.

# %% [markdown]
# ### Exercise 2 · a derivative calculator
#
# Write `autograd_derivative(activation, x)` that returns `activation'(x)` at every point of `x`,
# computed by autograd. The caller's `x` is a normal tensor that does not require gradients,
# and your function must give the same answer when called twice with the same `x`
# (remember from lab 1 where gradients go, and that they *accumulate*).


# %% tags=["exercise"]
def autograd_derivative(activation, x):
    # TODO: return the derivative of `activation` at every point of `x`, using autograd
    return None


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def autograd_derivative(activation, x):
#     x = x.detach().clone().requires_grad_(True)  # a fresh leaf: its .grad starts empty
#     activation(x).sum().backward()
#     return x.grad
# ```
#
# </details>

# %%
autograd_derivative = lab05.check_autograd_derivative(autograd_derivative)

# %% [markdown]
# ## 3 · Vanishing gradients
#
# Backpropagation is the chain rule: on its way back from the loss to layer 1 of a 10-layer
# network, the gradient is multiplied, layer after layer, by the activation's slope **and** by
# the layer's weights. The sigmoid's slope is never more than 0.25, so a sigmoid layer cuts the
# gradient to a quarter or less *unless its weights amplify it*, and weights can do that:
# the slope alone does not decide. What happens depends on the weights a network really
# has. When the first layers receive almost no gradient, they barely learn: the gradient has
# **vanished**.
#
# Let us measure it instead of believing it. We build the same deep network three times,
# changing only the activation, push one batch of digits through, call `backward()` once, and
# read the size (norm) of each layer's weight gradient from `.grad`.


# %%
def deep_mlp(activation_class, depth, width=64):
    """`depth` hidden layers of the same width, each followed by the activation."""
    layers, size = [], data.DIGITS_FEATURES
    for _ in range(depth):
        layers += [nn.Linear(size, width), activation_class()]
        size = width
    layers.append(nn.Linear(size, data.DIGITS_CLASSES))
    return nn.Sequential(*layers)


features, labels = data.digits()
batch_x, batch_y = features[:256].to(device), labels[:256].to(device)

gradient_norms = {}
for activation_class in (nn.Sigmoid, nn.Tanh, nn.ReLU):
    seed_everything(0)  # same starting weights for every activation
    model = deep_mlp(activation_class, depth=10).to(device)
    loss = F.cross_entropy(model(batch_x), batch_y)
    loss.backward()
    gradient_norms[activation_class.__name__] = [
        layer.weight.grad.norm().item() for layer in model if isinstance(layer, nn.Linear)
    ]

lab05.gradient_per_layer(gradient_norms)
print(lab05.gradient_loss_summary(gradient_norms))

# %% [markdown]
# The y-axis is logarithmic: each grid line is a factor of 10. With **Sigmoid** the bars fall
# in a straight line, by about the same factor at every layer (printed above), and the first
# layer ends up with a tiny fraction of the last layer's gradient. With one learning rate for
# all layers, the early layers effectively do not train.
#
# **Tanh** (slope up to 1, centred on zero) and **ReLU** (slope exactly 1 where active) lose
# far less, but they do lose: the printed ratios are far smaller than Sigmoid's, yet well
# above 1. What takes the rest? The weights. PyTorch initialises a layer's weights small
# (uniform within ±1/√inputs), so they *shrink* a gradient on its way back instead of
# amplifying it. Measure one layer alone:

# %%
square_layer = nn.Linear(64, 64)  # default initialisation, like every layer above
incoming = torch.randn(10_000, 64)  # many random gradients arriving at the layer's output
passed_back = incoming @ square_layer.weight  # what the layer hands to the layer before it
print(f"the weights alone scale a gradient by {(passed_back.norm() / incoming.norm()):.2f}")

# %% [markdown]
# The printed factor is close to 1/√3 ≈ 0.58, what this initialisation gives a square layer,
# and it comes on top of the activation's slope: at most 0.25 for Sigmoid, so at most about
# 1/7 per layer; compare the per-layer factor printed above. For ReLU, about half the units
# pass nothing back (slope 0), which is why ReLU loses more than Tanh here. The lesson: the
# sigmoid's small slope makes vanishing almost certain, while ReLU-family activations lose a
# moderate amount, which comes from the initialisation and which §4 changes. This is the main
# reason ReLU-family activations replaced the sigmoid inside networks; the sigmoid survives
# at the *output*, where a probability is wanted.

# %% [markdown]
# ### Where activations go, and where they do not
#
# An activation goes *between* two layers that hold weights. The end of the network is
# different, because the loss comes next:
#
# * `F.cross_entropy` (the function form of lab 2's `nn.CrossEntropyLoss`, used above) takes
#   the raw **logits** and applies softmax inside. A softmax of your own before it would be
#   applied twice.
# * A **sigmoid** belongs only at a yes/no output, and even there `nn.BCEWithLogitsLoss`
#   takes the raw logit and applies the sigmoid inside: `torch.sigmoid(logit)` is for reading
#   a probability at prediction time.
#
# The picture reads two models module by module, in the order `forward()` runs them: a
# digits network from `deep_mlp` (two hidden layers, to fit the page) with the loss used
# above, and §1's two-moons network with its `BCEWithLogitsLoss`. Replace the first model by
# `nn.Sequential(*deep_mlp(nn.ReLU, depth=2), nn.Softmax(dim=1))` and run the cell again: the
# picture says what is wrong.

# %%
activation_diagrams.where_activations_go(
    {
        "10 digit classes: deep_mlp(nn.ReLU, depth=2)": (
            deep_mlp(nn.ReLU, depth=2),
            F.cross_entropy,
            features[:1],
        ),
        "2 classes: §1's two-moons network": (
            boundary_models["2 hidden layers, ReLU"],
            bce,
            points[:1],
        ),
    }
)

# %% [markdown]
# ### Exercise 3 · gradient norm per layer, for any model
#
# Turn the measurement into a reusable function `layer_grad_norms(model, x, y)`:
#
# * compute the cross-entropy loss of `model(x)` against `y` and run `backward()`;
# * return a list with the norm of every `nn.Linear` layer's **weight** gradient, first layer
#   first, as Python floats;
# * it must work for models that are *not* an `nn.Sequential` (layers nested inside
#   sub-modules: `model.modules()` walks all of them), and give the same answer when called
#   twice on the same model.


# %% tags=["exercise"]
def layer_grad_norms(model, x, y):
    # TODO: one backward pass, then one gradient norm per nn.Linear weight (first layer first)
    return None


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def layer_grad_norms(model, x, y):
#     model.zero_grad()  # otherwise a second call adds to the first call's gradients
#     F.cross_entropy(model(x), y).backward()
#     return [
#         module.weight.grad.norm().item()
#         for module in model.modules()
#         if isinstance(module, nn.Linear)
#     ]
# ```
#
# </details>

# %%
layer_grad_norms = lab05.check_layer_grad_norms(layer_grad_norms)

# %% [markdown]
# ## 4 · Initialisation: PyTorch's default vs Kaiming
#
# Every `nn.Linear` starts with random weights. PyTorch's default draws them uniformly within
# ±1/√fan_in, where *fan_in* is the layer's number of inputs: a standard deviation of
# 1/√(3·fan_in). §3 measured how much such a layer shrinks a gradient (a factor near
# 1/√3 ≈ 0.58). It shrinks the signal on the way forward the same way, and ReLU then sets
# about half of it to zero.
#
# Kaiming He and colleagues (2015) worked out the weight size that keeps the signal the same
# size through a ReLU layer: a normal distribution with standard deviation **√(2/fan_in)**,
# where the 2 makes up for the half that ReLU zeroes. `torch.nn.init` has this rule and the
# other common ones; their names end with `_` because they overwrite the tensor in place.

# %%
layer = nn.Linear(64, 64)
print(f"default init: weight std {layer.weight.std():.3f}, 1/√(3·64) = {(3 * 64) ** -0.5:.3f}")
nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
print(f"Kaiming init: weight std {layer.weight.std():.3f}, √(2/64)   = {(2 / 64) ** 0.5:.3f}")

# %% [markdown]
# To re-initialise a whole model, `model.apply(fn)` calls `fn(module)` on every module inside
# the model (nested ones too, and the model itself); `fn` picks the modules it wants to change.
#
# ### Exercise 4 · Kaiming initialisation for a whole model
#
# Write `init_kaiming(module)`: when `module` is an `nn.Linear`, fill its weight with
# `nn.init.kaiming_normal_(..., nonlinearity="relu")` and set its bias to zero with
# `nn.init.zeros_`; leave every other module alone. `model.apply(init_kaiming)` will call it.


# %% tags=["exercise"]
def init_kaiming(module):
    # TODO: for an nn.Linear only: Kaiming-normal weight (for ReLU), bias set to zero
    pass


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def init_kaiming(module):
#     if isinstance(module, nn.Linear):
#         nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
#         nn.init.zeros_(module.bias)
# ```
#
# </details>

# %%
init_kaiming = lab05.check_init_kaiming(init_kaiming)

# %% [markdown]
# Now the 10-layer ReLU network of §3, built twice from the same seed: once as PyTorch
# initialises it, once after `model.apply(init_kaiming)`. On the way forward we record the
# size (standard deviation) of each linear layer's output; on the way back, your
# `layer_grad_norms` from Exercise 3 measures the gradients.


# %%
def layer_output_stds(model, x):
    """The std of every nn.Linear's output, first layer first (for an nn.Sequential)."""
    stds = []
    with torch.no_grad():
        for layer in model:
            x = layer(x)
            if isinstance(layer, nn.Linear):
                stds.append(x.std().item())
    return stds


output_stds, init_gradient_norms = {}, {}
for init_name, init in (("default init", None), ("Kaiming init", init_kaiming)):
    seed_everything(0)  # the same starting weights as the ReLU network of §3
    model = deep_mlp(nn.ReLU, depth=10)
    if init is not None:
        model.apply(init)
    model = model.to(device)
    output_stds[init_name] = layer_output_stds(model, batch_x)
    init_gradient_norms[init_name] = layer_grad_norms(model, batch_x, batch_y)

lab05.signal_and_gradient_bars(output_stds, init_gradient_norms)
for init_name, stds in output_stds.items():
    print(
        f"{init_name:>12}: output std {stds[0]:.2f} after layer 1, "
        f"{min(stds):.2f} at its smallest, {stds[-1]:.2f} after layer {len(stds)}"
    )
print(lab05.gradient_loss_summary(init_gradient_norms))

# %% [markdown]
# With the default initialisation the outputs shrink over the first layers, and the gradient
# shrinks layer after layer on its way back (the printed ratio is the one §3 measured for
# ReLU: same seed, same weights). With Kaiming's rule the outputs do not fade (compare the
# printed smallest values) and the gradient bars stay at about the same height, far above
# the default ones. A network whose early layers get little gradient learns slowly at first:
# §6 trains a ReLU network both ways.

# %% [markdown]
# ## 5 · Your own activation: function, module, autograd Function
#
# There are three ways to add an activation PyTorch does not have. We use *squareplus*,
# `(x + sqrt(x² + b)) / 2`, a smooth ReLU that needs no exponential (`b` sets how rounded the
# corner is; `b = 0` gives exactly ReLU).
#
# **As a plain function.** Any function built from tensor operations works, and autograd
# differentiates it for free (here through your `autograd_derivative` from Exercise 2):


# %%
def squareplus(x, b=0.25):
    return (x + torch.sqrt(x * x + b)) / 2


points = torch.tensor([-2.0, 0.0, 2.0])
print("x              :", points)
print("squareplus(x)  :", squareplus(points))
print("its derivative :", autograd_derivative(squareplus, points))

# %% [markdown]
# **As an `nn.Module`.** Wrap it in a class when it should sit inside `nn.Sequential`, show up
# in `print(model)`, carry a setting such as `b`, or own a **learnable parameter**. The rules
# from lab 2 apply: inherit from `nn.Module`, call `super().__init__()` first, compute in
# `forward`.


# %%
class Squareplus(nn.Module):
    def __init__(self, b=0.25):
        super().__init__()
        self.b = b  # a plain setting, not learned

    def forward(self, x):
        return squareplus(x, self.b)

    def extra_repr(self):
        return f"b={self.b}"  # shown by print(model)


print(nn.Sequential(nn.Linear(64, 32), Squareplus(b=0.5), nn.Linear(32, 10)))

# %% [markdown]
# ### Exercise 5 · a learnable LeakyReLU
#
# LeakyReLU uses a fixed slope for negative inputs. Make the slope **learnable**: write
# `LearnableLeakyReLU(initial_slope=0.1)` whose forward returns `x` where `x >= 0` and
# `slope * x` elsewhere, with `slope` a parameter the optimizer can see in
# `model.parameters()`. (PyTorch ships this idea as `nn.PReLU`; do not use it here.)


# %% tags=["exercise"]
class LearnableLeakyReLU(nn.Module):
    def __init__(self, initial_slope=0.1):
        # TODO: set up the module and register `slope` as a learnable parameter
        pass

    def forward(self, x):
        # TODO: x where x >= 0, slope * x elsewhere (torch.where is handy)
        return x


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# class LearnableLeakyReLU(nn.Module):
#     def __init__(self, initial_slope=0.1):
#         super().__init__()
#         self.slope = nn.Parameter(torch.tensor(float(initial_slope)))
#
#     def forward(self, x):
#         return torch.where(x >= 0, x, self.slope * x)
# ```
#
# </details>

# %%
LearnableLeakyReLU = lab05.check_learnable_leaky_relu(LearnableLeakyReLU)

# %% [markdown]
# **As a `torch.autograd.Function`.** Sometimes you want to write the backward pass yourself:
# the formula autograd would build is slow or numerically unstable, or you want a deliberately
# "wrong" gradient (the straight-through estimator used for quantization). A
# `torch.autograd.Function` has two static methods:
#
# * `forward(ctx, x)` computes the output and stores what backward will need with
#   `ctx.save_for_backward(...)`;
# * `backward(ctx, grad_output)` receives the gradient of the loss with respect to the output
#   and returns the gradient with respect to each input: `grad_output * f'(x)`
#   (the chain rule), with the **same shape as `x`**.
#
# You call it with `.apply(x)`, never by creating an instance. Because a hand-written backward
# can be wrong, `torch.autograd.gradcheck` compares it with a numerical estimate (tiny steps
# `(f(x + ε) - f(x - ε)) / 2ε`). Use **float64** for gradcheck: float32 is too coarse for that
# estimate and gradcheck would report false errors.


# %%
class SquareplusFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        root = torch.sqrt(x * x + 0.25)
        ctx.save_for_backward(x, root)
        return (x + root) / 2

    @staticmethod
    def backward(ctx, grad_output):
        x, root = ctx.saved_tensors
        return grad_output * (1 + x / root) / 2  # d/dx (x + sqrt(x² + b)) / 2


x64 = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
print("gradcheck passes:", torch.autograd.gradcheck(SquareplusFunction.apply, (x64,)))
print(
    "same values as the plain function:",
    torch.allclose(SquareplusFunction.apply(x64), squareplus(x64)),
)

# %% [markdown]
# ### Exercise 6 · ELU with a hand-written backward (if you have time)
#
# ELU is `x` for `x > 0` and `exp(x) - 1` otherwise. Its forward is written for you; write
# `backward`. Its derivative is `1` for `x > 0` and `exp(x)` otherwise; remember the chain
# rule (`grad_output`) and the shape. The check runs `gradcheck` in float64.


# %% tags=["exercise", "stretch"]
class ELUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0, x, torch.exp(x) - 1)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        # TODO: return the gradient of the loss with respect to x
        return None


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# class ELUFunction(torch.autograd.Function):
#     @staticmethod
#     def forward(ctx, x):
#         ctx.save_for_backward(x)
#         return torch.where(x > 0, x, torch.exp(x) - 1)
#
#     @staticmethod
#     def backward(ctx, grad_output):
#         (x,) = ctx.saved_tensors
#         return grad_output * torch.where(x > 0, torch.ones_like(x), torch.exp(x))
# ```
#
# </details>

# %%
ELUFunction = lab05.check_elu_function(ELUFunction)

# %% [markdown]
# ## 6 · Does the choice matter for training?
#
# Now the same network (four hidden layers of 64 units), the same data, the same optimizer
# (SGD with momentum) and training loop (`train()`/`eval()`) as lab 2 introduced them, the
# same seed; only the activation changes. ReLU runs twice: with PyTorch's default
# initialisation and with your `init_kaiming` from §4. Our `Squareplus` module joins the
# race: a custom module is used exactly like a built-in one. We record the training loss and
# the validation accuracy after every epoch.


# %%
def train_and_evaluate(activation_class, epochs, init=None):
    seed_everything(0)
    model = deep_mlp(activation_class, depth=4)
    if init is not None:
        model.apply(init)
    model = model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train_loader, val_loader = data.digits_loaders(batch_size=pick(full=64, quick=256))
    losses, accuracies = [], []
    for _ in range(epochs):
        model.train()
        total, count = 0.0, 0
        for xb, yb in train_loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(yb), count + len(yb)
        losses.append(total / count)
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in val_loader:
                correct += (model(xb.to(device)).argmax(dim=1) == yb.to(device)).sum().item()
        accuracies.append(correct / len(val_loader.dataset))
    return losses, accuracies


# %% [markdown]
# `train_and_evaluate` builds a new model from the same seed every time, so running the race
# again trains every network from scratch and draws the same curves.
#
# ### Exercise 7 · your contender
#
# Add one more activation to the race: any `nn.Module` class that is not in it yet, such as
# `nn.ELU`, `nn.Mish`, `nn.LeakyReLU`, `nn.Hardswish`, or your own `LearnableLeakyReLU` from
# Exercise 5. Give the class itself (`nn.ELU`, not `nn.ELU()`): `deep_mlp` creates one per
# layer. Before you run the race, guess where its curve will end up.

# %% tags=["exercise"]
my_activation = None  # TODO: an activation class for the race

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# my_activation = LearnableLeakyReLU  # our own module from Exercise 5: its slope learns too
# ```
#
# </details>

# %%
my_activation = lab05.check_my_activation(my_activation)

# %%
epochs = pick(full=25, quick=2)
contenders = {  # name: (activation class, initialisation applied to the new model)
    "ReLU": (nn.ReLU, None),
    "ReLU, Kaiming init": (nn.ReLU, init_kaiming),
    "Sigmoid": (nn.Sigmoid, None),
    "Tanh": (nn.Tanh, None),
    "GELU": (nn.GELU, None),
    "SiLU": (nn.SiLU, None),
    "Squareplus (ours)": (Squareplus, None),
    f"{my_activation.__name__} (your pick)": (my_activation, None),
}
train_losses, val_accuracies = {}, {}
for name, (activation_class, init) in progress(contenders.items(), desc="activations"):
    train_losses[name], val_accuracies[name] = train_and_evaluate(activation_class, epochs, init)

quickest = min(train_losses, key=lambda name: train_losses[name][0])
plots.curves(
    train_losses,
    title=f"Training loss per epoch\nlowest after epoch 1: {quickest}",
    xlabel="epoch",
    ylabel="cross-entropy loss",
    logy=True,
)
best = max(val_accuracies, key=lambda name: val_accuracies[name][-1])
worst = min(val_accuracies, key=lambda name: val_accuracies[name][-1])
plots.curves(
    val_accuracies,
    title=(
        f"Validation accuracy after {epochs} epochs\nhighest: {best} "
        f"({val_accuracies[best][-1]:.0%}), lowest: {worst} ({val_accuracies[worst][-1]:.0%})"
    ),
    xlabel="epoch",
    ylabel="accuracy",
)


# %%
def first_epoch_reaching(accuracies, target=0.9):
    """The first epoch whose validation accuracy reaches ``target``."""
    reached = [epoch for epoch, accuracy in enumerate(accuracies, start=1) if accuracy >= target]
    return reached[0] if reached else "not reached"


plots.table(
    [
        {
            "activation": name,
            "loss, epoch 1": train_losses[name][0],
            "final loss": train_losses[name][-1],
            "val accuracy": val_accuracies[name][-1],
            "first epoch ≥ 90 %": first_epoch_reaching(val_accuracies[name]),
        }
        for name in contenders
    ],
    title=f"After {epochs} epochs",
)

# %% [markdown]
# What to read from the curves and the table (in quick mode the networks train for only two
# epochs, so the curves barely move):
#
# * **Sigmoid** stays near chance level (10 classes: about 10 % accuracy, loss ≈ ln 10 ≈ 2.3):
#   even with only four hidden layers, too little gradient reaches the first layers.
# * **ReLU with the default initialisation** starts slowly: its loss after epoch 1 is still
#   close to 2.3. **ReLU with Kaiming init**, the same network with other starting weights,
#   learns from the first epoch and reaches 90 % in fewer epochs. The smooth ReLUs (GELU,
#   SiLU, Squareplus) start slower still with the default initialisation.
# * **Tanh** does very well at this depth: it is zero-centred and its slope reaches 1.
# * Your pick: did it land where you guessed? If you chose `LearnableLeakyReLU`, each layer
#   has its own `slope`, trained along with the weights.
#
# A practical rule: start with ReLU (GELU in transformers) and Kaiming initialisation; change
# the activation only when you have a measured reason.

# %% [markdown]
# ## Recap
#
# * Without an activation, stacked linear layers collapse into one linear layer: its decision
#   boundary is a straight line, however deep the stack.
# * Activations go between layers with weights; none before `CrossEntropyLoss` or
#   `BCEWithLogitsLoss`, which take raw logits. A sigmoid reads a yes/no probability.
# * Training sees an activation through its **derivative**; autograd computes it
#   (`y.sum().backward()`, then `x.grad`), no calculus needed.
# * **Sigmoid and Tanh saturate**; sigmoid's slope is at most 0.25, and with PyTorch's default
#   (small) weights a deep sigmoid network suffers **vanishing gradients**: its first layers
#   get a tiny fraction of the gradient the last layer gets.
# * **ReLU-family** activations (ReLU, LeakyReLU, GELU, SiLU) keep gradients usable through
#   depth; what they still lose comes from the weights' initialisation.
# * **Kaiming initialisation** (`nn.init.kaiming_normal_(w, nonlinearity="relu")`, applied to
#   every layer with `model.apply`) keeps the signal's size through ReLU layers, and a ReLU
#   network then learns from the first epoch.
# * A custom activation can be a **function**, an **`nn.Module`** (settings, learnable
#   parameters, shows in `print(model)`), or a **`torch.autograd.Function`** with its own
#   `backward`, which you verify with `torch.autograd.gradcheck` in float64.
# * Change one thing at a time and measure: the same network, seed and data, only the
#   activation (or the initialisation) differs.
