"""Every value of a study checked when it is loaded, before any cell runs (``--dry-run`` included).

Two tables: ``FIELDS`` gives each field of each config dataclass a rule (range, choice, list shape);
``CROSS`` lists the rules that relate fields (image size vs generators and models, references among
the study's factors, the phantom big enough for the split). A failure is one ``UserError`` line naming
the key, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..classify.arms import ARMS
from ..classify.models import MODELS
from ..classify.train import TrainConfig
from ..data.classes import PRESETS as CLASS_SETS
from ..data.classes import load_class_set
from ..data.ingest import SOURCE_CHOICES
from ..data.sources.milk10k import MODALITIES
from ..data.split import SplitConfig
from ..errors import UserError
from ..generators.ddpm import DDPMConfig
from ..generators.ddpm_model import PRESETS as DDPM_PRESETS
from ..generators.registry import GENERATORS
from ..generators.sd_lora.config import SAMPLERS as SD_SAMPLERS, SCHEDULES as SD_SCHEDULES, SDLoRAConfig
from ..generators.stylegan2.presets import PRESETS as SG2_PRESETS
from ..generators.stylegan2.train import StyleGAN2Config
from ..metrics.extractors import EXTRACTORS
from ..metrics.gen_eval import GenMetricsConfig
from ..preprocess.registry import PRESETS
from .spec import ClassifySpec, DataSpec, ExecutorSpec, GenerateSpec, PhantomSpec, ReportSpec, StudySpec

MAX_SEED = 2**32 - 1  # numpy's seed range
GROUP_NORM = 32  # diffusers UNet2DModel's GroupNorm groups: DDPM channel counts are multiples of it


@dataclass(frozen=True)
class Rule:
    """A test of one value, the words for what it allows (``unknown``: word a failure as a bad choice), and
    an example it rejects (for the tests; None where the TOML type check already rejects all else)."""

    ok: Callable[[Any], bool]
    allowed: str
    unknown: bool = False
    bad: Any = None


NESTED = Rule(lambda v: True, "a table")  # a nested config: its own fields are checked
ANY = Rule(lambda v: True, "anything")  # free text/paths, checked where used (e.g. `run --check`)


@dataclass(frozen=True)
class SetBy:
    """A field the study sets from another key: it must stay at its default in the TOML."""

    key: str


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def ints(lo: int, hi: int | None = None) -> Rule:
    """An integer in [lo, hi]."""
    words = f"an integer >= {lo}" if hi is None else f"an integer from {lo} to {hi}"
    return Rule(lambda v: _is_int(v) and v >= lo and (hi is None or v <= hi), words, bad=lo - 1)


def nums(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Rule:
    """A finite number between lo and hi (each bound inclusive unless open)."""
    def ok(v: Any) -> bool:
        return (_is_num(v) and (lo is None or (v > lo if lo_open else v >= lo))
                and (hi is None or (v < hi if hi_open else v <= hi)))
    parts = ([f"{'>' if lo_open else '>='} {lo:g}"] if lo is not None else []) + \
            ([f"{'<' if hi_open else '<='} {hi:g}"] if hi is not None else [])
    bad = float("nan") if lo is None else lo if lo_open else lo - 1
    return Rule(ok, "a finite number" + (" " + " and ".join(parts) if parts else ""), bad=bad)


def one_of(*choices: str) -> Rule:
    """One of the given strings."""
    return Rule(lambda v: v in choices, ", ".join(choices), unknown=True, bad="?")


def text(pattern: str = r".+", words: str = "a non-empty string") -> Rule:
    """A string matching ``pattern`` in full."""
    return Rule(lambda v: isinstance(v, str) and re.fullmatch(pattern, v) is not None, words, bad="")


def each(rule: Rule, empty_ok: bool = False, unique: bool = True) -> Rule:
    """A list whose items all pass ``rule``, non-empty and without repeats unless told otherwise."""
    def ok(v: Any) -> bool:
        items = list(v) if isinstance(v, (tuple, list)) else None
        return (items is not None and (empty_ok or bool(items)) and all(rule.ok(x) for x in items)
                and (not unique or len(set(items)) == len(items)))
    shape = ("a list" if empty_ok else "a non-empty list") + (" of unique" if unique else " of")
    bad = [rule.bad] if empty_ok and rule.bad is not None else None if empty_ok else []
    return Rule(ok, f"{shape} items, each {rule.allowed}", bad=bad)


def unset_or(rule: Rule) -> Rule:
    """``rule``, or the field left unset (None: the preset's value)."""
    return Rule(lambda v: v is None or rule.ok(v), f"{rule.allowed} (or unset: the preset's)", rule.unknown, rule.bad)


BOOL = Rule(lambda v: isinstance(v, bool), "true or false")
SEED = ints(0, MAX_SEED)
POS = nums(0, lo_open=True)
NONNEG = nums(0)
FRACTION = nums(0, 1, hi_open=True)
PRECISION = one_of("no", "fp16", "bf16")


def _augment(v: Any) -> bool:
    if v in ("ada", "none"):
        return True
    if not isinstance(v, str) or not v.startswith("fixed:"):
        return False
    try:
        return 0 <= float(v.split(":", 1)[1]) <= 1
    except ValueError:
        return False


FIELDS: dict[type, dict[str, Rule | SetBy]] = {
    StudySpec: {
        "name": text(r"[A-Za-z0-9][A-Za-z0-9._-]*", "letters, digits, '.', '_' or '-' (it names the results "
                                                      "folder and the SLURM jobs)"),
        "image_size": ints(16, 4096), "seeds": each(SEED), "pipelines": each(text()),
        "data": NESTED, "split": NESTED, "classify": NESTED, "executor": NESTED, "generate": NESTED, "report": NESTED,
        "compare_to_original": BOOL, "path": ANY,
        "classes": Rule(lambda v: isinstance(v, str) and (v in CLASS_SETS or v.endswith(".toml")),
                        f"{', '.join(CLASS_SETS)} or a class set FILE.toml", unknown=True, bad="ham9"),
    },
    DataSpec: {"sources": each(text(), empty_ok=True), "source": one_of(*SOURCE_CHOICES),
               "milk10k_modality": one_of(*MODALITIES), "phantom": NESTED},
    PhantomSpec: {"n": ints(1), "size": ints(32, 4096), "seed": SEED},
    SplitConfig: {"val": FRACTION, "test": FRACTION, "seed": SEED, "dedup": BOOL, "dedup_distance": ints(0, 64),
                  "max_group_size": ints(2)},
    ClassifySpec: {
        "models": each(text()), "arms": each(text()), "doses": each(POS),
        "target_class": text(r"[A-Za-z][A-Za-z0-9_]*", "a class name of study.classes"),
        "train": NESTED, "n_boot": ints(10), "reference_model": Rule(lambda v: isinstance(v, str), "a model name"),
    },
    TrainConfig: {
        "model": SetBy("classify.models"), "pretrained": BOOL, "weights_dir": ANY, "epochs": ints(1),
        "batch_size": ints(1), "lr": POS, "momentum": FRACTION, "weight_decay": NONNEG,
        "milestones": each(nums(0, 1, lo_open=True), empty_ok=True), "gamma": nums(0, 1, lo_open=True),
        "mixed_precision": PRECISION, "grad_accum": ints(1), "num_workers": ints(0), "seed": SetBy("study.seeds"),
        "gradcam_per_class": ints(0), "checkpoint_every": ints(0), "keep_weights": one_of("best", "none"),
        "sync_batchnorm": BOOL,
    },
    GenerateSpec: {
        "generators": each(text(), empty_ok=True), "seed": SEED, "seeds": each(SEED, empty_ok=True),
        "n_synthetic": ints(0), "sampler": one_of("ddim", "ddpm"), "sampling_steps": ints(1),
        "sample_batch": ints(1), "ddpm": NESTED, "stylegan2_ada": NESTED, "sd_lora": NESTED, "metrics": NESTED,
        "tsne_perplexity": POS,
    },
    DDPMConfig: {
        "resolution": SetBy("study.image_size"),
        "channels": each(Rule(lambda v: _is_int(v) and v > 0 and v % GROUP_NORM == 0,
                              f"a positive multiple of {GROUP_NORM}", bad=16), empty_ok=True, unique=False),
        "layers_per_block": ints(1), "classes": SetBy("classify.target_class"), "conditional": BOOL,
        "max_steps": ints(1), "epochs": ints(0), "batch_size": ints(1), "lr": POS, "warmup_steps": ints(0), "weight_decay": NONNEG,
        "grad_clip": POS, "mixed_precision": PRECISION, "dtype": one_of("float32", "float64"), "grad_accum": ints(1), "ema_decay": FRACTION,
        "num_train_timesteps": ints(1), "random_flip": BOOL, "checkpoint_every": ints(0), "grid_images": ints(0),
        "grid_steps": ints(1), "log_every": ints(1), "init_from": ANY, "seed": SetBy("generate.seed"),
    },
    SDLoRAConfig: {
        "base": text(), "resolution": Rule(lambda v: _is_int(v) and v >= 8 and v % 8 == 0, "a multiple of 8", bad=12),
        "target_class": SetBy("classify.target_class"), "classes": one_of("target", "all"),
        "prompt_template": text(r".*\{name\}.*", "a string with {name}"), "rank": ints(1), "alpha": NONNEG,
        "max_steps": ints(1), "epochs": ints(0), "batch_size": ints(1), "grad_accum": ints(1), "lr": POS,
        "lr_scheduler": one_of(*SD_SCHEDULES), "warmup_steps": ints(0), "adam_beta1": FRACTION,
        "adam_beta2": FRACTION, "weight_decay": NONNEG, "adam_eps": POS, "grad_clip": NONNEG, "noise_offset": NONNEG,
        "snr_gamma": NONNEG, "prediction_type": one_of("", "epsilon", "v_prediction"),
        "mixed_precision": one_of("auto", "no", "fp16", "bf16"), "gradient_checkpointing": BOOL,
        "random_flip": BOOL, "cache_latents": BOOL, "sampler": one_of(*SD_SAMPLERS), "sampling_steps": ints(1),
        "guidance_scale": NONNEG, "negative_prompt": ANY, "checkpoint_every": ints(0), "grid_images": ints(0),
        "log_every": ints(1), "seed": SetBy("generate.seed"),
    },
    StyleGAN2Config: {
        "resolution": SetBy("study.image_size"), "preset": one_of(*SG2_PRESETS), "fmaps": unset_or(POS),
        "mapping_layers": unset_or(ints(1)), "mbstd_group": unset_or(ints(1)),
        "classes": SetBy("classify.target_class"), "conditional": BOOL, "kimg": POS, "batch_size": unset_or(ints(1)),
        "g_lr": unset_or(POS), "d_lr": unset_or(POS), "r1_gamma": unset_or(NONNEG), "r1_interval": ints(1),
        "pl_weight": NONNEG, "pl_interval": ints(1), "style_mixing": nums(0, 1), "ema_kimg": unset_or(NONNEG),
        "ema_rampup": unset_or(NONNEG),
        "augment": Rule(_augment, "'ada', 'fixed:P' (0 <= P <= 1) or 'none'", unknown=True, bad="fixed:2"),
        "ada_target": nums(0, 1, lo_open=True), "ada_interval": ints(1), "ada_kimg": unset_or(POS), "mirror": BOOL,
        "mixed_precision": one_of("auto", "fp16", "bf16", "no"), "init_from": ANY, "compile": BOOL, "checkpoint_every": ints(0),
        "grid_images": ints(0), "truncation_psi": nums(0, 1), "log_every": ints(1), "seed": SetBy("generate.seed"),
    },
    GenMetricsConfig: {
        "extractor": one_of(*EXTRACTORS), "extractors": each(one_of(*EXTRACTORS), empty_ok=True), "n_boot": ints(10), "matched_repeats": ints(10), "kid_subsets": ints(1),
        "kid_subset_size": ints(2),
        "is_splits": ints(1), "pr_k": ints(1), "dc_k": ints(1), "memorisation_quantile": nums(0, 1, lo_open=True, hi_open=True),
        "seed": SEED, "batch_size": ints(1),
    },
    ExecutorSpec: {"kind": one_of("debug", "local", "slurm"), "profile": text(), "max_parallel": ints(1)},
    ReportSpec: {"reference_generator": Rule(lambda v: isinstance(v, str), "a generator of generate.generators")},
}


def _show(value: Any) -> str:
    return repr(list(value)) if isinstance(value, tuple) else repr(value)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def field_errors(obj: Any, prefix: str) -> list[str]:
    """One message per field of dataclass ``obj`` (and its nested configs) that breaks its rule."""
    rules = FIELDS.get(type(obj), {})
    errors = []
    for f in dataclasses.fields(obj):
        key, value, rule = f"{prefix}.{f.name}", getattr(obj, f.name), rules.get(f.name)
        if rule is None:  # a field added without a rule: tests/test_validate.py asks for one
            continue
        if rule is NESTED:
            if value is not None:
                errors += field_errors(value, f.name if isinstance(obj, StudySpec) else key)
        elif isinstance(rule, SetBy):
            if value != _default(f):
                errors.append(f"{key} = {_show(value)}: set by {rule.key}; remove it from the study")
        elif not rule.ok(value):
            errors.append(f"{key} {_show(value)} unknown; use {rule.allowed}" if rule.unknown
                          else f"{key} = {_show(value)}: must be {rule.allowed}")
    return errors


def _known_factors(s: StudySpec) -> str | None:
    for p in s.pipelines:
        if p not in PRESETS and not str(p).endswith(".toml"):
            return f"study.pipelines: {p!r} is not a preset ({', '.join(PRESETS)}) or a .toml file"
    for m in s.classify.models:
        if m not in MODELS:
            return f"classify.models: {m!r} unknown; available: {', '.join(MODELS)}"
    for g in s.generate.generators:
        if g not in GENERATORS:
            return f"generate.generators: {g!r} unavailable; implemented: {', '.join(GENERATORS)}"
    return None


def _arms_have_generators(s: StudySpec) -> str | None:
    synthetic = [f"synthetic_{g}" for g in s.generate.generators]
    for a in s.classify.arms:
        if a.startswith("synthetic") and a not in synthetic:
            return (f"classify.arms: {a!r} needs its generator in [generate] generators "
                    f"(arms available: {', '.join(('real', 'gta', 'oversample', 'class_weighted', *synthetic))})")
        if a not in ARMS and not a.startswith("synthetic"):
            return f"classify.arms: {a!r} unknown; use real, gta, oversample, class_weighted or synthetic_<generator>"
    return None


def _generator_own_checks(s: StudySpec) -> str | None:
    for g in s.generate.generators:
        try:
            GENERATORS[g].validate(getattr(s.generate, g))
        except UserError as exc:
            return f"[generate.{g}] {exc}"
    return None


def _data_source(s: StudySpec) -> str | None:
    if not s.data.sources and s.data.phantom is None:
        return "[data] needs sources = [...] or a [data.phantom] table"
    if s.data.sources and s.data.phantom is not None:
        return f"data.sources = {_show(s.data.sources)} and [data.phantom] both given; keep one"
    return None


def _reference_model(s: StudySpec) -> str | None:
    ref = s.classify.reference_model
    if ref and ref not in s.classify.models:
        return f"classify.reference_model = {ref!r}: must be one of classify.models ({', '.join(s.classify.models)})"
    return None


def _reference_generator(s: StudySpec) -> str | None:
    ref, listed = s.report.reference_generator, s.generate.generators
    if ref and ref not in listed:
        return (f"report.reference_generator = {ref!r}: must be one of generate.generators "
                f"({', '.join(listed) if listed else 'none listed'})")
    return None


def _split_fractions(s: StudySpec) -> str | None:
    if s.split.val + s.split.test >= 1:
        return (f"split.val + split.test = {s.split.val:g} + {s.split.test:g}: must sum to less than 1 "
                "(the rest is the train split)")
    return None


def _stylegan2_size(s: StudySpec) -> str | None:
    size = s.image_size
    if "stylegan2_ada" in s.generate.generators and (size < 16 or size > 1024 or size & (size - 1)):
        return f"study.image_size = {size}: StyleGAN2-ADA needs a power of two from 16 to 1024"
    return None


def _ddpm_size(s: StudySpec) -> str | None:
    if "ddpm" not in s.generate.generators:
        return None
    size, channels = s.image_size, s.generate.ddpm.channels
    if not channels and size not in DDPM_PRESETS:
        return (f"study.image_size = {size}: DDPM has presets for {', '.join(map(str, DDPM_PRESETS))} px; "
                "use one or set [generate.ddpm] channels")
    if channels and size % 2 ** (len(channels) - 1):
        return (f"study.image_size = {size}: the DDPM UNet with {len(channels)} levels (generate.ddpm.channels) "
                f"halves it {len(channels) - 1} times; use a multiple of {2 ** (len(channels) - 1)} or fewer levels")
    return None


def _ddpm_steps(s: StudySpec) -> str | None:
    if "ddpm" not in s.generate.generators:
        return None
    d, g = s.generate.ddpm, s.generate
    for key, steps in (("generate.sampling_steps", g.sampling_steps), ("generate.ddpm.grid_steps", d.grid_steps)):
        if steps > d.num_train_timesteps:
            return f"{key} = {steps}: must be <= generate.ddpm.num_train_timesteps ({d.num_train_timesteps})"
    if not d.epochs and d.warmup_steps > d.max_steps:
        return f"generate.ddpm.warmup_steps = {d.warmup_steps}: must be <= generate.ddpm.max_steps ({d.max_steps})"
    return None


def _classifier_size(s: StudySpec) -> str | None:
    size = s.image_size
    if "vit_b16" in s.classify.models and size % 16:
        return f"study.image_size = {size}: vit_b16 cuts 16 px patches; use a multiple of 16"
    if "vgg16" in s.classify.models and size < 32:
        return f"study.image_size = {size}: vgg16 halves it 5 times; use at least 32"
    return None


def _class_set(s: StudySpec) -> str | None:
    try:
        classes = load_class_set(s.classes).classes
    except UserError as exc:
        return f"study.classes = {s.classes!r}: {exc}"
    if s.classify.target_class not in classes:
        return f"classify.target_class {s.classify.target_class!r} unknown; use {', '.join(classes)}"
    return None


def _phantom_splits(s: StudySpec) -> str | None:
    from ..data.phantom import plan_lesions

    ph = s.data.phantom
    if ph is None or s.data.sources or ph.n > 100_000:
        return None
    need = 1 + (s.split.val > 0) + (s.split.test > 0)
    class_set = load_class_set(s.classes)

    def short(n: int) -> str | None:
        groups = {c: 0 for c in class_set.classes}
        for plan in plan_lesions(n, ph.seed, classes=class_set):
            groups[plan.label] += 1
        return next((c for c in class_set.classes if groups[c] < need), None)

    cls = short(ph.n)
    if cls is None:
        return None
    enough = next((n for n in range(ph.n + 1, ph.n + 2000) if short(n) is None), None)
    return (f"data.phantom.n = {ph.n}: class {cls} gets fewer than {need} lesions, one for each split; "
            + (f"use n >= {enough}" if enough else "use a larger n"))


CROSS: tuple[Callable[[StudySpec], str | None], ...] = (
    _known_factors, _arms_have_generators, _generator_own_checks, _data_source, _reference_model,
    _reference_generator, _split_fractions, _stylegan2_size, _ddpm_size, _ddpm_steps, _classifier_size, _class_set,
    _phantom_splits,
)


def validate_study(spec: StudySpec, where: str) -> None:
    """Raise one UserError line (``where: key = value: what is allowed``) for the first bad value."""
    errors = field_errors(spec, "study")
    for rule in CROSS if not errors else ():  # in order: later rules rely on earlier ones (known names)
        if msg := rule(spec):
            errors = [msg]
            break
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UserError(f"{where}: {errors[0]}{more}")
