"""The experiment: a typed, validated, immutable description of one tuning run.

An experiment is read from a TOML file (``seer tune my.toml``) or is the embedded default
(``seer_torch/experiments/digits_default.toml``). Every field is checked before anything
starts; a bad one raises :class:`~seer_torch.errors.ConfigError` naming the field, the value
and what is allowed. Nothing here imports torch, so ``seer plan`` stays fast.

Units are in the names: ``time_budget_s`` (seconds), ``money_budget_usd`` (US dollars),
``price_usd_per_slot_hour`` (dollars per slot per hour).
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from seer_torch.config_values import (  # noqa: F401  (did_you_mean: re-exported)
    AUTO,
    did_you_mean,
    existing_file,
    int_at_least,
    int_or_auto,
    is_number,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)
from seer_torch.errors import ConfigError
from seer_torch.objective import DEFAULT_METRIC, Objective, check_builtin_metric, check_metric, check_mode
from seer_torch.plugins import add_to_import_path, dataset_loader, is_import_path, model_builder

DATASETS = ("digits", "cifar10")
DISTRIBUTIONS = ("uniform", "loguniform", "int_uniform")

#: The value of a field the planner chooses (``training.eta``, ``training.min_epochs``,
#: ``planner.num_finalists``); it reads as ``None``.
_AUTO_FIELDS = ("training.eta", "training.min_epochs", "planner.num_finalists")


def default_experiment_path() -> Path:
    """Path of the embedded default experiment (digits, shipped with the package)."""
    return Path(str(resources.files("seer_torch") / "experiments" / "digits_default.toml"))


@dataclass(frozen=True)
class DataSpec:
    """``[data]``: what the built-in worker trains on. ``dataset``: ``"digits"``, ``"cifar10"``,
    or a plug-in's import path ``"package.module:load"`` (:mod:`seer_torch.plugins`; its contract
    in :func:`seer_torch.data.load_dataset`). ``data_dir``: the folder CIFAR-10 is read from, or
    what a plug-in's ``load`` gets as ``data_dir`` (an absolute path), or ``None``."""

    dataset: str = "digits"
    data_dir: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """``[model]``: ``name`` is a built-in model (:data:`seer_torch.models.MODEL_NAMES`) or a
    plug-in's import path ``"package.module:build"`` (its contract in
    :func:`seer_torch.models.build_model`)."""

    name: str = "digits_cnn"


@dataclass(frozen=True)
class TrainingSpec:
    """``min_epochs`` and ``eta``: ``None`` (``"auto"`` in the file, or omitted) lets the planner
    choose the first rung and the reduction factor (:mod:`seer_torch.policies.seer`)."""

    max_epochs: int = 27
    min_epochs: int | None = None
    eta: int | None = None
    global_batch: int = 64
    micro_batch_max: int = 64


@dataclass(frozen=True)
class BudgetSpec:
    """``billing_granularity_s``: each job's held time is billed rounded up to a multiple of it
    (0: exact); ``billing_minimum_s``: the least billed per job. Seconds, ``>= 0``."""

    time_budget_s: float = 420.0
    money_budget_usd: float = 0.40
    price_usd_per_slot_hour: float = 3.06
    billing_granularity_s: float = 0.0
    billing_minimum_s: float = 0.0


#: Where jobs run (``[resources] backend``): torchrun on this machine, or a Ray cluster (docs/ray.md).
BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class NodeType:
    """A kind of machine a Ray cluster holds, and its price: ``slots`` (CPU slots, or GPUs on a
    cluster with GPUs) and ``price_usd_per_hour`` for the whole node. A node the cluster holds
    is this type when it offers this many slots (issue 17: money metered on what is held)."""

    name: str
    slots: int
    price_usd_per_hour: float


@dataclass(frozen=True)
class ResourceSpec:
    """``keep_alive``: a trial's job waits, alive, at its rung for its next one (and a W=1
    worker of the built-in worker takes up the next trial) instead of exiting (docs/design.md,
    "Launch cost"); ``false`` relaunches every job. ``backend``: one of :data:`BACKENDS`;
    ``address``: the Ray cluster to join (``"auto"``, ``"IP:PORT"``, ``"ray://..."``; only
    with ``backend = "ray"``; ``None``: ``$RAY_ADDRESS`` or a new local Ray). ``node_types``:
    the price of each kind of node on Ray (:class:`NodeType`; a node of no listed type costs
    ``budget.price_usd_per_slot_hour`` a slot). ``machine_start_s``: seconds from asking the
    Ray autoscaler for a machine to its slots offered, which SEER plans a round that needs new
    machines with until the run has measured one (only with ``backend = "ray"``; ``None``: 0
    until measured)."""

    num_slots: int = 1
    world_size_ladder: tuple[int, ...] = (1, 2, 4, 8)
    keep_alive: bool = True
    backend: str = "local"
    address: str | None = None
    node_types: tuple[NodeType, ...] = ()
    machine_start_s: float | None = None


@dataclass(frozen=True)
class SearchSpec:
    max_configurations: int = 64


@dataclass(frozen=True)
class PlannerSpec:
    """``num_finalists``: trials carried to the last rung (``None``: ``"auto"`` in the file, the
    planner chooses 1 to 3); ``max_world_size``: the most workers one trial may get (``None``:
    no cap beyond the slots)."""

    safety_fraction: float = 0.9
    profile: str | None = None  # a scaling profile JSON; None: measure one at the start
    num_finalists: int | None = None
    max_world_size: int | None = None


@dataclass(frozen=True)
class FailureSpec:
    """What a failing job costs its trial (Ray Tune's ``FailureConfig``): ``max_failures``
    crashes or hangs are retried from the trial's last checkpoint, the next one fails the
    trial; planned resizes and rendezvous-port clashes never count. ``hang_timeout_s``: a job
    that reports no progress (no new metrics line or log output) for this long is killed and
    counted as a failure. Seconds."""

    max_failures: int = 2
    hang_timeout_s: float = 600.0


@dataclass(frozen=True)
class TrialSpec:
    """``[trial]``: the user's own torchrun training script, run instead of the built-in
    worker (:mod:`seer_torch.trial` is the API it calls; docs/experiment-file.md).

    ``script``: its absolute path (a relative one in the file is relative to the experiment
    file's folder, like ``[planner] profile``); ``None``: the built-in worker trains
    ``[model]`` on ``[data]``. ``args``: the script's own arguments, passed after it on the
    command line. With a script, ``[model]`` and ``[data]`` are unused and the search space's
    parameters are all the script's.
    """

    script: str | None = None
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParamSpec:
    """One dimension of the search space.

    ``kind`` is ``"uniform"``, ``"loguniform"``, ``"int_uniform"``, ``"choice"`` or ``"fixed"``.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    value: Any = None

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "loguniform":
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        if self.kind == "int_uniform":
            return rng.randint(int(self.low), int(self.high))
        if self.kind == "choice":
            return self.choices[rng.randrange(len(self.choices))]
        return self.value

    def allowed(self) -> str:
        """What this dimension allows, in words (for an error message)."""
        if self.kind == "choice":
            return f"one of {list(self.choices)}"
        if self.kind == "fixed":
            return f"{self.value!r} (fixed)"
        kind = "an integer" if self.kind == "int_uniform" else "a number"
        return f"{kind} in [{self.low:g}, {self.high:g}] ({self.kind})"

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this dimension can draw."""
        if self.kind == "choice":
            return value in self.choices
        if self.kind == "fixed":
            return value == self.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int_uniform" and value != int(value):
            return False
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Experiment:
    """A resolved experiment. Build it with :func:`load_experiment` or :func:`parse_experiment`."""

    name: str = "experiment"
    seed: int = 0
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    budget: BudgetSpec = field(default_factory=BudgetSpec)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    search: SearchSpec = field(default_factory=SearchSpec)
    planner: PlannerSpec = field(default_factory=PlannerSpec)
    failures: FailureSpec = field(default_factory=FailureSpec)
    search_space: tuple[ParamSpec, ...] = ()
    source: str = ""
    trial: TrialSpec = field(default_factory=TrialSpec)
    # What the run optimizes (top-level keys beside name and seed; seer_torch.objective).
    metric: str = DEFAULT_METRIC
    mode: str = "max"
    #: Folders put first on the import path of the tuner and of every job (absolute), where a
    #: plug-in model or dataset module is looked for (top-level ``python_path``; by default the
    #: experiment file's folder when the experiment names a plug-in, else none).
    python_path: tuple[str, ...] = ()

    @property
    def objective(self) -> Objective:
        """The metric and its direction (:class:`~seer_torch.objective.Objective`)."""
        return Objective(self.metric, self.mode)

    def usable_world_sizes(self) -> tuple[int, ...]:
        """World sizes of the ladder that fit the slots (and ``planner.max_world_size``) and
        divide the global batch."""
        cap = self.resources.num_slots
        if self.planner.max_world_size is not None:
            cap = min(cap, self.planner.max_world_size)
        return tuple(
            w
            for w in self.resources.world_size_ladder
            if w <= cap and self.training.global_batch % w == 0
        )

    def with_overrides(
        self,
        *,
        time_budget_s: float | None = None,
        money_budget_usd: float | None = None,
        num_slots: int | None = None,
        profile: str | None = None,
        backend: str | None = None,
        address: str | None = None,
    ) -> Experiment:
        """A copy with the CLI's overrides applied and validated (``backend``/``address``: the
        ``--backend``/``--address`` of ``seer tune``; an address alone keeps the file's backend).

        Raises:
            ConfigError: an override is out of range.
        """
        budget = self.budget
        if time_budget_s is not None:
            budget = dataclasses.replace(
                budget, time_budget_s=positive_float("budget.time_budget_s", time_budget_s)
            )
        if money_budget_usd is not None:
            budget = dataclasses.replace(
                budget, money_budget_usd=positive_float("budget.money_budget_usd", money_budget_usd)
            )
        res = self.resources
        if num_slots is not None:
            res = dataclasses.replace(res, num_slots=positive_int("resources.num_slots", num_slots))
        if backend is not None or address is not None:
            chosen = res.backend if backend is None else backend
            kept = res.address if backend is None or backend == res.backend else None
            chosen, where = check_backend(chosen, kept if address is None else address,
                                          fields=("resources.backend" if backend is None else "--backend",
                                                  "--address"))
            res = dataclasses.replace(res, backend=chosen, address=where)
        planner = self.planner
        if profile is not None:
            planner = dataclasses.replace(planner, profile=existing_file("planner.profile", profile))
        exp = dataclasses.replace(self, budget=budget, resources=res, planner=planner)
        _check_combinations(exp)
        return exp

    def to_toml(self) -> str:
        """The resolved experiment as TOML (written to ``RUN_DIR/experiment.toml``)."""
        lines = [f"name = {_toml_value(self.name)}", f"seed = {self.seed}",
                 f"metric = {_toml_value(self.metric)}", f"mode = {_toml_value(self.mode)}", ""]
        if self.python_path:  # absolute: `seer resume` imports the plug-ins from the same folders
            lines.insert(-1, f"python_path = {_toml_value(list(self.python_path))}")
        # A script experiment writes [trial] (its script's absolute path, so that `seer resume`
        # finds it from the run folder) and not the [data] and [model] it does not use.
        uses = ("trial",) if self.trial.script else ("data", "model")
        for section in (*uses, "training", "budget", "resources", "search", "planner", "failures"):
            lines.append(f"[{section}]")
            for key, value in dataclasses.asdict(getattr(self, section)).items():
                if value is not None:
                    lines.append(f"{key} = {_toml_value(value)}")
                elif f"{section}.{key}" in _AUTO_FIELDS:
                    lines.append(f"{key} = {_toml_value(AUTO)}")
            lines.append("")
        lines.append("[search_space]")
        for p in self.search_space:
            if p.kind == "choice":
                spec = f"{{ choices = {_toml_value(list(p.choices))} }}"
            elif p.kind == "fixed":
                spec = _toml_value(p.value)
            else:
                spec = f'{{ distribution = "{p.kind}", low = {p.low!r}, high = {p.high!r} }}'
            lines.append(f"{p.name} = {spec}")
        return "\n".join(lines) + "\n"


def sample_configurations(experiment: Experiment, count: int) -> list[dict[str, Any]]:
    """Draw ``count`` configurations from the search space, deterministically from the seed.

    The i-th configuration depends only on (seed, i), so asking for more never changes the
    ones already drawn.
    """
    configs = []
    for i in range(count):
        rng = random.Random(f"{experiment.seed}:{i}")
        configs.append({p.name: p.sample(rng) for p in experiment.search_space})
    return configs


def load_experiment(path: str | os.PathLike[str] | None = None) -> Experiment:
    """Read and validate an experiment TOML file; ``None`` loads the embedded default.

    Raises:
        ConfigError: the file is missing, is not valid TOML, or a field is invalid.
    """
    p = default_experiment_path() if path is None else Path(path)
    if not p.is_file():
        raise ConfigError("experiment file", str(p), "an existing TOML file")
    text = p.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        where = ""
        m = re.search(r"at line (\d+)", str(e))
        if m:
            lineno = int(m.group(1))
            lines = text.splitlines()
            if 1 <= lineno <= len(lines):
                where = f"; line {lineno} reads {lines[lineno - 1].strip()!r}"
        raise ConfigError("experiment file", str(p), f"valid TOML ({e}{where})") from None
    return parse_experiment(raw, source=str(p))


_SECTIONS: dict[str, type] = {
    "data": DataSpec,
    "model": ModelSpec,
    "training": TrainingSpec,
    "budget": BudgetSpec,
    "resources": ResourceSpec,
    "search": SearchSpec,
    "planner": PlannerSpec,
    "failures": FailureSpec,
    "trial": TrialSpec,
}


def parse_experiment(raw: Mapping[str, Any], source: str = "") -> Experiment:
    """Validate a parsed TOML mapping into an :class:`Experiment`.

    Raises:
        ConfigError: unknown keys, wrong types, out-of-range values or impossible combinations.
    """
    name, seed, metric, mode = _parse_top_level(raw)
    sections = _section_tables(raw)
    # Plug-in modules are imported as the sections are read: their folders go on the path first.
    python_path = _parse_python_path(raw, sections, source)
    add_to_import_path(python_path)
    data = _parse_data(sections["data"])
    exp = Experiment(
        name=name,
        seed=seed,
        data=data,
        model=_parse_model(sections["model"], data.dataset),
        training=_parse_training(sections["training"]),
        budget=_parse_budget(sections["budget"]),
        resources=_parse_resources(sections["resources"]),
        search=SearchSpec(max_configurations=positive_int(
            "search.max_configurations", sections["search"].get("max_configurations", 64))),
        planner=_parse_planner(sections["planner"], source),
        failures=_parse_failures(sections["failures"]),
        search_space=_parse_space(raw.get("search_space", {})),
        source=source,
        trial=_parse_trial(sections["trial"], source),
        metric=metric,
        mode=mode,
        python_path=python_path,
    )
    _check_combinations(exp)
    return exp


def _parse_top_level(raw: Mapping[str, Any]) -> tuple[str, int, str, str]:
    """The top-level keys checked; returns ``name``, ``seed``, ``metric`` and ``mode``."""
    allowed_top = {"name", "seed", "metric", "mode", "python_path", "search_space", *_SECTIONS}
    for key in raw:
        if key not in allowed_top:
            raise ConfigError(
                key, raw[key],
                f"one of the top-level keys {', '.join(sorted(allowed_top))}"
                + did_you_mean(key, allowed_top),
            )
    name = raw.get("name", "experiment")
    if (
        not isinstance(name, str)
        or not name.strip()
        or name in (".", "..")
        or any(c in name for c in "/\\") or not name.isprintable()
    ):
        # The name becomes part of a path (runs/NAME-TIMESTAMP): no separators, no control characters.
        raise ConfigError("name", name,
                          "a non-empty string without '/', '\\' or control characters, "
                          "other than '.' and '..'")
    seed = nonnegative_int("seed", raw.get("seed", 0))
    return name, seed, check_metric("metric", raw.get("metric", DEFAULT_METRIC)), check_mode(
        "mode", raw.get("mode", "max"))


def _section_tables(raw: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Each section's table (empty when absent), its keys checked against its dataclass."""
    sections: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, Mapping):
            raise ConfigError(section, table, f"a table: a [{section}] header followed by its keys")
        names = {f.name for f in dataclasses.fields(cls)}
        for key in table:
            if key not in names:
                raise ConfigError(
                    f"{section}.{key}", table[key],
                    f"one of the keys of [{section}]: {', '.join(sorted(names))}" + did_you_mean(key, names),
                )
        sections[section] = table
    return sections


def _parse_python_path(raw: Mapping[str, Any], sections: Mapping[str, Mapping[str, Any]],
                       source: str) -> tuple[str, ...]:
    """Top-level ``python_path``: folders (relative ones to the experiment file's folder, or to
    the working directory without a file), stored absolute. Absent: the experiment file's
    folder when ``[model] name`` or ``[data] dataset`` is a plug-in's import path, else none."""
    base = Path(source).parent if source else Path.cwd()
    given = raw.get("python_path")
    if given is None:
        plugin = any(is_import_path(sections[s].get(k)) for s, k in (("model", "name"), ("data", "dataset")))
        return (str(base.resolve()),) if plugin else ()
    if not isinstance(given, list) or not all(isinstance(f, str) and f for f in given):
        raise ConfigError("python_path", given, 'a list of folder paths (strings), such as ["src"]')
    folders = []
    for f in given:
        folder = Path(f).expanduser()
        folder = (folder if folder.is_absolute() else base / folder).resolve()
        if not folder.is_dir():
            raise ConfigError("python_path", f, f"existing folders (a relative path is relative to "
                                                f"{base.resolve()}; {folder} is not a folder)")
        if str(folder) not in folders:
            folders.append(str(folder))
    return tuple(folders)


def _parse_data(d: Mapping[str, Any]) -> DataSpec:
    dataset = d.get("dataset", "digits")
    data_dir = d.get("data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise ConfigError("data.data_dir", data_dir, "a folder path (string)")
    if is_import_path(dataset):
        dataset_loader(dataset)  # imports it now: a bad path fails at load, naming data.dataset
        if data_dir is not None:  # what load(data_dir=...) gets: an existing path, absolute
            if not Path(data_dir).expanduser().exists():
                raise ConfigError("data.data_dir", data_dir,
                                  f"an existing folder or file for {dataset}'s data_dir (or leave it out)")
            data_dir = str(Path(data_dir).expanduser().resolve())
        return DataSpec(dataset=dataset, data_dir=data_dir)
    if dataset not in DATASETS:
        raise ConfigError("data.dataset", dataset,
                          f"one of {', '.join(DATASETS)}, or a plug-in's import path 'package.module:load'"
                          + did_you_mean(dataset, DATASETS))
    if dataset == "cifar10":
        if not data_dir:
            raise ConfigError("data.data_dir", data_dir,
                              "a local folder holding cifar-10-batches-py/ (required for cifar10)")
        if not Path(data_dir).expanduser().is_dir():
            raise ConfigError("data.data_dir", data_dir, "an existing folder holding cifar-10-batches-py/")
        data_dir = str(Path(data_dir).expanduser().resolve())
    return DataSpec(dataset=dataset, data_dir=data_dir)


def _parse_model(m: Mapping[str, Any], dataset: str) -> ModelSpec:
    if "name" not in m and is_import_path(dataset):
        raise ConfigError("model.name", None, f"a model for the plug-in dataset {dataset!r}: a built-in "
                                              "model name or a plug-in's import path 'package.module:build'")
    model_name = m.get("name", "digits_cnn" if dataset == "digits" else "resnet18_cifar")
    if not isinstance(model_name, str) or not model_name:
        raise ConfigError("model.name", model_name, "a model name from seer_torch.models.MODEL_NAMES, "
                                                    "or a plug-in's import path 'package.module:build'")
    if is_import_path(model_name):
        model_builder(model_name)  # imports it now: a bad path fails at load, naming model.name
    return ModelSpec(name=model_name)


def _parse_training(t: Mapping[str, Any]) -> TrainingSpec:
    return TrainingSpec(
        max_epochs=positive_int("training.max_epochs", t.get("max_epochs", 27)),
        min_epochs=int_or_auto("training.min_epochs", t.get("min_epochs", AUTO), 1),
        eta=int_or_auto("training.eta", t.get("eta", AUTO), 2),
        global_batch=positive_int("training.global_batch", t.get("global_batch", 64)),
        micro_batch_max=positive_int("training.micro_batch_max",
                                      t.get("micro_batch_max", t.get("global_batch", 64))),
    )


def _parse_budget(b: Mapping[str, Any]) -> BudgetSpec:
    return BudgetSpec(
        time_budget_s=positive_float("budget.time_budget_s", b.get("time_budget_s", 420.0)),
        money_budget_usd=positive_float("budget.money_budget_usd", b.get("money_budget_usd", 0.40)),
        price_usd_per_slot_hour=nonnegative_float("budget.price_usd_per_slot_hour",
                                                   b.get("price_usd_per_slot_hour", 3.06)),
        billing_granularity_s=nonnegative_float("budget.billing_granularity_s",
                                                 b.get("billing_granularity_s", 0.0)),
        billing_minimum_s=nonnegative_float("budget.billing_minimum_s", b.get("billing_minimum_s", 0.0)),
    )


def _parse_resources(r: Mapping[str, Any]) -> ResourceSpec:
    ladder_raw = r.get("world_size_ladder", [1, 2, 4, 8])
    ladder_problem = _ladder_problem(ladder_raw)
    if ladder_problem:
        raise ConfigError(
            "resources.world_size_ladder", ladder_raw,
            "a strictly increasing list of positive integers starting at 1, such as [1, 2, 4, 8] "
            f"({ladder_problem})",
        )
    keep_alive = r.get("keep_alive", True)
    if not isinstance(keep_alive, bool):
        raise ConfigError("resources.keep_alive", keep_alive, "true or false")
    backend, address = check_backend(r.get("backend", "local"), r.get("address"))
    return ResourceSpec(
        num_slots=positive_int("resources.num_slots", r.get("num_slots", os.cpu_count() or 1)),
        world_size_ladder=tuple(ladder_raw),
        keep_alive=keep_alive,
        backend=backend,
        address=address,
        node_types=_parse_node_types(r.get("node_types", [])),
        machine_start_s=_parse_machine_start(r.get("machine_start_s")),
    )


def _parse_machine_start(raw: Any) -> float | None:
    """``[resources] machine_start_s``: absent, or a finite number of seconds ``>= 0``.

    Raises:
        ConfigError: anything else (naming the field, the value and what is allowed).
    """
    if raw is None:
        return None
    if not is_number(raw) or raw < 0:
        raise ConfigError("resources.machine_start_s", raw,
                          "a finite number of seconds >= 0 (from asking the Ray autoscaler for a machine "
                          "to its slots offered), or leave it out")
    return float(raw)


_NODE_TYPE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _parse_node_types(raw: Any) -> tuple[NodeType, ...]:
    """``[[resources.node_types]]``: a list of ``{name, slots, price_usd_per_hour}`` tables, names
    and slot counts each distinct (a node's type is the one with its slots).

    Raises:
        ConfigError: not a list of such tables, a missing or unknown key, a bad value, or two
            types with one name or one slot count.
    """
    fld = "resources.node_types"
    allowed = ('a list of tables {name = "cpu4", slots = 4, price_usd_per_hour = 0.2}, one per kind of '
               "node (as [[resources.node_types]] sections)")
    if not isinstance(raw, list) or not all(isinstance(t, Mapping) for t in raw):
        raise ConfigError(fld, raw, allowed)
    out: list[NodeType] = []
    for i, t in enumerate(raw):
        where = f"{fld}[{i}]"
        if set(t) != {"name", "slots", "price_usd_per_hour"}:
            raise ConfigError(where, dict(t), allowed)
        name = t["name"]
        if not isinstance(name, str) or not _NODE_TYPE_NAME.match(name):
            raise ConfigError(f"{where}.name", name, "a name of letters, digits, _ and -")
        slots = positive_int(f"{where}.slots", t["slots"])
        price = nonnegative_float(f"{where}.price_usd_per_hour", t["price_usd_per_hour"])
        for other in out:
            if other.name == name or other.slots == slots:
                raise ConfigError(where, dict(t), f"a name and a slot count of its own ({other.name!r} "
                                                  f"has {other.slots} slots): a node's type is the one "
                                                  "with its slots")
        out.append(NodeType(name, slots, price))
    return tuple(out)


def check_backend(backend: Any, address: Any, *, fields: tuple[str, str] = (
        "resources.backend", "resources.address")) -> tuple[str, str | None]:
    """``(backend, address)`` validated: a backend of :data:`BACKENDS`, and an address (a
    non-empty string) only for the Ray backend. ``fields``: the names the errors give (the
    file's, or the command line's flags).

    Raises:
        ConfigError: an unknown backend, an address that is not a non-empty string, or an
            address given to the local backend.
    """
    if backend not in BACKENDS:
        raise ConfigError(fields[0], backend, "one of " + ", ".join(repr(b) for b in BACKENDS))
    if address is not None:
        if not isinstance(address, str) or not address.strip():
            raise ConfigError(fields[1], address, "a Ray address: 'auto', 'IP:PORT' or 'ray://HOST:PORT'")
        if backend != "ray":
            raise ConfigError(fields[1], address, f"no address with {fields[0]} = {backend!r} (the Ray "
                                                  "backend's only: set the backend to 'ray')")
    return backend, address


def _parse_planner(pl: Mapping[str, Any], source: str) -> PlannerSpec:
    """``[planner]``; a relative ``profile`` path is relative to the experiment file's folder
    (``source``), or to the working directory without one."""
    safety = pl.get("safety_fraction", 0.9)
    if not is_number(safety) or not 0.1 <= safety <= 1.0:
        raise ConfigError("planner.safety_fraction", safety, "a number in [0.1, 1.0]")
    profile = pl.get("profile")
    if profile is not None and (not isinstance(profile, str) or not profile):
        raise ConfigError("planner.profile", profile, "a path (string) to a scaling-profile JSON file")
    if profile is not None:
        base = Path(source).parent if source else Path.cwd()
        candidate = Path(profile) if Path(profile).is_absolute() else base / profile
        profile = existing_file("planner.profile", str(candidate))
    max_world_size = pl.get("max_world_size")
    if max_world_size is not None:
        max_world_size = positive_int("planner.max_world_size", max_world_size)
    return PlannerSpec(
        safety_fraction=float(safety),
        profile=profile,
        num_finalists=int_or_auto("planner.num_finalists", pl.get("num_finalists", AUTO), 1),
        max_world_size=max_world_size,
    )


def _parse_trial(t: Mapping[str, Any], source: str) -> TrialSpec:
    """``[trial]``; a relative ``script`` path is relative to the experiment file's folder
    (``source``), or to the working directory without one, and is stored resolved."""
    script = t.get("script")
    args = t.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError("trial.args", args, 'a list of strings, such as ["--hidden", "64"]')
    if script is None:
        if args:
            raise ConfigError("trial.args", args, "only with trial.script (the script's own arguments)")
        return TrialSpec()
    if not isinstance(script, str) or not script:
        raise ConfigError("trial.script", script, "a path (string) to your torchrun training script")
    base = Path(source).parent if source else Path.cwd()
    candidate = Path(script).expanduser()
    candidate = candidate if candidate.is_absolute() else base / candidate
    if not candidate.is_file():
        raise ConfigError("trial.script", script,
                          f"an existing file (a relative path is relative to {base.resolve()}; "
                          f"{candidate} does not exist)")
    return TrialSpec(script=str(candidate.resolve()), args=tuple(args))


def _parse_failures(fl: Mapping[str, Any]) -> FailureSpec:
    hang = fl.get("hang_timeout_s", 600.0)
    if not is_number(hang) or not math.isfinite(hang) or hang <= 0:
        raise ConfigError("failures.hang_timeout_s", hang, "a finite number of seconds > 0")
    return FailureSpec(
        max_failures=nonnegative_int("failures.max_failures", fl.get("max_failures", 2)),
        hang_timeout_s=float(hang),
    )


def _check_combinations(exp: Experiment) -> None:
    if exp.trial.script is None:  # the built-in worker trains: it reports only some metrics
        check_builtin_metric("metric", exp.metric)
    if exp.resources.node_types and exp.resources.backend != "ray":
        raise ConfigError("resources.node_types", [t.name for t in exp.resources.node_types],
                          "none with the local backend (node types price a Ray cluster's nodes; locally "
                          "each slot costs budget.price_usd_per_slot_hour): set resources.backend = 'ray'")
    if exp.resources.machine_start_s is not None and exp.resources.backend != "ray":
        raise ConfigError("resources.machine_start_s", exp.resources.machine_start_s,
                          "none with the local backend (it is how long a Ray autoscaler takes to start a "
                          "machine; local slots need none): set resources.backend = 'ray' or leave it out")
    t = exp.training
    if t.min_epochs is not None and t.min_epochs > t.max_epochs:
        raise ConfigError("training.min_epochs", t.min_epochs,
                          f"at most training.max_epochs ({t.max_epochs})")
    _check_finalists(exp)
    if t.micro_batch_max > t.global_batch:
        raise ConfigError(
            "training.micro_batch_max", t.micro_batch_max, f"at most training.global_batch ({t.global_batch})"
        )
    if not exp.usable_world_sizes():
        raise ConfigError(
            "training.global_batch",
            t.global_batch,
            f"a multiple of at least one world size in {list(exp.resources.world_size_ladder)} "
            f"that fits resources.num_slots ({exp.resources.num_slots})",
        )


def _check_finalists(exp: Experiment) -> None:
    """A value no plan can use: more finalists than configurations. (A large ``training.eta``
    is allowed: it leaves one rung, ``max_epochs``, and every configuration trains to it, as
    on a table of one to three epochs, where no eta gives two rungs.)"""
    finalists, most = exp.planner.num_finalists, exp.search.max_configurations
    if finalists is not None and finalists > most:
        raise ConfigError(
            "planner.num_finalists", finalists,
            f'an integer from 1 to search.max_configurations ({most}), or "{AUTO}": the finalists are '
            "among the configurations tried",
        )


def _ladder_problem(ladder: Any) -> str:
    """Why ``ladder`` is not a valid world-size ladder, or ``""``."""
    if not isinstance(ladder, list):
        return "not a list"
    if not ladder:
        return "the list is empty"
    for w in ladder:
        if not isinstance(w, int) or isinstance(w, bool):
            return f"{w!r} is not an integer"
        if w < 1:
            return f"{w} is not a positive integer"
    for w in ladder:
        if ladder.count(w) > 1:
            return f"{w} appears more than once"
    if sorted(ladder) != ladder:
        return "not in increasing order"
    if ladder[0] != 1:
        return "it does not start at 1"
    return ""


def _parse_space(raw: Any) -> tuple[ParamSpec, ...]:
    if not isinstance(raw, Mapping):
        raise ConfigError("search_space", raw, "a table of hyperparameter specifications")
    if not raw:
        raise ConfigError("search_space", {}, "at least one hyperparameter (for example lr)")
    specs = []
    for name, spec in raw.items():
        fld = f"search_space.{name}"
        if isinstance(spec, Mapping):
            keys = set(spec)
            if "choices" in keys:
                if keys != {"choices"}:
                    extra = ", ".join(sorted(keys - {"choices"}))
                    raise ConfigError(
                        fld, dict(spec),
                        "either { choices = [...] } or { distribution, low, high }, not both "
                        f"(remove {extra})",
                    )
                choices = spec["choices"]
                if not isinstance(choices, list) or not choices:
                    raise ConfigError(f"{fld}.choices", choices, "a non-empty list of values")
                for c in choices:
                    if isinstance(c, float) and not math.isfinite(c):
                        raise ConfigError(f"{fld}.choices", choices, "a non-empty list of finite values")
                specs.append(ParamSpec(name=name, kind="choice", choices=tuple(choices)))
                continue
            expected = {"distribution", "low", "high"}
            if keys != expected:
                problems = []
                if keys - expected:
                    problems.append("unknown key " + ", ".join(
                        repr(k) + did_you_mean(k, expected) for k in sorted(keys - expected)))
                if expected - keys:
                    problems.append("missing " + ", ".join(sorted(expected - keys)))
                raise ConfigError(
                    fld, dict(spec),
                    "a table with exactly distribution, low and high, or { choices = [...] } "
                    f"({'; '.join(problems)})",
                )
            dist = spec["distribution"]
            if dist not in DISTRIBUTIONS:
                raise ConfigError(
                    f"{fld}.distribution", dist,
                    f"one of {', '.join(DISTRIBUTIONS)}" + did_you_mean(dist, DISTRIBUTIONS),
                )
            low, high = spec["low"], spec["high"]
            for bound, v in (("low", low), ("high", high)):
                if not is_number(v):
                    raise ConfigError(f"{fld}.{bound}", v, "a finite number")
            if dist == "int_uniform":
                for bound, v in (("low", low), ("high", high)):
                    if int(v) != v:
                        raise ConfigError(f"{fld}.{bound}", v, "an integer for an int_uniform distribution")
            if low >= high:
                raise ConfigError(
                    f"{fld}.low", low, f"less than high ({high}); for a single value write {name} = VALUE"
                )
            if dist == "loguniform" and low <= 0:
                raise ConfigError(f"{fld}.low", low, "a number > 0 for a loguniform distribution")
            specs.append(ParamSpec(name=name, kind=dist, low=float(low), high=float(high)))
        elif isinstance(spec, (int, float, str, bool)):
            specs.append(ParamSpec(name=name, kind="fixed", value=spec))
        else:
            raise ConfigError(fld, spec, "a fixed value, { choices = [...] } or { distribution, low, high }")
    return tuple(specs)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):  # an inline table; keys are bare (node type fields)
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")
