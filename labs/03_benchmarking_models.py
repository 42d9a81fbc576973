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
# # Lab 3 · Benchmarking models
#
# "My change made it faster" is a claim, and this lab teaches you to back it with a number you
# can trust. By the end you will be able to:
#
# 1. **time** PyTorch code correctly: warm-up, repeats, and synchronizing with the GPU;
# 2. use **`torch.utils.benchmark.Timer`**, which does all of that for you;
# 3. read a **`torch.profiler`** op table, draw its top ops and save a trace;
# 4. **find the bottleneck** of a small pipeline by labelling its stages;
# 5. make a pipeline faster and report the gain as a **measured ratio with its spread**;
# 6. time **`torch.compile`** honestly: its one-off compile apart from the warm calls.
#
# You need what labs 1 and 2 taught: tensors, `nn.Module`/`nn.Sequential` and the digits data.
#
# **After a kernel restart** (*Kernel › Restart*, or a crash when memory ran out) your edits
# are still here but every variable is gone: click the cell you were working on and choose
# *Run › Run All Above Selected Cell*, then carry on from there.

# %%
from workshop_labs import setup

device = setup()

# %%
import statistics
import time

import torch
from torch import nn

from workshop_labs import data, lab03, runtime, timing

# %% [markdown]
# ## 1 · Why timing is harder than it looks
#
# We will time a small multilayer perceptron (MLP) that classifies the 8×8 digits. Its weights
# stay random: how long a forward pass takes does not depend on the weights' *values*, only on
# the shapes, so we need no training for this lab.
#
# `torch.inference_mode()` switches autograd off: when we only predict, there is no backward
# pass, so PyTorch need not record the graph. That makes prediction faster and is what you
# should always benchmark inference with.


# %%
def make_model() -> nn.Module:
    """A fresh digits classifier: 64 pixels in, 10 class scores out."""
    model = nn.Sequential(
        nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
    )
    return model.to(device).eval()


X, y = data.digits()
X = X.to(device)
batch = X[:256]

# %% [markdown]
# ### The naive way: `time.time()` around one call
#
# Let us time the *same* forward pass many times, each call on its own, with a brand-new model.
# If one measurement were enough, every dot below would sit on the same line.
#
# On a GPU the loop needs one more line, `torch.cuda.synchronize()`: it waits until the GPU
# has finished all the work queued so far. A GPU works in the background while Python runs
# ahead (the section "CUDA is asynchronous" below shows it), so without this wait the clock
# would stop before the work is done. On the CPU every operation has finished when it
# returns, so there is nothing to wait for: the cell skips the call there (on a machine
# without a GPU, `torch.cuda.synchronize()` would even raise an error).

# %%
fresh_model = make_model()
single_runs_ms = []
with torch.inference_mode():
    for _ in range(runtime.pick(full=30, quick=12)):
        if device.type == "cuda":
            torch.cuda.synchronize()  # nothing queued from before may leak into this call
        start = time.perf_counter()
        fresh_model(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()  # the GPU has really finished this call
        single_runs_ms.append((time.perf_counter() - start) * 1000)

lab03.timing_spread(single_runs_ms)

# %% [markdown]
# Two lessons hide in this picture (its title gives this run's numbers):
#
# * **The first call is usually the slowest.** It pays one-off costs: memory is allocated,
#   the math library picks and prepares its kernels, caches are cold (on a GPU add context
#   creation and kernel selection, which can take seconds). So we **warm up**: run the code a
#   few times and throw those timings away.
# * **Single calls scatter.** Other programs, the operating system and frequency scaling all
#   add noise. So we **repeat** and report the median with its spread.
#
# And `time.time()` is the wrong clock: it follows the wall clock, which the system may adjust
# while you measure, and on some systems it only ticks every few milliseconds.
# `time.perf_counter()` is the clock made for measuring intervals:

# %%
for clock in ("time", "perf_counter"):
    info = time.get_clock_info(clock)
    print(f"time.{clock}(): resolution {info.resolution:.0e} s, adjustable: {info.adjustable}")

# %% [markdown]
# ### CUDA is asynchronous
#
# On a GPU there is a third trap. When Python calls `model(batch)`, PyTorch only **queues** the
# work (the *kernels*) for the GPU and returns at once; the GPU works through the queue while
# Python runs ahead. A clock read right after the call measures how long it took to *queue*
# the work, not to do it. `torch.cuda.synchronize()` waits until the queue is empty, so you
# synchronize **before starting** the clock (nothing left over from earlier) and **before
# stopping** it (everything you timed has finished).

# %%
lab03.async_timeline()

# %% [markdown]
# On a machine with a GPU the next cell shows the lie in numbers; on the CPU every operation
# finishes before it returns, so there is nothing to wait for, which is why the timing loops
# of this lab call `torch.cuda.synchronize()` only when `device.type == "cuda"`.

# %%
if device.type == "cuda":
    big = torch.randn(4096, 4096, device=device)
    big @ big  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    big @ big
    queued_ms = (time.perf_counter() - start) * 1000
    torch.cuda.synchronize()
    finished_ms = (time.perf_counter() - start) * 1000
    print(f"without synchronize: {queued_ms:.3f} ms · with synchronize: {finished_ms:.3f} ms")
else:
    print("No GPU here: CPU operations are synchronous, the clock is right without a sync.")

# %% [markdown]
# ### Exercise 1 · A timing function you can trust
#
# Write `time_it(fn, device, warmup=3, repeats=10)` that returns the mean time of **one** call
# of `fn()` in **milliseconds**:
#
# 1. call `fn()` `warmup` times without timing;
# 2. if `device.type == "cuda"`, call `torch.cuda.synchronize()` before starting the clock;
# 3. time `repeats` calls with `time.perf_counter()`, synchronizing (on CUDA) before you stop it;
# 4. return the milliseconds per call: `fn` runs `warmup + repeats` times in all.
#
# The check runs your function on a *simulated* GPU that behaves like a real one (calls return
# at once, the first call is slow), so it can tell you what you forgot even on a laptop.


# %% tags=["exercise"]
def time_it(fn, device, warmup=3, repeats=10):
    # TODO: warm up, synchronize on CUDA, time `repeats` calls, return milliseconds per call
    start = time.time()
    fn()
    return time.time() - start


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def time_it(fn, device, warmup=3, repeats=10):
#     for _ in range(warmup):
#         fn()
#     if device.type == "cuda":
#         torch.cuda.synchronize()
#     start = time.perf_counter()
#     for _ in range(repeats):
#         fn()
#     if device.type == "cuda":
#         torch.cuda.synchronize()
#     return (time.perf_counter() - start) * 1000 / repeats
# ```
#
# </details>

# %%
time_it = lab03.check_time_it(time_it)

# %% [markdown]
# Your `time_it` returns one number, the mean. To see how far single runs scatter, the rest of
# the lab uses `time_runs`: the same steps, but it synchronizes and reads the clock around
# **every** call and keeps each run, so we can take a median and quartiles.


# %%
def time_runs(fn, warmup=3, repeats=10) -> list[float]:
    """Milliseconds of each of `repeats` calls of `fn()`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        runs.append((time.perf_counter() - start) * 1000)
    return runs


# %% [markdown]
# ## 2 · `torch.utils.benchmark.Timer`: the tool that does it for you
#
# PyTorch ships a timer that warms up, synchronizes CUDA, repeats until the measurement is
# stable (`blocked_autorange`) and reports the median with its spread. One detail to know:
# it runs with **one thread** unless you pass `num_threads`, so give it the number your code
# really uses.

# %%
import torch.utils.benchmark as benchmark

model = make_model()


def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Class scores for every row of `inputs`, computed `batch_size` rows at a time."""
    with torch.inference_mode():
        return torch.cat(
            [model(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
        )


timer = benchmark.Timer(
    stmt="predict(model, batch, batch_size=256)",
    globals={"predict": predict, "model": model, "batch": batch},
    num_threads=torch.get_num_threads(),
    label="digits MLP",
    description="256 samples",
)
measurement = timer.blocked_autorange(min_run_time=runtime.pick(full=1.0, quick=0.3))
print(measurement)

# %% [markdown]
# The printout gives the **median** time of one call and how many runs it rests on. It may end
# with a line such as `WARNING: Interquartile range is 17.9% of the median measurement. This
# could indicate system fluctuation.` That is `Timer` judging its own measurement: the middle
# half of its runs (from the first to the third quartile, the *interquartile range*, IQR)
# spans 17.9 % of the median, so single runs scattered that much. It warns from 10 % on, and
# above 25 % it says "significant environmental influence" instead. The cause is outside your
# code: other programs, the operating system or the CPU changing its clock speed. The median
# is still the number to report, but two measurements whose medians differ by less than such
# a spread do not differ beyond the noise. Run the cell again when the machine is quieter, or
# give `Timer` more time (`min_run_time`) so that more runs go into its median.
#
# Does `Timer` agree with our own `time_runs`? Compare like with like: `Timer` reports a
# **median**, so take the median of our runs too, and set the gap between the two against the
# spread of each (the interquartile range, IQR: the width of the middle half of the runs,
# from the first quartile to the third). A mean would mislead here: one run disturbed by
# another program pulls the mean up and blows up the standard deviation, while the median
# hardly moves.

# %%
runs = time_runs(lambda: predict(model, batch, 256), repeats=20)
runs_q1, runs_median, runs_q3 = statistics.quantiles(runs, n=4, method="inclusive")
timer_median, timer_iqr = measurement.median * 1000, measurement.iqr * 1000
print(f"benchmark.Timer: median {timer_median:.3f} ms, IQR {timer_iqr:.3f} ms")
print(f"time_runs:       median {runs_median:.3f} ms, IQR {runs_q3 - runs_q1:.3f} ms")
mean, std = statistics.mean(runs), statistics.stdev(runs)
print(f"(time_runs' mean, for contrast: {mean:.3f} ± {std:.3f} ms)")
print(lab03.agreement_sentence(timer_median, timer_iqr, runs_median, runs_q3 - runs_q1))

# %% [markdown]
# ### Exercise 2 · Time a single prediction with `Timer`
#
# A service that answers one request at a time predicts **one sample** per call. Build a
# `benchmark.Timer` for the statement `predict(model, batch[:1], batch_size=1)` (its
# `globals` must hold `predict`, `model` and `batch`), with **all** the threads the model
# uses, and set `one_at_a_time` to the `Measurement` that its
# `blocked_autorange(min_run_time=0.5)` returns. A Measurement remembers its statement and
# its number of threads: the check reads them, and how many calls the median rests on.

# %% tags=["exercise"]
# TODO: a Timer for predict(model, batch[:1], batch_size=1) with all threads, blocked_autorange
one_at_a_time = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# one_at_a_time = benchmark.Timer(
#     stmt="predict(model, batch[:1], batch_size=1)",
#     globals={"predict": predict, "model": model, "batch": batch},
#     num_threads=torch.get_num_threads(),
# ).blocked_autorange(min_run_time=0.5)
# ```
#
# </details>

# %%
one_at_a_time = lab03.check_timer(one_at_a_time, model, batch)

# %% [markdown]
# ### Lab 3's rule for a speed verdict
#
# Does a sample cost less in a batch than alone? Two medians alone cannot say: each
# is only as sure as the runs behind it. The rule this course follows for every speed statement:
#
# 1. **repeat** each side (warmed up, synchronized), never one run;
# 2. take the **median** of each, and its **middle half** (first to third quartile);
# 3. report the **ratio of the medians**, and in brackets the smallest and largest ratio the
#    two middle halves allow (the slower quarter of one against the faster of the other);
# 4. when that range holds 1, the middle halves overlap: the verdict is **within the noise**.
#    That does not mean "equal": it means this measurement cannot tell the two apart. More
#    repeats or a quieter machine may; a claim of "faster" may not.
#
# The course's helper `timing.verdict(what, before_runs, after_runs)` applies the rule and
# gives one line, which every lab prints. It needs every run, so we time with `time_runs`
# one sample alone, and a batch of 8 divided by 8.
#
# From here to the end of the lab we measure on **one thread**, as `Timer` does unless told
# otherwise. With two threads, every large operation is split in two and waits for both
# halves; when another program holds one of the cores, that wait can take longer than the
# arithmetic, and whatever uses both threads loses by an amount that depends on the other
# program, not on your change. One thread measures the work itself. (To report what a
# program gains on all its threads, measure that too, on a machine kept quiet.)

# %%
torch.set_num_threads(1)
alone_ms = time_runs(lambda: predict(model, batch[:1], batch_size=1), repeats=20)
in_a_batch_ms = [ms / 8 for ms in time_runs(lambda: predict(model, batch[:8], 8), repeats=20)]
print(
    f"per sample: {statistics.median(alone_ms):.4f} ms alone, in a batch of 8: "
    f"{statistics.median(in_a_batch_ms):.4f} ms (medians)"
)
print(timing.verdict("time per sample, in a batch vs alone", alone_ms, in_a_batch_ms))

# %% [markdown]
# ## 3 · `torch.profiler`: where does the time go?
#
# A timer tells you *how long*; the profiler tells you *where*. It records every operation
# PyTorch runs (the `aten::` ops are PyTorch's C++ operations) with its time and call count.
# We profile prediction **one sample at a time**, the way a naive serving loop would do it.

# %%
from torch.profiler import ProfilerActivity, profile

activities = [ProfilerActivity.CPU]
if device.type == "cuda":
    activities.append(ProfilerActivity.CUDA)

few = X[: runtime.pick(full=512, quick=32)]
predict(model, few, batch_size=1)  # warm-up: profile the steady state, not the first call
with profile(activities=activities) as prof:
    predict(model, few, batch_size=1)

print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))

# %% [markdown]
# How to read the table:
#
# * **Self CPU** is the time spent *in the op itself*. **CPU total** also counts the ops it
#   calls: `aten::linear` calls `aten::t` (transpose the weight) and `aten::addmm` (the
#   matrix multiply plus bias), so its total contains theirs.
# * **# of Calls** is the clue to many performance problems: each call has a fixed cost.
#
# Sorted by *self* time, the top ops are the real work. As a chart:

# %%
lab03.top_ops_chart(prof, title="Top ops by self CPU time · predicting one sample at a time")

# %% [markdown]
# The profiler can also save a **trace**: a timeline of every op. Download the file and open
# it in `chrome://tracing` or at [ui.perfetto.dev](https://ui.perfetto.dev) to zoom into
# single calls.

# %%
trace_path = runtime.work_dir() / "lab03_trace.json"
prof.export_chrome_trace(str(trace_path))
print(f"trace saved: {trace_path} ({trace_path.stat().st_size / 1e6:.1f} MB)")

# %% [markdown]
# ### Exercise 3 · Read the op table in code
#
# `prof.key_averages()` is a list of events; each has a `key` (the op's name),
# `self_cpu_time_total`, `cpu_time_total` (microseconds) and `count`. Set `top_op` to the
# name of the op with the largest **self** CPU time, computed from `prof` (not typed in).

# %% tags=["exercise"]
events = prof.key_averages()
# TODO: the name (key) of the event with the largest self CPU time
top_op = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# events = prof.key_averages()
# top_op = max(events, key=lambda event: event.self_cpu_time_total).key
# ```
#
# </details>

# %%
top_op = lab03.check_top_op(top_op, prof)

# %% [markdown]
# ## 4 · Finding the bottleneck
#
# Look at the call counts again: predicting one sample runs three `addmm`, three `t`, two
# `relu`, a slice, ... The matrix multiply `addmm` is where the arithmetic happens; is its
# time the arithmetic, or the cost of *calling* it? Profile the same samples in one batch and
# compare what `addmm` costs **per sample**. One profile is one run, so by the rule of
# section 2 we record each way several times, in turn, and compare the middle halves:

# %%
predict(model, few, batch_size=len(few))  # warm-up for the new shape


def addmm_us_per_sample(batch_size: int) -> float:
    """Self CPU time of aten::addmm per sample, in one profiled prediction of `few`."""
    with profile(activities=activities) as recording:
        predict(model, few, batch_size=batch_size)
    addmm = next(e for e in recording.key_averages() if e.key == "aten::addmm")
    return addmm.self_cpu_time_total / len(few)


addmm_us = {"one at a time": [], "batched": []}
for _ in range(runtime.pick(full=7, quick=5)):
    addmm_us["one at a time"].append(addmm_us_per_sample(1))
    addmm_us["batched"].append(addmm_us_per_sample(len(few)))
for way, runs in addmm_us.items():
    print(f"aten::addmm per sample, {way}: median {statistics.median(runs):.2f} µs")
print(
    timing.verdict(
        "aten::addmm per sample, batched vs one at a time",
        addmm_us["one at a time"],
        addmm_us["batched"],
    )
)

# %% [markdown]
# Where the verdict says "faster", each sample's share of `addmm` costs that many times less
# in a batch, on this machine, now ("within the noise" would mean that other programs were
# so busy that this measurement cannot tell: run the cell again). For a single 64-pixel
# sample the arithmetic is tiny, so the time goes into the **fixed cost of each call**
# (Python, dispatching the op, preparing the math library, allocating the output), paid once
# per sample; a batch pays it once for all its samples and reads each weight once for all
# of them. That is the bottleneck, and it points at the fix:
# give every call more work, i.e. a **bigger batch**.
#
# Real pipelines have stages (load data, run the model, post-process) and the slow one is not
# always the model. Label each stage with `record_function` and the profiler adds up the time
# per stage. Here is a pipeline whose loading step builds each batch sample by sample, the
# way a `Dataset` is indexed, with a per-sample transform, then joins the samples into one
# batch tensor with `torch.stack` (lab 1):

# %%
from torch.profiler import record_function
from torch.utils.data import TensorDataset

dataset = TensorDataset(X, y.to(device))


def standardize(image: torch.Tensor) -> torch.Tensor:
    """Give one image mean 0 and standard deviation 1, a common per-sample transform."""
    return (image - image.mean()) / (image.std() + 1e-6)


def load_batch(indices: range) -> torch.Tensor:
    """Build a batch from single samples, standardizing each one."""
    return torch.stack([standardize(dataset[i][0]) for i in indices])


n_batches, stage_batch = runtime.pick(full=8, quick=2), runtime.pick(full=128, quick=64)

# %% [markdown]
# ### Exercise 4 · Label the stages, name the bottleneck
#
# The loading stage is already labelled with `record_function("load")`; label the forward
# pass `"model"` the same way. The cell then profiles the pipeline into `prof_stages`. Set
# `bottleneck` to the name of the stage with the larger total CPU time, computed from
# `prof_stages.key_averages()` (use `cpu_time_total`: a stage's time *includes* its ops).


# %% tags=["exercise"]
def run_pipeline():
    with torch.inference_mode():
        for b in range(n_batches):
            with record_function("load"):
                inputs = load_batch(range(b * stage_batch, (b + 1) * stage_batch))
            # TODO: label the forward pass "model"
            model(inputs)


with profile(activities=activities) as prof_stages:
    run_pipeline()

# TODO: "load" or "model", computed from prof_stages
bottleneck = None

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def run_pipeline():
#     with torch.inference_mode():
#         for b in range(n_batches):
#             with record_function("load"):
#                 inputs = load_batch(range(b * stage_batch, (b + 1) * stage_batch))
#             with record_function("model"):
#                 model(inputs)
#
#
# with profile(activities=activities) as prof_stages:
#     run_pipeline()
#
# stage_ms = {
#     event.key: event.cpu_time_total
#     for event in prof_stages.key_averages()
#     if event.key in ("load", "model")
# }
# bottleneck = max(stage_ms, key=stage_ms.get)
# ```
#
# </details>

# %%
bottleneck = lab03.check_stages(bottleneck, prof_stages)

# %% [markdown]
# On an idle machine loading wins by far: building a batch one sample at a time runs a dozen
# tiny ops per sample, while the model runs a handful of ops per *batch*. (On a busy shared
# machine the numbers jump around; profile twice before you conclude.) The fix is the same
# idea for both stages: give every call a whole batch of work. Section 5 does it for the
# model; then it is your turn to do it for the loading.
#
# ## 5 · A measured improvement: batch size
#
# Now we make prediction faster and **measure** by how much. We predict the same samples with
# several batch sizes and report **throughput** (samples per second), the number that matters
# for a job that must get through a dataset. We use the **median** run: noise from other
# programs only ever *adds* time, and the median ignores a few disturbed runs. Each batch size
# gets its verdict against batch size 1, by the rule of section 2, still on one thread.

# %%
samples = X[: runtime.pick(full=1792, quick=256)]
batch_sizes = [1, 8, 64, 256]
runs_ms = {}
for batch_size in runtime.progress(batch_sizes, desc="batch sizes"):
    runs_ms[batch_size] = time_runs(
        lambda bs=batch_size: predict(model, samples, bs),
        warmup=1,
        repeats=runtime.pick(full=7, quick=5),
    )
    median_ms = statistics.median(runs_ms[batch_size])
    print(f"batch size {batch_size:>3}: median {median_ms:.2f} ms for {len(samples)} samples")
for batch_size in batch_sizes[1:]:
    print(timing.verdict(f"batch size {batch_size} vs 1", runs_ms[1], runs_ms[batch_size]))

lab03.throughput_chart(runs_ms, n_samples=len(samples))

# %% [markdown]
# The x axis is logarithmic: equal distances mean equal *factors* (1 → 8 → 64 multiplies by
# 8 each time), which suits batch sizes that grow by multiplying. The y axis starts at 0, so
# the heights compare honestly. The bar on each point runs from the slowest to the fastest
# run. The title repeats the printed verdicts, each batch size against batch size 1. Where
# the curve levels off, read the bars: neighbouring large batch sizes often differ by less
# than the noise, and on a busy machine their order can change from one run to the next.
#
# Now the before/after picture: batch size 1 against the larger batch size with the highest
# median throughput. Each bar is the median; its whisker spans the **quartiles** of the runs (the
# middle half). The title is the verdict printed above it: when the middle halves overlap,
# the difference is **within the noise**, and the title says so instead of claiming a gain.

# %%
throughput = {bs: len(samples) / statistics.median(runs) for bs, runs in runs_ms.items()}
best = max(batch_sizes[1:], key=throughput.get)
print(f"the best batch size on this run: {best}")
print(timing.verdict("the best batch size vs batch size 1", runs_ms[1], runs_ms[best]))
lab03.before_after_chart(
    {"batch size 1": runs_ms[1], f"batch size {best}": runs_ms[best]}, n_samples=len(samples)
)

# %% [markdown]
# Read the curve, not a single point: its title says what it did on this machine, and the
# bars show how far single runs scattered. Batching pays off while each call has too little
# work to hide its fixed cost; once a batch is big enough, the cost per sample is mostly the
# arithmetic itself, and larger batches gain little, nothing, or even lose (for instance
# when a batch's intermediate results outgrow the CPU's caches). Where the curve bends
# depends on the hardware and on what else the machine is doing, which is why you measure
# instead of assuming.
#
# Report the gain as a **ratio** (before ÷ after of the median times, measured the same way
# on the same machine) with its **spread**: "3× (quartiles 2.8–3.3×)" survives a change of
# hardware far better than "12 ms" does, and the spread says whether the gain is real. And say
# what you traded: a bigger batch raises **throughput** but a single request now waits for
# its whole batch, so the **latency** of one prediction does not improve. For a service
# answering one user at a time, batch size 1 may be right after all.
#
# ### Exercise 5 · Fix the loading bottleneck (if you have time)
#
# Write `load_batch_fast(indices)` that returns exactly what `load_batch(indices)` returns,
# without a Python loop over the samples:
#
# 1. take all the rows at once with `X[indices]` (a `range` picks rows like a list of
#    indices does), a tensor of shape `(len(indices), 64)`;
# 2. standardize **each row** on its own: its mean and std over `dim=1`, with
#    `keepdim=True` (lab 1) so that they have shape `(n, 1)` and stretch across their row;
# 3. add `1e-6` to the std, as `standardize` does.


# %% tags=["exercise", "stretch"]
def load_batch_fast(indices: range) -> torch.Tensor:
    # TODO: take the rows X[indices] at once and standardize each row over dim=1, no loop
    return None


# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def load_batch_fast(indices: range) -> torch.Tensor:
#     images = X[indices]
#     mean = images.mean(dim=1, keepdim=True)
#     std = images.std(dim=1, keepdim=True)
#     return (images - mean) / (std + 1e-6)
# ```
#
# </details>

# %%
load_batch_fast = lab03.check_fast_load(load_batch_fast, load_batch, X)

# %% [markdown]
# ### Exercise 6 · Measure your speed-up, with its spread
#
# The check above timed the loading alone, roughly. Now measure what the fix is worth for the
# **whole pipeline** of section 4, the model included, the way this lab taught. Here is that
# pipeline with the loading function as a parameter:


# %%
def run_pipeline_with(load) -> torch.Tensor:
    """Section 4's pipeline: load each batch with `load`, predict it, return all class scores."""
    with torch.inference_mode():
        return torch.cat(
            [model(load(range(b * stage_batch, (b + 1) * stage_batch))) for b in range(n_batches)]
        )


# %% [markdown]
# `before()` loads with `load_batch`, `after()` with your `load_batch_fast`; both must give the
# same class scores (a speed-up only counts for the same work). Replace the single, cold
# measurements below with **warm, repeated** ones: a warm-up, at least 5 timed runs of each,
# every run kept in milliseconds, synchronized on CUDA (`time_runs` does all of it). The check
# does not simply believe your numbers: it times `before()` and `after()` itself, the same
# way, compares your runs with its own (within the noise), and reports the ratio with its
# spread.


# %% tags=["exercise"]
def before():
    return run_pipeline_with(load_batch)


def after():
    return run_pipeline_with(load_batch_fast)


# TODO: warm up, then time at least 5 runs of each function, keeping every run (ms)
start = time.perf_counter()
before()
before_ms = (time.perf_counter() - start) * 1000
start = time.perf_counter()
after()
after_ms = (time.perf_counter() - start) * 1000
speedup_runs = {"before": [before_ms], "after": [after_ms]}

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# def before():
#     return run_pipeline_with(load_batch)
#
#
# def after():
#     return run_pipeline_with(load_batch_fast)
#
#
# speedup_runs = {
#     "before": time_runs(before, warmup=3, repeats=10),
#     "after": time_runs(after, warmup=3, repeats=10),
# }
# ```
#
# </details>

# %%
speedup_runs = lab03.check_speedup(speedup_runs, before, after, device)

# %% [markdown]
# The verdict, and as a picture, in samples per second through the whole pipeline.
# Re-running the exercise cell measures again: the bars move a little every time, and the
# verdict tells you whether the gain still stands clear of the noise.

# %%
print(
    timing.verdict(
        "whole pipeline, loading the batch at once vs one sample at a time",
        speedup_runs["before"],
        speedup_runs["after"],
    )
)
lab03.before_after_chart(
    {"load one at a time": speedup_runs["before"], "load the batch at once": speedup_runs["after"]},
    n_samples=n_batches * stage_batch,
)

# %% [markdown]
# The gain counts the whole pipeline: the model's time did not change, so the pipeline can
# never speed up by more than the loading's share of its time allows.
#
# Other knobs follow the same measure-change-measure loop, for instance
# `DataLoader(num_workers=...)` (lab 2) when loading is the bottleneck: it helps when each
# sample is costly to produce (e.g. decoding images); on 2 cores with data already in memory
# it mostly adds overhead. The next section times one more knob, which needs extra care.
#
# ## 6 · `torch.compile`: pay once, then time the warm calls
#
# `torch.compile(module)` returns a wrapper at once; the work happens in its **first call**:
# PyTorch traces the forward pass into a graph, and its compiler (*Inductor*) turns the
# graph into new code, C++ on the CPU (compiled by `g++`, which the course image holds) or
# Triton kernels on a GPU. Later calls with inputs of the same shape run that code directly.
# Its best trick is **fusion**: a chain of element-wise operations, which eager PyTorch runs
# one by one, each reading and writing the whole tensor, becomes one loop that reads the
# input once.
#
# Here is such a chain: the smooth activation below (a curve that bends like ReLU, but
# smoothly) is eight element-wise operations on a batch of activations.


# %%
class SmoothActivation(nn.Module):
    """0.5·x·(1 + tanh(0.798·(x + 0.045·x³))): eight element-wise operations."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh(0.7978845608 * (x + 0.044715 * x**3)))


smooth = SmoothActivation()
x = torch.randn(runtime.pick(full=16384, quick=4096), 256, device=device)

# %% [markdown]
# ### Exercise 7 · Time the compile apart from the warm calls
#
# The first call of `compiled` compiles: seconds, ten or more on a 2-core CPU the first time,
# less once Inductor's caches hold the code; every later call is a warm call of
# milliseconds. Timed together, the compile would swamp the runs. Set
# `compile_timing` to a dict with:
#
# 1. `"compile_s"`: the time of the **first** call `compiled(x)`, alone, in **seconds**;
# 2. `"eager"` and `"compiled"`: the runs of `smooth(x)` and of `compiled(x)`, timed with
#    `time_runs` (warm-up first, at least 5 repeats), in milliseconds.
#
# `torch.compiler.reset()` forgets earlier compilations, so running the cell again compiles
# again. The check times both calls itself, to tell a compile from a warm call.

# %% tags=["exercise"]
torch.compiler.reset()  # forget earlier compilations: this cell compiles afresh every time
compiled = torch.compile(smooth)

# TODO: time the first call of compiled(x) alone (seconds), then warm runs of both (ms)
compile_timing = {
    "compile_s": None,
    "eager": time_runs(lambda: smooth(x), warmup=0, repeats=5),
    "compiled": time_runs(lambda: compiled(x), warmup=0, repeats=5),
}

# %% [markdown] tags=["solution"]
# <details><summary>Solution</summary>
#
# ```python
# torch.compiler.reset()  # forget earlier compilations: this cell compiles afresh every time
# compiled = torch.compile(smooth)
#
# start = time.perf_counter()
# compiled(x)
# if device.type == "cuda":
#     torch.cuda.synchronize()
# compile_s = time.perf_counter() - start
#
# compile_timing = {
#     "compile_s": compile_s,
#     "eager": time_runs(lambda: smooth(x), warmup=3, repeats=10),
#     "compiled": time_runs(lambda: compiled(x), warmup=3, repeats=10),
# }
# ```
#
# </details>

# %%
compile_timing = lab03.check_compiled(compile_timing, smooth, compiled, x, device)

# %% [markdown]
# The verdict on the warm calls, and what the compile costs against what each call saves:

# %%
compiled_vs_eager = timing.speedup(compile_timing["eager"], compile_timing["compiled"])
print(f"first call, compiling: {compile_timing['compile_s']:.1f} s")
print(timing.verdict("compiled vs eager", compile_timing["eager"], compile_timing["compiled"]))
saved_ms = statistics.median(compile_timing["eager"]) - statistics.median(
    compile_timing["compiled"]
)
if compiled_vs_eager.direction == timing.FASTER:
    calls = compile_timing["compile_s"] * 1000 / saved_ms
    print(f"each warm call saves {saved_ms:.2f} ms: the compile pays back after {calls:,.0f} calls")
else:
    print("no gain beyond the noise on this machine: here the compile never pays back")
lab03.before_after_chart(
    {"eager": compile_timing["eager"], "compiled": compile_timing["compiled"]}, n_samples=len(x)
)

# %% [markdown]
# Whatever your verdict says, three lessons hold:
#
# * **The compile is a one-off cost, timed apart.** It is paid on the first call (and again
#   for every new input shape, or after `torch.compiler.reset()`), so it belongs in its own
#   number, never among the runs: one compiling run in ten would make any median lie.
# * **It pays back only over many calls.** The line above divides the compile by what one
#   warm call saves: a training run or a server answering for hours repays it easily; a
#   notebook cell that calls the model a handful of times never does.
# * **The gain depends on the model and the machine.** Fusion helps chains of element-wise
#   operations most; a model made of large matrix multiplies already spends its time in the
#   math library, and a tiny model may gain nothing at all. Measure, with the rule, before
#   you keep `torch.compile` in your code.

# %% [markdown]
# ## Recap
#
# * Warm up, repeat, use `time.perf_counter()`, and on CUDA `torch.cuda.synchronize()` before
#   starting and before stopping the clock (on the CPU there is nothing to wait for); or let
#   `torch.utils.benchmark.Timer` do it all.
# * `torch.profiler.profile` records every op; `key_averages()` sorted by **self** time shows
#   where the work is, **total** time includes children, the call count reveals overhead;
#   `export_chrome_trace` saves a timeline.
# * `record_function("name")` labels a stage so the profiler can show which stage is the
#   bottleneck; it is not always the model.
# * Fix the bottleneck, measure again with the same work, and report the gain as a ratio of
#   medians with its quartiles: when the middle halves overlap, the change is within the
#   noise. Say what you traded.
# * `torch.compile` compiles on its first call: time that call apart, warm up, then time the
#   warm calls; the compile pays back only over many calls.
